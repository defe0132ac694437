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


# Snakemake waits for its scheduler's pending timers before it exits: cancel them at the end
# (common.smk: cancel_pending_timers).
onsuccess:
    cancel_pending_timers()


onerror:
    cancel_pending_timers()
