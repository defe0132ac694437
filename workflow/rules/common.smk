# Config loading and validation, and the helpers that turn experiments into target lists.
import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from mhd import config as mconfig
from mhd import study as mstudy
from mhd.errors import MHDError
from mhd.checks import swept_key
from mhd.data.files import write_json
from mhd.report.kinds import DATA_KINDS

# config/config.yaml is the base; each --configfile, read by the project in the order given, is merged
# over it (experiments replaced whole), then --config (values re-read as YAML, so `run={steps: 10}`
# gives a number): the same plan as `mhd check config/config.yaml OVERLAY ...`. Snakemake's own
# merge of several --configfile would cross one overlay's rows with another's grid.
_BASE = Path(workflow.basedir) / "config" / "config.yaml"
_OVERLAYS = [str(p) for p in workflow.overwrite_configfiles]
try:
    CONFIG, RUNS = mconfig.plan(
        mconfig.merge(mconfig.merge_layered(_BASE, _OVERLAYS), mconfig.typed(workflow.config_settings.config)),
        source=" + ".join([str(_BASE), *_OVERLAYS, *(["--config"] if workflow.config_settings.config else [])]),
    )
except MHDError as exc:
    raise WorkflowError(str(exc)) from None
config.clear()
config.update(CONFIG)

# This config's study: where its summary, claims, specs, figures and logs go (src/mhd/study.py). Runs,
# data and train logs are shared by every study.
STUDY = CONFIG.get("study", mstudy.DEFAULT)
RESULTS, FIGURES, LOGS = mstudy.results(STUDY), mstudy.figures(STUDY), mstudy.logs(STUDY)

DATASET = CONFIG["dataset"]["name"]


# Rules call the `mhd` command of this environment; PATH is also passed on to cluster jobs.
envvars:
    "PATH",


# Rules call the `mhd` command of the environment running Snakemake, activated or not.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

SPLITS = {mconfig.split_id(DATASET, r): mconfig.split_params(r) for runs in RUNS.values() for r in runs}
GRAPHS = {mconfig.graph_id(r): mconfig.graph_params(r) for runs in RUNS.values() for r in runs}


wildcard_constraints:
    dataset="[a-z0-9_]+",
    experiment="[^/]+",
    split="[^/]+",
    graph="[^/]+",


# A stage's parameters go to its command as one JSON object with the keywords of the package function
# that takes them (mhd split --params '{...}' -> splits.make(labels, classes, **params)).
def prepare_params(wildcards):
    return json.dumps(mconfig.prepare_params(CONFIG["dataset"]), sort_keys=True)


def split_params(wildcards):
    if wildcards.split not in SPLITS:
        raise WorkflowError(f"split {wildcards.split!r} is not used by any experiment of the config")
    return json.dumps(SPLITS[wildcards.split], sort_keys=True)


def graph_params(wildcards):
    if wildcards.graph not in GRAPHS:
        raise WorkflowError(f"graph {wildcards.graph!r} is not used by any experiment of the config")
    return json.dumps(GRAPHS[wildcards.graph], sort_keys=True)


def write_logged(write, path, content, log):
    """A small file written by the Snakemake process itself (run_config, experiment_spec), and its log."""
    write(path, content)
    Path(log).write_text(f"wrote {path}\n")


def prepared(ext):
    return f"data/prepared/{DATASET}.{ext}"


def data_artefacts(wildcards=None):
    """What DVC versions: the prepared dataset, every split and every graph of the config."""
    return (
        [prepared("pt"), prepared("json")]
        + [f"data/splits/{s}/{f}" for s in sorted(SPLITS) for f in ("indices.csv", "stats.csv", "split.json")]
        + [f"data/graphs/{g}/{f}" for g in sorted(GRAPHS) for f in ("edges.csv", "graph.json")]
    )


# ---------------------------------------------------------------- training runs
TRAINED = {mconfig.run_id(DATASET, r): r for runs in mconfig.trained(CONFIG, RUNS).values() for r in runs}


def _run(wildcards):
    if wildcards.run not in TRAINED:
        raise WorkflowError(f"run {wildcards.run!r} is not part of any experiment of the config")
    return TRAINED[wildcards.run]


def run_inputs(wildcards):
    r = _run(wildcards)
    split, graph = mconfig.split_id(DATASET, r), mconfig.graph_id(r)
    return {
        "prepared": prepared("pt"),
        "split": f"data/splits/{split}/indices.csv",
        "split_meta": f"data/splits/{split}/split.json",
        "graph": f"data/graphs/{graph}/edges.csv",
    }


def run_file(wildcards):
    """What `mhd train --config` reads (RUN.yaml): the run's every setting and the paths of its inputs."""
    inputs = run_inputs(wildcards)
    return {
        "run": _run(wildcards),
        "inputs": {
            "prepared": inputs["prepared"],
            "split": str(Path(inputs["split"]).parent),
            "graph": str(Path(inputs["graph"]).parent),
        },
    }


def run_gpus(wildcards):
    """1 when the run trains on a GPU: device cuda, or device auto where this execution has GPUs to give
    (`--resources gpu=N`, as profiles/gpu sets). Never decided by asking torch on the submitting host: a
    login node without a GPU must not make cluster jobs CPU-only, nor a GPU laptop make them claim one.
    The job itself picks its device where it runs (mhd train: auto = CUDA when present)."""
    device = _run(wildcards)["device"]
    if device == "auto":
        return int("gpu" in workflow.global_resources)
    return int(device == "cuda")


# A train job claims enough of --cores that no more of them run at once than this machine has CPUs,
# and gives torch exactly its share: `--cores 8` runs 2 one-thread jobs on 2 CPUs and 8 on 8 CPUs,
# `--cores 1` on 2 CPUs one job with 2 threads. A profile's set-threads (SLURM) is used as given.
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
try:
    _CORES = workflow.cores if isinstance(workflow.cores, int) and workflow.cores > 0 else CPUS
except WorkflowError:  # a cluster executor without --cores: jobs are sized by the profile's set-threads
    _CORES = CPUS
TRAIN_THREADS = max(1, -(-_CORES // CPUS))
_TORCH_THREADS = max(1, TRAIN_THREADS * CPUS // _CORES)


def torch_threads(wildcards, threads):
    return _TORCH_THREADS if threads == TRAIN_THREADS else threads


def all_runs(wildcards=None):
    return [f"results/runs/{run}/metrics.csv" for run in sorted(TRAINED)]


# ---------------------------------------------------------------- experiments and their figures
FIGURED = {name: exp["figure"] for name, exp in CONFIG["experiments"].items() if "figure" in exp}


def _experiment(wildcards):
    if wildcards.experiment not in FIGURED:
        raise WorkflowError(f"experiment {wildcards.experiment!r} has no figure in the config")
    return wildcards.experiment, CONFIG["experiments"][wildcards.experiment]


def experiment_spec(wildcards):
    """What `mhd figure --spec` reads: the figure kind, the swept key and the experiment's artefacts."""
    name, exp = _experiment(wildcards)
    spec = {
        "name": name,
        "figure": exp["figure"],
        "description": exp.get("description", ""),
        "x": swept_key(exp),
        "dataset_meta": prepared("json"),
    }
    runs = RUNS[name]
    spec["splits"] = list(dict.fromkeys(f"data/splits/{mconfig.split_id(DATASET, r)}" for r in runs))  # row order
    spec["graphs"] = sorted({f"data/graphs/{mconfig.graph_id(r)}" for r in runs})
    if exp["figure"] not in DATA_KINDS:
        ids = sorted({mconfig.run_id(DATASET, r) for r in runs})
        spec["runs"] = [
            {
                "id": rid,
                "dir": f"results/runs/{rid}",
                "split": f"data/splits/{mconfig.split_id(DATASET, TRAINED[rid])}",
                "graph": f"data/graphs/{mconfig.graph_id(TRAINED[rid])}",
            }
            for rid in ids
        ]
    return spec


def figure_inputs(wildcards):
    spec = experiment_spec(wildcards)
    files = [f"{s}/stats.csv" for s in spec["splits"]] + [f"{s}/split.json" for s in spec["splits"]]
    files += [f"{g}/edges.csv" for g in spec["graphs"]] + [spec["dataset_meta"]]
    if spec["figure"] == "label_distribution":  # its stats.csv are checked against indices.csv over the labels
        files += [f"{s}/indices.csv" for s in spec["splits"]] + [prepared("pt")]
    for r in spec.get("runs", []):
        files += [f"{r['dir']}/metrics.csv", f"{r['dir']}/run.yaml", f"{r['dir']}/run.json"]
    return files


# A study's claims are compared with the reference's (written by `mhd numbers`); the reference study
# itself is not compared with a snapshot of its own.
_REFERENCE_CLAIMS = Path(workflow.basedir) / "docs" / "reference" / "claims.csv"
_COMPARED = _REFERENCE_CLAIMS.exists() and STUDY != "reference"
CLAIMS_REFERENCE_FILE = [str(_REFERENCE_CLAIMS)] if _COMPARED else []  # an input: a new one reruns
CLAIMS_REFERENCE = f"--reference {shlex.quote(str(_REFERENCE_CLAIMS))}" if _COMPARED else ""


def all_figures(wildcards=None):
    trained = [f"{RESULTS}/summary.csv", f"{RESULTS}/claims.md"] if TRAINED else []
    return [f"{FIGURES}/{name}.png" for name in sorted(FIGURED)] + trained


def cancel_pending_timers():
    """profiles/default sets max-jobs-per-timespan to 1000/60s: each pass of Snakemake's scheduler arms a
    re-evaluation timer of that timespan, and every job that ends starts one more such chain, so at the
    default 100/1s the chains of timers grow with the jobs done and take a share of a core
    (docs/performance.md). A job ending wakes the scheduler anyway. The Snakefile's
    onsuccess and onerror handlers call this: the timers still pending are cancelled, so that Snakemake
    exits at once instead of waiting up to a timespan for them."""
    import threading

    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()
