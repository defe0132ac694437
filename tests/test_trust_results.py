"""Attacks on what a result is (docs/reliability.md, third round): a metrics.csv or a summary cut
or edited after training and reported as final, a rerun that trains nothing yet writes a new
training record, a checkpoint of other code continued, a retrain after a code edit that retrains
nothing; and the run and summary files that used to end in a traceback."""

import json
import os
import shutil

import pandas as pd
import pytest
import yaml
from test_train import make_run
from test_workflow import snakemake, tiny_overlay

from mhd.cli import main
from mhd.data import files, provenance
from mhd.learning import run as train


def fit(repo, inputs, out, stop_after=None, **over):
    run = make_run(repo, **over)
    return train.train(run, inputs["prepared"], inputs["split_dir"], inputs["graph_dir"], out, device="cpu",
                       progress=False, stop_after=stop_after)


def run_folder(repo, inputs, out, **over):
    """A finished run folder as the workflow leaves it: run.yaml, metrics.csv, run.json, checkpoint.pt."""
    run = make_run(repo, **over)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.yaml").write_text(yaml.safe_dump({"run": run, "inputs": {
        "prepared": str(inputs["prepared"]), "split": str(inputs["split_dir"]), "graph": str(inputs["graph_dir"])}}))
    fit(repo, inputs, out, **over)
    return out


@pytest.fixture(scope="module")
def finished(repo, inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    return [run_folder(repo, inputs, root / "iso", method="isolated"),
            run_folder(repo, inputs, root / "mhd", method="mhd", heads=2)]


def copy_run(src, dst):
    shutil.copytree(src, dst)
    return dst


def refused(argv, capsys, *needles):
    """`mhd ARGV` exits 2 with a one-line message holding every needle, and no traceback."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


# ---------------------------------------------------------------- 1. a partial result is never final
def test_a_cut_metrics_file_is_not_summarised(finished, tmp_path, capsys):
    run = copy_run(finished[1], tmp_path / "run")
    whole = (run / "metrics.csv").read_bytes()
    (run / "metrics.csv").write_bytes(whole[: len(whole) // 2])
    refused(["summarize", "--runs", run, "--out", tmp_path / "s.csv"], capsys, "not the file its training wrote",
            "--forcerun")
    assert not (tmp_path / "s.csv").exists()


def test_a_cut_metrics_file_with_its_hash_rewritten_is_still_not_whole(finished, tmp_path, capsys):
    run = copy_run(finished[1], tmp_path / "run")
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    half = "".join(line for line in lines if not line.startswith("12,"))  # the last evaluation gone
    (run / "metrics.csv").write_text(half)
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "metrics_sha256": files.sha256_bytes(half.encode())}))
    refused(["summarize", "--runs", run, "--out", tmp_path / "s.csv"], capsys, "not a whole run",
            "(last 6)", "to step 12")
    # a client lost from one evaluation
    lost = "".join(line for line in lines if not line.startswith("12,3,"))
    (run / "metrics.csv").write_text(lost)
    (run / "run.json").write_text(json.dumps({**record, "metrics_sha256": files.sha256_bytes(lost.encode())}))
    refused(["summarize", "--runs", run, "--out", tmp_path / "s.csv"], capsys, "not a whole run", "shared_acc")


@pytest.mark.parametrize("content,needle", [("step,client,head,metric,value\n", "not a whole run"),
                                            ("a,b\n1,2\n", "columns ['a', 'b']")])
def test_a_header_only_or_foreign_metrics_file_is_a_message(finished, tmp_path, capsys, content, needle):
    run = copy_run(finished[0], tmp_path / "run")
    (run / "metrics.csv").write_text(content)
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "metrics_sha256": files.sha256_bytes(content.encode())}))
    refused(["summarize", "--runs", run, "--out", tmp_path / "s.csv"], capsys, needle)


@pytest.mark.parametrize("content", ["", "run: 3\ninputs: {}\n", "[1, 2]\n"])
def test_an_empty_or_foreign_run_file_is_a_message(finished, tmp_path, capsys, content):
    run = copy_run(finished[0], tmp_path / "run")
    (run / "run.yaml").write_text(content)
    refused(["summarize", "--runs", run, "--out", tmp_path / "s.csv"], capsys, "run.yaml")
    refused(["train", "--config", run / "run.yaml", "--out", tmp_path / "out"], capsys, "run.yaml")


def test_a_run_summarised_twice_is_refused(finished, tmp_path, capsys):
    refused(["summarize", "--runs", finished[0], finished[0], "--out", tmp_path / "s.csv"], capsys, "named twice")


@pytest.fixture(scope="module")
def summary_csv(finished, tmp_path_factory):
    out = tmp_path_factory.mktemp("summary") / "summary.csv"
    assert main(["summarize", "--runs", *map(str, finished), "--out", str(out)]) == 0
    return out


def claims(summary, out, *extra):
    from conftest import REPO

    return ["claims", "--summary", summary, "--defaults", json.dumps(make_run(REPO)), "--out", out, *extra]


def forged(summary_csv, tmp_path, text):
    """A summary edited to `text`, with its record (summary.json) rewritten to match: a hostile edit."""
    path = tmp_path / "summary.csv"
    path.write_text(text)
    record = json.loads(summary_csv.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**record, "sha256": files.sha256_bytes(text.encode())}))
    return path


def test_a_summary_is_checked_against_its_record_and_its_runs(summary_csv, finished, tmp_path, capsys):
    runs = [str(d) for d in finished]
    assert main([str(a) for a in claims(summary_csv, tmp_path / "c", "--runs", *runs)]) == 0
    text = summary_csv.read_text()
    edited = tmp_path / "summary.csv"
    edited.write_text(text + text.splitlines()[-1] + "\n")  # a row added
    summary_csv.with_suffix(".json").replace(tmp_path / "keep.json")
    try:
        refused(claims(summary_csv, tmp_path / "c"), capsys, "summary.json")  # no record beside it
    finally:
        (tmp_path / "keep.json").replace(summary_csv.with_suffix(".json"))
    (tmp_path / "summary.json").write_text(summary_csv.with_suffix(".json").read_text())
    refused(claims(edited, tmp_path / "c"), capsys, "not the summary mhd summarize wrote")
    # a run trained again since the summary was written: its metrics hash in run.json differs
    again = copy_run(finished[1], tmp_path / "runs" / finished[1].name)
    record = json.loads((again / "run.json").read_text())
    (again / "run.json").write_text(json.dumps({**record, "metrics_sha256": "0" * 64}))
    refused(claims(summary_csv, tmp_path / "c", "--runs", runs[0], again), capsys, "summarises other results of run")
    refused(claims(summary_csv, tmp_path / "c", "--runs", runs[0]), capsys, "does not summarise its runs",
            f"not of this config ['{finished[1].name}']")


def test_a_forged_summary_cut_mid_row_or_between_runs_is_still_refused(summary_csv, tmp_path, capsys):
    text = summary_csv.read_text()
    cut = forged(summary_csv, tmp_path, text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])
    refused(claims(cut, tmp_path / "c"), capsys, "a row cut short")
    first = pd.read_csv(summary_csv, dtype={"head": str})
    rows = first[first.run == first.run.iloc[0]]
    rows = rows[rows.step < rows.step.max()]  # the run's last evaluation gone
    cut = forged(summary_csv, tmp_path, rows.to_csv(index=False))
    refused(claims(cut, tmp_path / "c"), capsys, "not a whole run", "(last 6)")


def test_a_summary_with_wrong_typed_columns_is_a_message(summary_csv, tmp_path, capsys):
    table = pd.read_csv(summary_csv, dtype={"head": str})
    bad = forged(summary_csv, tmp_path, table.assign(shared_acc="high").to_csv(index=False))
    refused(claims(bad, tmp_path / "c"), capsys, "column shared_acc must hold numbers", "'high'")
    bad = forged(summary_csv, tmp_path, table.assign(heads="three").to_csv(index=False))
    refused(claims(bad, tmp_path / "c"), capsys, "column heads must hold numbers")


def test_a_reference_with_a_repeated_claim_is_a_message(summary_csv, repo, tmp_path, capsys):
    ref = pd.read_csv(repo / "docs" / "reference" / "claims.csv")
    twice = tmp_path / "ref.csv"
    pd.concat([ref, ref.iloc[:1]]).to_csv(twice, index=False)
    refused(claims(summary_csv, tmp_path / "c", "--reference", twice), capsys, "claims given more than once")
    ref.drop(columns="verdict").to_csv(twice, index=False)
    refused(claims(summary_csv, tmp_path / "c", "--reference", twice), capsys, "no column 'verdict'")


def test_every_refused_run_is_named_at_once(finished, tmp_path, capsys):
    runs = [copy_run(f, tmp_path / f.name) for f in finished]
    for run in runs:
        (run / "metrics.csv").write_text("step,client,head,metric,value\n")
    assert main(["summarize", "--runs", *map(str, runs), "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert "2 of 2 runs cannot be summarised" in err and "--forcerun train" in err
    assert all(str(run / "metrics.csv") in err for run in runs)


# ---------------------------------------------------------------- 2. no retrain that retrains nothing
def test_a_rerun_with_nothing_to_train_keeps_the_training_record(finished, tmp_path, capsys):
    run = copy_run(finished[1], tmp_path / "run")
    record, metrics = (run / "run.json").read_bytes(), (run / "metrics.csv").read_bytes()
    (run / "run.json").unlink()  # as Snakemake deletes a job's outputs before it reruns the job
    (run / "metrics.csv").unlink()
    capsys.readouterr()
    assert main(["train", "--config", str(run / "run.yaml"), "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "nothing to train" in out and "delete" in out and "checkpoint.pt" in out
    assert (run / "run.json").read_bytes() == record, "a call that trained nothing wrote a new training record"
    assert (run / "metrics.csv").read_bytes() == metrics
    # and the rewritten result is whole again: summarised
    assert main(["summarize", "--runs", str(run), "--out", str(tmp_path / "s.csv")]) == 0


def test_a_finished_checkpoint_of_other_code_is_trained_again(finished, tmp_path, monkeypatch, capsys):
    run = copy_run(finished[1], tmp_path / "run")
    old = json.loads((run / "run.json").read_text())
    monkeypatch.setattr(provenance, "code_sha256", lambda: "e" * 64)  # the package edited since
    assert main(["train", "--config", str(run / "run.yaml"), "--out", str(run)]) == 0
    assert "written by other code" in capsys.readouterr().out
    new = json.loads((run / "run.json").read_text())
    assert new["resumed_from_step"] == 0 and new["steps_this_call"] == 12 and new["code"]["sha256"] == "e" * 64
    assert old["code"]["sha256"] != new["code"]["sha256"]
    assert (run / "checkpoint.stale.pt").exists()
    assert (run / "metrics.csv").read_bytes() == (finished[1] / "metrics.csv").read_bytes()  # same maths, same bytes


def test_a_half_trained_checkpoint_of_other_code_is_not_continued(repo, inputs, tmp_path, monkeypatch, capsys):
    assert fit(repo, inputs, tmp_path, stop_after=6, method="isolated") == {"stopped_at": 6}
    monkeypatch.setattr(provenance, "code_sha256", lambda: "e" * 64)
    record = fit(repo, inputs, tmp_path, method="isolated")
    assert "written by other code" in capsys.readouterr().out
    assert record["resumed_from_step"] == 0 and record["steps_this_call"] == 12


def test_the_code_hash_changes_with_a_training_code_edit_and_only_then(tmp_path, monkeypatch):
    copy = tmp_path / "mhd"
    shutil.copytree(provenance.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE", copy)
    digest = provenance.code_sha256.__wrapped__()
    (copy / "learning" / "__pycache__").mkdir(exist_ok=True)
    (copy / "learning" / "__pycache__" / "x.py").write_text("compiled")
    (copy / "learning" / ".#run.py").symlink_to("/nonexistent/editor-lock")  # an editor's lock file: a dangling link
    with open(copy / "report" / "plots.py", "a") as fh:  # the report computes no trained number
        fh.write("\n")
    assert provenance.code_sha256.__wrapped__() == digest
    with open(copy / "learning" / "losses.py", "a") as fh:
        fh.write("\n")
    assert provenance.code_sha256.__wrapped__() != digest


@pytest.mark.slow
def test_the_readme_retrain_after_a_code_edit_retrains(repo, tiny_idx, tmp_path):
    """README: after changing the package, `snakemake ... --forcerun train` trains every run again from
    step 0, and run.json names the new code; without a change it trains nothing and keeps the record;
    a touched input reruns the jobs, which train nothing and rewrite no record."""
    work = tmp_path / "work"
    configs = [repo / "config" / "smoke.yaml", tiny_overlay(tmp_path, tiny_idx)]
    assert snakemake(repo, work, "all_runs", configfiles=configs).returncode == 0
    records = sorted((work / "results" / "runs").glob("*/run.json"))
    before = {p: p.read_bytes() for p in records}
    metrics = {p: (p.parent / "metrics.csv").read_bytes() for p in records}
    res = snakemake(repo, work, "all_runs", "--forcerun", "train", configfiles=configs)
    assert res.returncode == 0, res.stderr[-2000:]
    assert {p: p.read_bytes() for p in records} == before
    assert all("nothing to train" in log.read_text() for log in (work / "logs" / "train").glob("*.log"))
    os.utime(work / "data" / "prepared" / "fashion_mnist.pt")  # a touched input: the train jobs rerun
    res = snakemake(repo, work, "all_runs", configfiles=configs)
    assert res.returncode == 0 and "train" in res.stdout + res.stderr, res.stderr[-2000:]
    assert {p: p.read_bytes() for p in records} == before
    # the code edited: a copy of the package with one more comment, imported first (PYTHONPATH)
    edited = tmp_path / "src"
    shutil.copytree(provenance.PACKAGE, edited / "mhd", ignore=shutil.ignore_patterns("__pycache__"))
    with open(edited / "mhd" / "learning" / "trainer.py", "a") as fh:
        fh.write("# edited\n")
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(edited)
    try:
        res = snakemake(repo, work, "all_runs", "--forcerun", "train", configfiles=configs)
    finally:
        os.environ.pop("PYTHONPATH") if env_path is None else os.environ.__setitem__("PYTHONPATH", env_path)
    assert res.returncode == 0, res.stderr[-2000:]
    for path in records:
        record = json.loads(path.read_text())
        assert record["resumed_from_step"] == 0 and record["steps_this_call"] == record["run"]["steps"]
        assert record["code"]["sha256"] != json.loads(before[path])["code"]["sha256"]
        assert (path.parent / "metrics.csv").read_bytes() == metrics[path]  # a comment changes no number


def test_claims_find_the_default_runs_when_the_defaults_say_precision_auto(summary_csv, tmp_path, monkeypatch):
    """The config's `run` says `precision: auto`; its runs carry the precision it resolved to when planned:
    mhd claims resolves the defaults the same way, or it would find no default run and measure nothing."""
    from conftest import REPO

    from mhd.learning import precision

    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: False)  # auto is fp32 here, as the runs are
    out = {}
    for name in ("fp32", "auto"):
        defaults = {**make_run(REPO, heads=2), "precision": name, "device": "cpu"}
        assert main(["claims", "--summary", str(summary_csv), "--defaults", json.dumps(defaults),
                     "--out", str(tmp_path / name)]) == 0
        out[name] = pd.read_csv(tmp_path / f"{name}.csv")
    assert out["auto"].effect.notna().any(), "no claim measured: the default runs were not found"
    pd.testing.assert_frame_equal(out["auto"], out["fp32"])


def test_a_study_whose_runs_come_from_other_code_says_so(finished, tmp_path, capsys):
    """dvc repro after an edit of the training code retrains nothing (Snakemake does not rerun finished
    jobs when the package changes): the summary and the claims table then say which runs came from other
    code than this checkout's, never pass them off as this code's."""
    runs = [copy_run(d, tmp_path / d.name) for d in finished]
    record = json.loads((runs[1] / "run.json").read_text())
    record["code"]["sha256"] = "0" * 64  # trained by another version of the package
    (runs[1] / "run.json").write_text(json.dumps(record))
    out = tmp_path / "summary.csv"
    assert main(["summarize", "--runs", *map(str, runs), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 of 2 runs were trained by other training code than this checkout's" in err and "000000000000" in err
    assert main([str(a) for a in claims(out, tmp_path / "c", "--runs", *runs)]) == 0
    assert (tmp_path / "c.md").read_text().startswith("**Warning:** 1 of 2 runs were trained by other training code")
    clean = tmp_path / "clean.csv"  # the runs as trained by this code: no warning
    assert main(["summarize", "--runs", *map(str, finished), "--out", str(clean)]) == 0
    assert "other training code" not in capsys.readouterr().err
