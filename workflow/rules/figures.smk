# Figures. Figure 10 of SPEC.md: the label distribution per client and the graphs drawn.


rule plot_label_distribution:
    input:
        stats="data/splits/{split}/stats.csv",
        dataset=prepared("json"),
    output:
        "figures/data/labels_{split}.png",
    params:
        split=subpath(input.stats, parent=True),
    conda:
        "../envs/mhd.yaml"
    log:
        "logs/plot_label_distribution/{split}.log",
    shell:
        "mhd plot labels --input {params.split} --dataset-meta {input.dataset} "
        "--title {wildcards.split:q} --out {output} > {log} 2>&1"


rule plot_graph:
    input:
        "data/graphs/{graph}/edges.csv",
    output:
        "figures/graphs/{graph}.png",
    params:
        graph=subpath(input[0], parent=True),
    conda:
        "../envs/mhd.yaml"
    log:
        "logs/plot_graph/{graph}.log",
    shell:
        "mhd plot graph --input {params.graph} --title {wildcards.graph:q} --out {output} > {log} 2>&1"
