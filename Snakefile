# mhd: decentralized learning with Multi-Headed Distillation, as a Snakemake workflow.
#   snakemake --cores 8 all_figures                               # the embedded default config
#   snakemake --cores 8 all_figures --configfile config/smoke.yaml  # an overlay on top of it
# All logic lives in the `mhd` package (src/mhd); the rules below are glue.
from snakemake.utils import min_version

min_version("8.20")


# the report's front page (snakemake --report report.html)
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/figures.smk"


# Every job but training runs in the Snakemake process's machine: never submitted to a cluster (each
# takes seconds; a sbatch submission would cost more than the job). The figure rules say so
# themselves (localrule: True, workflow/rules/figures.smk). On a cluster whose login node is too small
# to prepare a large imagefolder dataset, take prepare_data out of this list.
localrules:
    run_config,
    experiment_spec,
    prepare_data,
    split,
    graph,
    data_artefacts,
    summary,
    claims,
    all_runs,
    all_figures,


rule all_figures:
    default_target: True
    input:
        all_figures,


# profiles/default sets max-jobs-per-timespan to 1000/60s: each pass of Snakemake's scheduler arms a
# re-evaluation timer of that timespan, and every finished job starts one more such chain, so at the
# default 100/1s the scheduler woke ~130 times a second late in a default run (130 timer threads,
# a quarter of a core, half of it system time; docs/performance.md). Jobs ending wake it anyway. The
# handlers cancel the timers still pending when the workflow ends, so that Snakemake exits at once
# instead of waiting up to a timespan for them.
def cancel_pending_timers():
    import threading

    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


onsuccess:
    cancel_pending_timers()


onerror:
    cancel_pending_timers()
