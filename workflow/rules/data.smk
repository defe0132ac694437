# Data: prepare the dataset once as tensors, then draw the splits and build the graphs.


rule prepare_data:
    output:
        pt="data/prepared/{dataset}.pt",
        meta="data/prepared/{dataset}.json",
    params:
        args=prepare_args,
    conda:
        "../envs/mhd.yaml"
    log:
        "logs/prepare_data/{dataset}.log",
    shell:
        "mhd prepare --dataset {wildcards.dataset} {params.args} --out {output.pt} > {log} 2>&1"


rule split:
    input:
        pt=prepared("pt"),
        meta=prepared("json"),
    output:
        indices="data/splits/{split}/indices.csv",
        stats="data/splits/{split}/stats.csv",
        meta="data/splits/{split}/split.json",
    params:
        args=split_args,
        out=subpath(output.meta, parent=True),
    conda:
        "../envs/mhd.yaml"
    log:
        "logs/split/{split}.log",
    shell:
        "mhd split --prepared {input.pt} {params.args} --out {params.out} > {log} 2>&1"


rule graph:
    output:
        edges="data/graphs/{graph}/edges.csv",
        meta="data/graphs/{graph}/graph.json",
    params:
        args=graph_args,
        out=subpath(output.meta, parent=True),
    conda:
        "../envs/mhd.yaml"
    log:
        "logs/graph/{graph}.log",
    shell:
        "mhd graph {params.args} --out {params.out} > {log} 2>&1"


rule data_artefacts:
    input:
        data_artefacts,
