"""`mhd bench --workflow`: the whole workflow timed, against the trainer's own speed on the same cores.

In a work folder (default `benchmarks/work/`; a new or empty one, or one the bench made and marked with
`.mhd-bench-work`: any other is refused, since its results/, figures/, logs/ and .snakemake/ are
deleted), from an empty results/:
1. the data stage (`snakemake data_artefacts`: prepared dataset, splits, graphs), not timed; the
   project's data/prepared/ is linked in where it exists;
2. the trainer's images per second on this machine, measured now: `mhd bench` with one thread
   (interleaved rounds, median), and the same MHD step in min(C, CPUs) processes side by side, one
   thread each, as the workflow's train jobs run (throughput.concurrent: their summed images per
   second per round);
3. `snakemake all_figures --cores C`, timed: wall time, Snakemake's own `Elapsed time`, and the CPU
   seconds of every process it ran;
4. the side-by-side rounds again, after the workflow.

The ideal is the time the images the runs trained would take at the trainer's throughput on the same
cores: images / (the side-by-side throughput, the median of the rounds before and after the workflow).
`wall_over_ideal` is the wall time over it: 1 would be a workflow that costs nothing beyond its
trainer's steps. A machine's speed drifts over a workflow's length (docs/performance.md), so the rounds
bracket the timed workflow, and a warning says when their medians before and after differ by more than 10 %.
`wall_over_steps` is drift-free but says less: the wall time over the step loops' own time inside the
workflow, spread over the cores (what the workflow adds around the steps: start-up, evaluation,
scheduling, idle cores). `wall_over_ideal_linear` divides by one process's throughput times the cores
instead, the ideal of a machine whose cores share nothing. The bench measures the config's MHD
setting; runs that cost more per image than it (isolated, FedAvg, centralized) make the ideal a little
shorter than theirs.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ..errors import MHDError

CLEARED = ("results", "figures", "logs", ".snakemake")  # what "from an empty results/" removes
# written by the bench in a work folder it makes: the only folders whose CLEARED folders it deletes
MARKER = ".mhd-bench-work"
SIDE_BY_SIDE_STEPS = 200  # timed steps per process side by side: enough that the processes overlap throughout
DRIFT_WARNING = 0.10  # side-by-side medians before and after the workflow further apart than this: the machine changed


def cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine_name() -> str:
    """The name benchmark files carry: cpu-<N>cores, as benchmarks/results/ names the other benches."""
    return f"cpu-{cpus()}cores"


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _elapsed(text: str) -> float | None:
    """Snakemake's closing `Elapsed time: H:MM:SS.ffffff`, in seconds."""
    found = re.findall(r"Elapsed time: (\d+):(\d\d):(\d\d(?:\.\d+)?)", text)
    if not found:
        return None
    h, m, s = found[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


def _snakemake(repo: Path, work: Path, target: str, cores: int, configfiles: list[Path], log: Path) -> str:
    """Run Snakemake on the repository's Snakefile in `work`; its output goes to `log`."""
    cmd = [sys.executable, "-m", "snakemake", target, "--cores", str(cores), "--snakefile", str(repo / "Snakefile"),
           "--directory", str(work)]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        res = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=repo)
    text = log.read_text()
    if res.returncode:
        raise MHDError(f"snakemake {target} failed in {work} (exit {res.returncode}); its output: {log}\n"
                       + "\n".join(text.splitlines()[-15:]))
    return text


def _runs(work: Path) -> list[dict]:
    """Per trained run: images trained, the train job's seconds (benchmark.tsv), evaluation seconds."""
    rows = []
    for record_path in sorted((work / "results" / "runs").glob("*/run.json")):
        record = json.loads(record_path.read_text())
        with open(record_path.parent / "benchmark.tsv") as fh:
            job_s = float(next(csv.DictReader(fh, delimiter="\t"))["s"])
        rows.append({"run": record_path.parent.name, "images": record["images_per_step"] * record["run"]["steps"],
                     "job_s": job_s, "train_s": record["wall_time_s"], "eval_s": record["eval_s"],
                     "img_s": record["images_per_s"]})
    return rows


def _merged_config(repo: Path, configfiles: list[Path], work: Path) -> Path:
    """The config `mhd bench` measures: the base with the overlays, as the workflow reads them."""
    if not configfiles:
        return repo / "config" / "config.yaml"
    from .. import config as mconfig
    from ..data import files

    merged = mconfig.merge_layered(repo / "config" / "config.yaml", [str(p) for p in configfiles])
    return files.write_json(work / "bench-config.json", merged)


def prepare_work(work: str | Path) -> None:
    """Make `work` ready for a workflow from an empty results/: a new or empty folder is made and marked
    (MARKER); in a folder that holds MARKER (one the bench made) the CLEARED folders are deleted. Any other
    folder (the project itself, a home folder) is refused, and nothing in it is touched; a folder an earlier
    bench left before it marked its folders (bench-logs/ and bench-config.json) is taken as the bench's."""
    from ..data import files

    work = Path(work)
    allowed = (f"a new or empty folder, or one that `mhd bench --workflow` made (it holds {MARKER}), as the default "
               f"benchmarks/work")
    if os.path.lexists(work) and not work.is_dir():
        raise MHDError(f"--work {work}: not a folder; allowed: {allowed}")
    earlier = (work / "bench-logs").is_dir() and (work / "bench-config.json").is_file()  # left by a bench before MARKER
    if work.is_dir() and not (work / MARKER).is_file() and not earlier and any(work.iterdir()):
        raise MHDError(f"--work {work}: not empty, and not made by `mhd bench --workflow` (no {MARKER} in it), "
                       f"while the bench deletes the {', '.join(n + '/' for n in CLEARED)} of its work folder; "
                       f"allowed: {allowed}")
    work.mkdir(parents=True, exist_ok=True)
    if not (work / MARKER).is_file():
        files.write_text(work / MARKER, f"A work folder of `mhd bench --workflow`: each bench deletes its "
                                         f"{', '.join(n + '/' for n in CLEARED)}\n")
    for name in CLEARED:
        shutil.rmtree(work / name, ignore_errors=True)


def bench_workflow(cores: int = 8, configfiles: list[str] = (), work: str | Path = "benchmarks/work",
                   rounds: int = 3, repo: str | Path = ".", progress=print) -> dict:
    """The steps of the module docstring; returns the JSON written to benchmarks/results/."""
    from .. import config as mconfig

    repo, work = Path(repo).resolve(), Path(work).resolve()
    overlays = [Path(p).resolve() for p in configfiles]
    for p in overlays:
        if not p.is_file():
            raise MHDError(f"--configfile {p}: no such file")
    prepare_work(work)  # before torch's import: a refused folder is a message at once
    from ..learning.precision import resolve
    from .throughput import bench, concurrent, relative_spread

    prepared = repo / "data" / "prepared"
    if prepared.is_dir() and not (work / "data" / "prepared").exists() and prepared != work / "data" / "prepared":
        (work / "data").mkdir(exist_ok=True)
        shutil.copytree(prepared, work / "data" / "prepared", copy_function=os.link)
    progress(f"mhd bench --workflow: data stage in {work} (not timed)")
    _snakemake(repo, work, "data_artefacts", cores, overlays, work / "bench-logs" / "data.log")

    slots = min(cores, cpus())
    progress(f"mhd bench --workflow: trainer throughput, one thread, {rounds} interleaved rounds; then "
             f"{slots} processes side by side, {rounds} rounds")
    with contextlib.chdir(work):  # the bench reads the work folder's data/prepared
        config = str(_merged_config(repo, overlays, work))
        run = mconfig.load_any(config)["run"]
        own = resolve(run["precision"], run["device"])  # the precision the workflow's runs compute in
        throughput = bench(config, threads=1, rounds=rounds, precisions=(own,))
        heads = max(1, run["heads"])
        side_job = {"config": config, "overrides": {"method": "mhd", "heads": heads}, "device": "auto",
                    "threads": 1, "warmup": 5, "steps": SIDE_BY_SIDE_STEPS, "variant": "trainer"}
        before = concurrent(side_job, slots, rounds)

    progress(f"mhd bench --workflow: snakemake all_figures --cores {cores} (timed; log {work / 'bench-logs'})")
    cpu0, t0 = _children_cpu_s(), time.perf_counter()
    text = _snakemake(repo, work, "all_figures", cores, overlays, work / "bench-logs" / "all_figures.log")
    wall, cpu_s = time.perf_counter() - t0, _children_cpu_s() - cpu0
    progress(f"mhd bench --workflow: {slots} processes side by side again, {rounds} rounds (the machine may have "
             f"changed speed during the workflow)")
    with contextlib.chdir(work):
        after = concurrent(side_job, slots, rounds)
    totals = before["totals"] + after["totals"]
    side_by_side = {"img_s": round(statistics.median(totals), 1), "spread": relative_spread(totals)}
    drift = abs(after["img_s"] - before["img_s"]) / side_by_side["img_s"]
    warnings = list(throughput["warnings"])
    if drift > DRIFT_WARNING:
        warnings.append(f"side by side: {before['img_s']:.0f} img/s before the workflow, {after['img_s']:.0f} after "
                        f"({drift:.0%} apart, > {DRIFT_WARNING:.0%}): the machine changed speed, and "
                        f"wall_over_ideal carries it; measure again")
        progress(f"mhd bench --workflow: warning: {warnings[-1]}")

    runs = _runs(work)
    images = sum(r["images"] for r in runs)
    ideal = images / side_by_side["img_s"]
    ideal_linear = images / (throughput["mhd_img_s"] * slots)
    train_job_s = sum(r["job_s"] for r in runs)
    loop_s, eval_s = sum(r["train_s"] for r in runs), sum(r["eval_s"] for r in runs)
    return {
        "machine": machine_name(), "cpus": cpus(), "cores": cores, "configfiles": [str(p) for p in configfiles],
        "runs": len(runs), "images_trained": images,
        "wall_s": round(wall, 2), "snakemake_elapsed_s": _elapsed(text), "cpu_s": round(cpu_s, 1),
        "bench_mhd_img_s": throughput["mhd_img_s"], "bench_spread": throughput["spread"]["mhd"],
        "precision": own,
        "side_by_side_img_s": side_by_side["img_s"], "side_by_side_processes": slots,
        "side_by_side_spread": side_by_side["spread"],
        "side_by_side_before_img_s": before["img_s"], "side_by_side_after_img_s": after["img_s"],
        "side_by_side_rounds": totals,
        "ideal_s": round(ideal, 3), "wall_over_ideal": round(wall / ideal, 3),
        "ideal_linear_s": round(ideal_linear, 3), "wall_over_ideal_linear": round(wall / ideal_linear, 3),
        # where the time went: train jobs (process start to exit), inside them the step loop (evaluation
        # included) and evaluation alone, the rest of each job (start-up, loading); the train jobs' share
        # of the CPU slots over the wall time
        "train_jobs_s": round(train_job_s, 1), "train_loop_s": round(loop_s, 1), "eval_s": round(eval_s, 1),
        "job_outside_loop_s": round(train_job_s - loop_s, 1),
        "busy_fraction": round(train_job_s / (wall * slots), 3),
        # the wall time over the step loops' own time (evaluation out) spread over the slots: what the
        # workflow adds around the steps (start-up, evaluation, scheduling, idle slots), from the same
        # minutes as the wall time, so the machine's drift cancels; the loops' own speed is not in it
        "wall_over_steps": round(wall * slots / (loop_s - eval_s), 3),
        "bench_warnings": warnings,
        "slowest_runs": sorted(runs, key=lambda r: -r["job_s"])[:5],
    }
