# mhd: decentralized learning with Multi-Headed Distillation, as a Snakemake workflow.
#   snakemake --cores 8 all_figures                               # the embedded default config
#   snakemake --cores 8 all_figures --configfile config/smoke.yaml  # an overlay on top of it
# All logic lives in the `mhd` package (src/mhd); the rules below are glue.
from snakemake.utils import min_version

min_version("8.20")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/figures.smk"


# Jobs that only write a small file or name targets run in the Snakemake process itself: never
# submitted to a cluster, never a slot of --cores.
localrules:
    run_config,
    experiment_spec,
    data_artefacts,
    all_runs,
    all_figures,


rule all_figures:
    default_target: True
    input:
        all_figures,
