"""The workflow end to end: Snakemake on the smoke config over a tiny dataset in the real format."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
# metrics.csv of the smoke workflow on the tiny dataset (tests/fakedata.py), torch 2.13.0 CPU, this
# machine kind. The package's split into stages changed no byte of them (then isolated 8020c37e...,
# MHD fe69035d...); the default include_self: true then changed MHD's numbers, and every run's id
# (include_self is a setting of every run), as intended (MHD c8ac2092...). The teacher rules' keys
# changed every id again, and MHD's file gained its teacher_precision rows: without them it is
# c8ac2092... to the byte. The precision key (fp32 in config/smoke.yaml) and ids that hash the split and graph
# by their parameters changed the ids, not the bytes. The validation split (drawn after the public and
# private sets, which stay the same) changed every id and added the val_ rows: without them the files
# are the earlier ones to the byte (BEFORE_VALIDATION)
SMOKE_METRICS_SHA256 = {
    "isolated-h0-ring-n4-7b4e5093f3": "3ff2dbc418680f1e5a0cac137cbbc26fccfaf1e7ffee20d904180e8702f1b3ed",
    "mhd-h3-ring-n4-5d2acfdfb4": "8179daba461862a62eee3ea33e1b8421e4b083c9e75f868e5dc3ed802ee65b88",
}
BEFORE_VALIDATION = ("8020c37e3f3f70e0c23c239e22d801b3c445ef6146c6014d6b40a218911b8086",
                     "5eed64cc27f15504a71ba7f10930b643f26e772054f1f2ae95555eb3518280c3")
BIN = Path(sys.executable).parent


def _snakemake(repo, workdir, args, configfiles, cores):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir),
           "--cores", str(cores), *args]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    return cmd, {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def snakemake(repo, workdir, *args, configfiles=(), cores=2):
    cmd, env = _snakemake(repo, workdir, args, configfiles, cores)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def start_snakemake(repo, workdir, *args, configfiles=(), cores=2):
    """In the background, in its own process group (so that a test can SIGKILL all of it)."""
    cmd, env = _snakemake(repo, workdir, args, configfiles, cores)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def tiny_overlay(tmp_path, tiny_idx, **extra):
    """The tiny dataset laid over a config; it names the smoke study (the last overlay names the study)."""
    overlay = {"study": "smoke", "dataset": {"root": str(tiny_idx), "verify": False, "download": False}, **extra}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def test_lint_is_clean(repo):
    res = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=repo, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_rules_are_snakefmt_clean(repo):
    """The Snakefile and workflow/rules as snakefmt writes them (line length 120, pyproject.toml)."""
    res = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"], cwd=repo,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_only_training_is_sent_to_a_cluster(repo, tiny_idx, tmp_path):
    """Under an executor such as profiles/slurm, every rule but train runs on the submitting host (no
    sbatch for a job of seconds). Snakemake has no public call for this: the condition below is
    Workflow.is_local's when the executor is not local."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    configs = [repo / "config" / "smoke.yaml", tiny_overlay(tmp_path, tiny_idx)]
    with SnakemakeApi() as api:
        wf = api.workflow(resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings(configfiles=configs),
                          snakefile=repo / "Snakefile", workdir=tmp_path / "w")
        workflow = wf._workflow
        remote = [r.name for r in workflow.rules
                  if not (r.group is None and (r.name in workflow._localrules or r.norun or r.is_template_engine))]
        assert sorted(remote) == ["train"]


def test_gpus_are_claimed_where_the_execution_has_them(repo, tiny_idx, tmp_path):
    """device auto claims a GPU only under --resources gpu=N (profiles/gpu), never by asking the
    submitting host's torch; device cpu never claims one."""
    def claimed(device, *extra):
        overlay = tiny_overlay(tmp_path, tiny_idx, run={"device": device})
        res = snakemake(repo, tmp_path / "w", "-n", "all_runs", *extra, configfiles=[repo / "config" / "smoke.yaml", overlay])
        assert res.returncode == 0, res.stderr[-2000:]
        return {line.split("gpu=")[1].split(",")[0] for line in (res.stdout + res.stderr).splitlines()
                if line.strip().startswith("resources:") and "gpu=" in line}

    assert claimed("auto", "--resources", "gpu=2") == {"1"}
    assert claimed("auto") == {"0"} and claimed("cpu", "--resources", "gpu=2") == {"0"}
    profile = yaml.safe_load((repo / "profiles" / "gpu" / "config.yaml").read_text())
    assert profile["resources"] == ["gpu=1"]


def test_smoke_workflow_end_to_end(repo, tiny_idx, tmp_path):
    work = tmp_path / "work"
    configs = [repo / "config" / "smoke.yaml", tiny_overlay(tmp_path, tiny_idx)]
    res = snakemake(repo, work, "all_figures", "all_runs", configfiles=configs)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = sorted(p.name for p in (work / "results" / "runs").iterdir())
    assert [r.split("-")[0:2] for r in runs] == [["isolated", "h0"], ["mhd", "h3"]]
    for run in runs:
        folder = work / "results" / "runs" / run
        for f in ("run.yaml", "metrics.csv", "run.json", "checkpoint.pt", "benchmark.tsv"):
            assert (folder / f).exists(), f"{run}/{f}"
        record = json.loads((folder / "run.json").read_text())
        assert record["run"]["method"] == run.split("-")[0] and record["versions"]["torch"]
        assert "step 12/12" in (work / "logs" / "train" / f"{run}.log").read_text()
    # the numbers themselves, to the byte: a refactor changes none of them (same torch build, same CPU kind)
    digests = {run: hashlib.sha256((work / "results" / "runs" / run / "metrics.csv").read_bytes()).hexdigest()
               for run in runs}
    assert digests == SMOKE_METRICS_SHA256
    test_only = tuple(hashlib.sha256("".join(line for line in (work / "results" / "runs" / run / "metrics.csv").read_text()
                                             .splitlines(keepends=True) if ",val_" not in line).encode()).hexdigest()
                      for run in runs)
    assert test_only == BEFORE_VALIDATION  # the test split's numbers did not move
    heads = {line.split(",")[2] for line in (work / "results" / "runs" / runs[1] / "metrics.csv").read_text().splitlines()[1:]}
    assert heads == {"0", "1", "2", "3", "ensemble", "-"}
    mhd_rows = (work / "results" / "runs" / runs[1] / "metrics.csv").read_text().splitlines(keepends=True)
    before_teacher_precision = "".join(r for r in mhd_rows if ",teacher_precision," not in r and ",val_" not in r)
    assert hashlib.sha256(before_teacher_precision.encode()).hexdigest() == (
        "c8ac20923f4757260e698d256c375e60a073d8e694beaf8850d07fd7327b7979")
    figures = sorted(p.name for p in (work / "figures" / "smoke").iterdir())  # the smoke study's own
    assert figures == [f"{e}.{x}" for e in ("engine", "graphs", "labels") for x in ("pdf", "png")]
    assert (work / "results" / "studies" / "smoke" / "summary.csv").exists()
    assert not (work / "results" / "summary.csv").exists() and not list((work / "figures").glob("*.png"))
    split_log = work / "logs" / "split" / "fashion_mnist-n4-skew100-pub0.1-m200-val10-seed0.log"
    assert split_log.read_text().startswith("split")
    stats = (work / "data" / "splits" / "fashion_mnist-n4-skew1-pub0.1-m200-val10-seed0" / "stats.csv").read_text()
    assert "public,0,15" in stats and "validation,0,10" in stats
    report = snakemake(repo, work, "--report", str(work / "report.html"), configfiles=configs)
    assert report.returncode == 0, report.stderr[-2000:]
    assert (work / "report.html").stat().st_size > 100_000
    again = snakemake(repo, work, "-n", "all_figures", "all_runs", configfiles=configs)
    assert "Nothing to be done" in again.stdout + again.stderr
    # a second study in the same checkout: its own summary, claims and figures; the runs it shares with
    # the smoke study are not trained again, and nothing of the smoke study is rewritten
    smoke_files = {p: p.stat().st_mtime_ns for d in ("results", "figures") for p in (work / d).rglob("*") if p.is_file()}
    other = tmp_path / "other-study.yaml"
    other.write_text(yaml.safe_dump({"experiments": {"again": {"figure": "learning_curves", "rows": [
        {"method": "isolated", "topology": "ring"}, {"method": "mhd", "heads": 3, "topology": "ring"}]}}}))
    second = snakemake(repo, work, "all_figures", configfiles=[*configs, other])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "rule train:" not in second.stdout + second.stderr
    assert {p: p.stat().st_mtime_ns for p in smoke_files} == smoke_files, "the second study rewrote a file"
    assert (work / "figures" / "other-study" / "again.png").exists()  # an overlay's study: its file's stem
    assert (work / "results" / "studies" / "other-study" / "claims.md").exists()


def test_bad_config_stops_before_any_job(repo, tiny_idx, tmp_path):
    overlay = tiny_overlay(tmp_path, tiny_idx, run={"skeww": 3})
    res = snakemake(repo, tmp_path / "work", "all_figures", configfiles=[overlay])
    assert res.returncode != 0
    assert "unknown key 'skeww' under run" in res.stderr + res.stdout
    assert not (tmp_path / "work" / "data").exists()


def test_impossible_split_names_the_class(repo, tiny_idx, tmp_path):
    overlay = tiny_overlay(tmp_path, tiny_idx, run={"samples_per_client": 300})
    res = snakemake(repo, tmp_path / "work", "data_artefacts",
                    configfiles=[repo / "config" / "smoke.yaml", overlay])
    assert res.returncode != 0
    log = (tmp_path / "work" / "logs" / "split" / "fashion_mnist-n4-skew100-pub0.1-m300-val10-seed0.log").read_text()
    assert "impossible split: the clients together need" in log and "of class" in log
    assert not (tmp_path / "work" / "data" / "splits" / "fashion_mnist-n4-skew100-pub0.1-m300-val10-seed0").exists()


def run(cmd, cwd, **kw):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, shell=isinstance(cmd, str), **kw)
    assert res.returncode == 0, f"{cmd}: {res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res.stdout + res.stderr


def test_dvc_round_trip(repo, tiny_idx, tmp_path):
    """repro, push to a local remote, clone, pull: Snakemake then wants nothing the pull restored;
    a corrupted object in the remote is detected and not used."""
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    proj = tmp_path / "proj"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=repo, capture_output=True,
                           text=True).stdout.split()
    for f in files:
        if (repo / f).is_file() and not f.startswith(("tests/", "docs/")):
            (proj / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / f, proj / f, follow_symlinks=False)
    # this copy's default config is the smoke config over the tiny dataset
    base = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    smoke = yaml.safe_load((repo / "config" / "smoke.yaml").read_text())
    from mhd.config import merge
    cfg = merge(merge(base, smoke), yaml.safe_load(tiny_overlay(tmp_path, tiny_idx).read_text()))
    cfg["run"]["topology"] = "ring"  # the smoke runs' graph: they are then the default run that metrics.json reads
    cfg["study"] = "default"  # the study dvc.yaml tracks (results/summary.csv, results/metrics.json)
    (proj / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    git = "git -c user.email=t@example.invalid -c user.name=t"
    run(f"{git} init -q && {git} add -A && {git} commit -qm init", proj)
    run("dvc repro -q", proj)
    # what DVC users look at: the default run's readouts per method, and their curves
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    shown = json.loads(subprocess.run("dvc metrics show --json", cwd=proj, shell=True, capture_output=True, text=True,
                                      env=env, check=True).stdout)
    readouts = shown[""]["data"]["results/metrics.json"]["data"]
    # DVC's params are the runs' settings only: no descriptions or figure names in `dvc exp show`
    params = json.loads(subprocess.run("dvc params diff --all --json", cwd=proj, shell=True, capture_output=True,
                                       text=True, env=env, check=True).stdout)["config/config.yaml"]
    assert "run.steps" in params and all(p.startswith(("run.", "dataset.")) for p in params), sorted(params)[:5]
    assert set(readouts) == {"MHD (H=3)", "isolated"}  # the smoke config's methods
    assert 0 < readouts["MHD (H=3)"]["shared_best"] <= 1 and readouts["isolated"]["seeds"] == 1
    run("dvc plots show -q -o plots", proj)
    page = (proj / "plots" / "index.html").read_text()
    assert "Shared accuracy of the best head" in page and "Private accuracy of the main head" in page
    assert "curves_shared_MHD_H3_csv" in page and "curves_private_isolated_csv" in page  # a plot per method file
    # a changed description reruns the results stage: DVC deletes nothing, Snakemake retrains nothing
    trained = {p: p.stat().st_mtime_ns for p in (proj / "results" / "runs").glob("*/*") if p.is_file()}
    other = proj / "results" / "runs" / "run-of-another-overlay" / "metrics.csv"
    other.parent.mkdir()
    other.write_text("step,client,head,metric,value\n")
    cfg["experiments"]["engine"]["description"] = "The same runs, described in other words."
    (proj / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run(f"{git} commit -qam describe && dvc repro -q", proj)
    assert {p: p.stat().st_mtime_ns for p in trained} == trained, "a run was retrained or rewritten"
    assert other.exists(), "DVC deleted a run it did not make"
    assert "other words" in (proj / "results" / "experiments" / "engine.json").read_text()
    other.unlink()
    other.parent.rmdir()
    # the default remote, out of the box: a folder beside the clone (.dvc/config), shared by the clones
    # beside it; make push / make pull with this environment (-o setup: nothing to install)
    remote = tmp_path / "mhd-dvc-store"
    make = f"make -o setup VENV={Path(sys.executable).parent.parent}"
    run(f"{git} add -A && {git} commit -qm lock && {make} push", proj)
    assert (remote / "files" / "md5").is_dir()
    run(f"git clone -q {proj} {tmp_path / 'clone'}", tmp_path)
    clone = tmp_path / "clone"
    # dvc pull, then snakemake --touch: DVC restores files in any order, --touch gives them the workflow's
    run(f"{make} pull", clone)
    for path in ("data/splits", "results/summary.csv", "figures/engine.png"):
        assert (clone / path).exists(), path
    assert list((clone / "results" / "runs").glob("*/checkpoint.pt"))
    out = run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "all_figures", "all_runs"], clone)
    assert "Nothing to be done" in out, out[-3000:]
    assert "up to date" in run("dvc status", clone)
    # corrupt one object in the remote: a fresh clone's pull detects it and does not check it out
    stats = clone / "data" / "splits" / "fashion_mnist-n4-skew1-pub0.1-m200-val10-seed0" / "stats.csv"
    digest = __import__("hashlib").md5(stats.read_bytes()).hexdigest()
    obj = remote / "files" / "md5" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    obj.write_text("client,class,count\n0,0,999999\n")
    run(f"git clone -q {proj} {tmp_path / 'clone2'}", tmp_path)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run("dvc pull", cwd=tmp_path / "clone2", shell=True, capture_output=True, text=True, env=env)
    assert res.returncode != 0 and "failed" in res.stdout + res.stderr
    assert not (tmp_path / "clone2" / stats.relative_to(clone)).exists()

EVERY_KIND = {
    "my_ablation": {"figure": "ablation", "grid": {"tau": [1.0, 2.0]}},
    "heads": {"figure": "per_head", "grid": {"heads": [1, 2]}},
    "skews": {"figure": "sweep", "rows": [{"method": "isolated"}, {"method": "mhd"}], "grid": {"skew": [1, 100]}},
    "topos": {"figure": "topologies", "grid": {"topology": ["ring", "chain"]}},
    "hops": {"figure": "transitive", "grid": {"topology": ["ring", "chain"]}},
    "theory": {"figure": "theory", "grid": {"topology": ["ring", "chain"]}},
    "comm": {"figure": "communication", "rows": [{"method": "mhd"}, {"method": "fedavg", "fedavg_every": 3}]},
    "mixed": {"figure": "heterogeneous", "rows": [{"method": "isolated"}, {"method": "mhd", "nu_emb": 1.0}],
              "grid": {"architectures": [["cnn", "resnet8", "cnn", "resnet8"]]}},
    "front": {"figure": "pareto", "rows": [{"method": "isolated"}, {"method": "mhd"}, {"method": "mhd", "nu_aux": 0.3},
                                           {"method": "single_head", "nu_main": 0.3}, {"method": "single_head"},
                                           {"method": "mhd", "teacher": "energy"}]},
    "rules": {"figure": "teacher_precision", "rows": [{"method": "mhd"}, {"method": "mhd", "teacher": "energy"},
                                                      {"method": "mhd", "teacher": "density", "density_refit_every": 2},
                                                      {"method": "mhd", "topology": "complete", "teacher": "density",
                                                       "density_refit_every": 2}]},
}


def test_an_experiment_in_the_config_yields_its_figure_without_editing_a_rule(repo, tiny_idx, tmp_path):
    """Every training figure kind, each from a few lines of config only."""
    from mhd.report.kinds import TRAINING_KINDS

    # learning_curves is the smoke workflow's figure (test_smoke_workflow_end_to_end)
    assert {e["figure"] for e in EVERY_KIND.values()} | {"learning_curves"} == set(TRAINING_KINDS), "a kind untested"
    overlay = tiny_overlay(tmp_path, tiny_idx, run={"steps": 6, "eval_every": 3}, experiments=EVERY_KIND)
    work = tmp_path / "work"
    res = snakemake(repo, work, "all_figures", configfiles=[repo / "config" / "smoke.yaml", overlay])
    assert res.returncode == 0, res.stderr[-3000:]
    for name in EVERY_KIND:
        for ext in ("png", "pdf"):
            assert (work / "figures" / "smoke" / f"{name}.{ext}").stat().st_size > 5000, f"{name}.{ext}"
    summary = (work / "results" / "studies" / "smoke" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("run,step,client,head,") and "tau" in summary[0].split(",")
    assert "converged" in summary[0].split(",")
    claims = (work / "results" / "studies" / "smoke" / "claims.md").read_text()
    assert "1. MHD lifts shared accuracy" in claims and "Runs that have not converged" in claims
    table = run([sys.executable, "-m", "mhd", "table", "--spec", "results/studies/smoke/experiments/skews.json", "--where",
                 "skew=100.0"], work).splitlines()
    assert table[0].startswith("| method | seeds | head 0 |") and table[2].startswith("| isolated | 1 | 0.")
    assert table[3].startswith("| mhd (H=3) | 1 |") and len(table) == 4
    # shared runs are trained once: the default MHD run belongs to several of these experiments
    assert len(list((work / "results" / "runs").iterdir())) < sum(
        len(e.get("rows", [{}])) * max(1, *[len(v) for v in e.get("grid", {"": [0]}).values()]) for e in EVERY_KIND.values())


def test_paper_config_plans_the_gpu_sweep(repo, tmp_path):
    res = snakemake(repo, tmp_path / "plan", "-n", "all_figures", configfiles=[repo / "config" / "paper.yaml"])
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "cifar100-n8-skew100-pub0.2-m4000-val50-seed0" in out
    train_jobs = out.split("rule train:")[1:]
    assert train_jobs and all("gpu=1" in job.split("rule ")[0] for job in train_jobs)


def test_killed_workflow_reruns_without_retraining_finished_runs(repo, tiny_idx, tmp_path):
    work = tmp_path / "work"
    overlay = tiny_overlay(tmp_path, tiny_idx, run={"steps": 60, "eval_every": 10})
    configs = [repo / "config" / "smoke.yaml", overlay]
    proc = start_snakemake(repo, work, "all_runs", configfiles=configs, cores=1)
    runs = work / "results" / "runs"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        done = list(runs.glob("*/run.json")) if runs.exists() else []
        started = [p for p in runs.glob("*/checkpoint.pt") if not (p.parent / "run.json").exists()] if runs.exists() else []
        if done and started:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(done) == 1 and started, "the workflow was not caught between its two runs"
    finished = done[0].read_bytes()
    unlock = snakemake(repo, work, "--unlock", "all_runs", configfiles=configs)  # SIGKILL leaves Snakemake's lock
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    res = snakemake(repo, work, "all_runs", configfiles=configs)
    assert res.returncode == 0, res.stderr[-3000:]
    assert done[0].read_bytes() == finished, "a finished run was trained again"
    resumed = json.loads((started[0].parent / "run.json").read_text())
    assert resumed["resumed_from_step"] >= 10


def test_a_second_snakemake_in_the_same_folder_is_refused(repo, tiny_idx, tmp_path):
    work = tmp_path / "work"
    overlay = tiny_overlay(tmp_path, tiny_idx, run={"steps": 400, "eval_every": 200})
    configs = [repo / "config" / "smoke.yaml", overlay]
    first = start_snakemake(repo, work, "all_runs", configfiles=configs)
    try:
        locks, deadline = work / ".snakemake" / "locks", time.time() + 120
        while time.time() < deadline and not (locks.exists() and any(locks.iterdir())):
            time.sleep(0.05)
        assert first.poll() is None, "the first snakemake ended before the second started"
        second = snakemake(repo, work, "all_runs", configfiles=configs)
        assert second.returncode != 0
        assert "LockException" in second.stderr + second.stdout or "cannot be locked" in second.stderr + second.stdout
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


def test_workflow_bench_times_all_figures_against_the_trainer(repo, tiny_idx, tmp_path, capsys):
    """`mhd bench --workflow` on the smoke config: all_figures from an empty results/, the images its runs
    trained, and the ideal time those images take at the bench throughput on the same cores."""
    from mhd.cli import main

    work, out = tmp_path / "work", tmp_path / "workflow.json"
    (work / "results").mkdir(parents=True)
    (work / "results" / "stale.txt").write_text("from an earlier run")
    (work / ".mhd-bench-work").write_text("made by an earlier bench\n")  # only such a folder is emptied
    configs = [str(repo / "config" / "smoke.yaml"), str(tiny_overlay(tmp_path, tiny_idx))]
    assert main(["bench", "--workflow", "--cores", "2", "--rounds", "1", "--work", str(work), "--out", str(out),
                 "--configfile", *configs]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads(out.read_text())
    assert not (work / "results" / "stale.txt").exists()  # from an empty results/
    assert sorted(p.name for p in (work / "figures" / "smoke").glob("*.png")) == ["engine.png", "graphs.png", "labels.png"]
    # smoke: 4 clients, 16 private + 16 public images per client per step, 12 steps; isolated uses no public batch
    assert result["runs"] == 2 and result["images_trained"] == 12 * (4 * 16) + 12 * (4 * 16 + 4 * 16)
    slots = min(2, result["cpus"])
    assert result["ideal_s"] == pytest.approx(result["images_trained"] / result["side_by_side_img_s"], abs=1e-3)
    assert result["ideal_linear_s"] == pytest.approx(result["images_trained"] / (result["bench_mhd_img_s"] * slots),
                                                     abs=1e-3)
    assert result["side_by_side_processes"] == slots and result["side_by_side_img_s"] > 0
    # the side-by-side rounds bracket the timed workflow: one before it and one after it (--rounds 1)
    before, after = result["side_by_side_before_img_s"], result["side_by_side_after_img_s"]
    assert result["side_by_side_rounds"] == [before, after]
    assert result["side_by_side_img_s"] == pytest.approx((before + after) / 2, abs=0.1)
    drifted = abs(after - before) / result["side_by_side_img_s"] > 0.10
    assert drifted == any(w.startswith("side by side:") for w in result["bench_warnings"])
    assert result["wall_over_ideal"] == pytest.approx(result["wall_s"] / result["ideal_s"], rel=1e-2)
    assert 0 < result["snakemake_elapsed_s"] <= result["wall_s"] and result["cpu_s"] > 0
    assert 0 < result["eval_s"] < result["train_loop_s"] < result["train_jobs_s"]
    # the wall time over the step loops' time without evaluation, per slot (the JSON rounds both to 0.1 s)
    loops_lo, loops_hi = (result["train_loop_s"] - result["eval_s"] + d for d in (-0.1, 0.1))
    assert result["wall_s"] * slots / loops_hi <= result["wall_over_steps"] <= result["wall_s"] * slots / loops_lo
    assert result["wall_over_steps"] > 1
    assert result["machine"] == f"cpu-{result['cpus']}cores"
