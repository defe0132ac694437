# Figures: one per experiment with a `figure:` kind, as PNG and PDF, and the summary of every run.
from mhd.report.captions import rst_text


rule experiment_spec:
    # in a thread of the Snakemake process (a localrule; profiles/default: force-use-threads): no start-up per experiment
    output:
        f"{RESULTS}/experiments/{{experiment}}.json",
    log:
        f"{LOGS}/experiment_spec/{{experiment}}.log",
    params:
        spec=lambda wc: json.dumps(experiment_spec(wc), sort_keys=True),
    run:
        write_logged(write_json, output[0], json.loads(params.spec), log[0])


# One rule per figure kind, so that each figure carries its own caption in the report.
for _kind in sorted(set(FIGURED.values())):

    rule:
        name:
            f"figure_{_kind}"
        input:
            figure_inputs,
            spec=f"{RESULTS}/experiments/{{experiment}}.json",
        output:
            png=report(
                f"{FIGURES}/{{experiment}}.png",
                caption=f"../report/{_kind}.rst",
                category="Data" if _kind in DATA_KINDS else "Results",
                subcategory=_kind.replace("_", " "),
                labels={"experiment": "{experiment}"},
            ),
            pdf=f"{FIGURES}/{{experiment}}.pdf",
        log:
            f"{LOGS}/figure/{{experiment}}.log",
        wildcard_constraints:
            experiment="|".join(re.escape(e) for e in sorted(e for e, k in FIGURED.items() if k == _kind)),
        localrule: True
        conda:
            "../envs/mhd.yaml"
        params:
            stem=subpath(output.png, strip_suffix=".png"),
            # shown in the report's caption, which is reStructuredText: escaped to show as the text it is
            # (a description is never markup: `.. include::` or `.. raw:: html` would run in the report)
            description=lambda wc: rst_text(CONFIG["experiments"][wc.experiment].get("description", "")),
        shell:
            "mhd figure --spec {input.spec:q} --out {params.stem:q} > {log:q} 2>&1"


rule summary:
    input:
        metrics=all_runs,
        specs=[m.replace("metrics.csv", "run.yaml") for m in all_runs()],
        records=[m.replace("metrics.csv", "run.json") for m in all_runs()],
    output:
        csv=f"{RESULTS}/summary.csv",
        # the summary's sha256 and each run's metrics hash: mhd claims checks the summary against both
        record=f"{RESULTS}/summary.json",
    log:
        f"{LOGS}/summary.log",
    conda:
        "../envs/mhd.yaml"
    params:
        runs=lambda wc, input: [str(Path(m).parent) for m in input.metrics],
    shell:
        "mhd summarize --runs {params.runs:q} --out {output.csv:q} > {log:q} 2>&1"


# The paper's claims, checked on every run of the config; a default run's verdicts are marked where
# they differ from the reference's (docs/reference/claims.csv, config/reference.yaml's, written by mhd numbers).
rule claims:
    input:
        summary=f"{RESULTS}/summary.csv",
        record=f"{RESULTS}/summary.json",
        reference=CLAIMS_REFERENCE_FILE,
    output:
        csv=f"{RESULTS}/claims.csv",
        md=f"{RESULTS}/claims.md",
        # what DVC shows (dvc.yaml: metrics, plots; the default study's)
        metrics=f"{RESULTS}/metrics.json",
        curves=directory(f"{RESULTS}/curves"),
    log:
        f"{LOGS}/claims.log",
    conda:
        "../envs/mhd.yaml"
    params:
        defaults=json.dumps(CONFIG["run"], sort_keys=True),
        stem=subpath(output.csv, strip_suffix=".csv"),
        reference=CLAIMS_REFERENCE,
        # the summary must hold exactly these runs as they are now (mhd claims checks it against them)
        runs=[f"results/runs/{r}" for r in sorted(TRAINED)],
    shell:
        "mhd claims --summary {input.summary:q} --defaults {params.defaults:q} {params.reference} --out {params.stem:q}"
        " --runs {params.runs:q} --metrics {output.metrics:q} --curves {output.curves:q} > {log:q} 2>&1"
