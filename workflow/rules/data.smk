# Data: prepare the dataset once as tensors, then draw the splits and build the graphs.


rule prepare_data:
    output:
        pt="data/prepared/{dataset}.pt",
        meta="data/prepared/{dataset}.json",
    params:
        json=prepare_params,
    conda:
        "../envs/mhd.yaml"
    log:
        "logs/prepare_data/{dataset}.log",
    shell:
        "mhd prepare --dataset {wildcards.dataset:q} --params {params.json:q} --out {output.pt:q} > {log:q} 2>&1"


rule split:
    input:
        pt=prepared("pt"),
        meta=prepared("json"),
    output:
        indices="data/splits/{split}/indices.csv",
        stats="data/splits/{split}/stats.csv",
        meta="data/splits/{split}/split.json",
    params:
        json=split_params,
        out=subpath(output.meta, parent=True),
    conda:
        "../envs/mhd.yaml"
    log:
        "logs/split/{split}.log",
    shell:
        "mhd split --prepared {input.pt:q} --params {params.json:q} --out {params.out:q} > {log:q} 2>&1"


rule graph:
    output:
        edges="data/graphs/{graph}/edges.csv",
        meta="data/graphs/{graph}/graph.json",
    params:
        json=graph_params,
        out=subpath(output.meta, parent=True),
    conda:
        "../envs/mhd.yaml"
    log:
        "logs/graph/{graph}.log",
    shell:
        "mhd graph --params {params.json:q} --out {params.out:q} > {log:q} 2>&1"


rule data_artefacts:
    input:
        data_artefacts,
