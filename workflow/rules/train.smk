# Training: one folder per run, results/runs/<run id>/, named by the run's settings.


rule run_config:
    # in a thread of the Snakemake process (a localrule; profiles/default: force-use-threads): no start-up per run
    output:
        "results/runs/{run}/run.yaml",
    log:
        "logs/run_config/{run}.log",
    params:
        run_file=lambda wc: json.dumps(run_file(wc), sort_keys=True),
    run:
        write_logged(mconfig.write_run_file, output[0], json.loads(params.run_file), log[0])


rule train:
    input:
        unpack(run_inputs),
        spec="results/runs/{run}/run.yaml",
    output:
        metrics="results/runs/{run}/metrics.csv",
        record="results/runs/{run}/run.json",
    log:
        "logs/train/{run}.log",
    benchmark:
        "results/runs/{run}/benchmark.tsv"
    # safe: a retried run resumes from results/runs/<run id>/checkpoint.pt (not an output, so kept)
    retries: 2
    conda:
        "../envs/mhd.yaml"
    # one torch thread per CPU-sized share: two one-thread runs side by side beat one two-thread
    # run on a CPU (common.smk: TRAIN_THREADS)
    threads: TRAIN_THREADS
    resources:
        gpu=run_gpus,
    params:
        out=subpath(output.metrics, parent=True),
        torch_threads=torch_threads,
    shell:
        "mhd train --config {input.spec:q} --out {params.out:q} --threads {params.torch_threads} > {log:q} 2>&1"


rule all_runs:
    input:
        all_runs,
