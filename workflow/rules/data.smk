# Data: prepare the dataset once as tensors, then draw the splits and build the graphs.


rule prepare_data:
    output:
        pt="data/prepared/{dataset}.pt",
        meta="data/prepared/{dataset}.json",
    log:
        "logs/prepare_data/{dataset}.log",
    conda:
        "../envs/mhd.yaml"
    params:
        json=prepare_params,
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
    log:
        "logs/split/{split}.log",
    conda:
        "../envs/mhd.yaml"
    params:
        json=split_params,
        out=subpath(output.meta, parent=True),
    shell:
        "mhd split --prepared {input.pt:q} --params {params.json:q} --out {params.out:q} > {log:q} 2>&1"


rule graph:
    output:
        edges="data/graphs/{graph}/edges.csv",
        meta="data/graphs/{graph}/graph.json",
    log:
        "logs/graph/{graph}.log",
    conda:
        "../envs/mhd.yaml"
    params:
        json=graph_params,
        out=subpath(output.meta, parent=True),
    shell:
        "mhd graph --params {params.json:q} --out {params.out:q} > {log:q} 2>&1"


rule data_artefacts:
    input:
        data_artefacts,
