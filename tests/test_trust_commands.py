"""Attacks through the `mhd` commands' inputs that used to end in a raw traceback, a hang or a
deleted folder; each now gets a one-line message naming the value, where it came from and what is
allowed, and exit status 2:

- a dataset file that is a folder or a named pipe (a FIFO would block the reader forever);
- a CIFAR folder missing one of its batch files;
- a config overlay nested thousands of levels deep (Python's recursion limit in reading / merging);
- `mhd check --docs` of a missing file;
- `mhd table` / `mhd figure` on a spec of another kind, of an unknown figure kind, or with keys
  missing or of the wrong type;
- `mhd bench --workflow --work` pointed at a folder the bench did not make (the project's own
  results/, figures/, logs/ and .snakemake/ would be deleted).
"""

import json
import os
import shutil
import signal
from contextlib import contextmanager

import fakedata
import pytest

from mhd.cli import main


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"mhd {command}: error: ") and err.count("\n") == 1, err
    return err


@contextmanager
def at_most(seconds: float):
    """Fail, instead of hanging the suite, when the body blocks (on a FIFO) longer than `seconds`."""
    def expire(signum, frame):
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def prepare(name: str, root, out) -> list[str]:
    params = {"root": str(root), "download": False, "verify": False}
    return ["prepare", "--dataset", name, "--params", json.dumps(params), "--out", str(out)]


# ---------------------------------------------------------------- 1. dataset files that are not files
@pytest.mark.parametrize("what", ["folder", "fifo"])
def test_an_idx_file_that_is_a_folder_or_a_fifo_is_refused_without_reading_it(tiny_idx, tmp_path, capsys, what):
    raw = tmp_path / "raw"
    shutil.copytree(tiny_idx, raw)
    bad = raw / "train-labels-idx1-ubyte.gz"
    bad.unlink()
    if what == "folder":
        bad.mkdir()
    else:
        os.mkfifo(bad)
    with at_most(10):
        assert main(prepare("fashion_mnist", raw, tmp_path / "p.pt")) == 2
    err = one_line_error(capsys, "prepare")
    assert str(bad) in err and ("a folder" if what == "folder" else "a named pipe") in err
    assert "regular file" in err
    assert not (tmp_path / "p.pt").exists()


# ---------------------------------------------------------------- 2. a CIFAR folder missing a batch
def test_a_cifar_folder_missing_a_batch_names_the_file_and_what_the_folder_holds(tmp_path, capsys):
    root = fakedata.write_cifar(tmp_path / "cifar-10-batches-py")
    (root / "data_batch_3").unlink()
    assert main(prepare("cifar10", root, tmp_path / "p.pt")) == 2
    err = one_line_error(capsys, "prepare")
    assert "data_batch_3" in err and str(root) in err and "data_batch_1" in err and "test_batch" in err


# ---------------------------------------------------------------- 3. configs nested thousands deep
@pytest.mark.parametrize("text", ["a: " + "{a: " * 5000 + "1" + "}" * 5000, "a: " + "[" * 5000 + "]" * 5000],
                         ids=["mappings", "lists"])
def test_an_overlay_nested_thousands_of_levels_deep_is_refused(repo, tmp_path, capsys, text):
    overlay = tmp_path / "deep.yaml"
    overlay.write_text(text + "\n")
    assert main(["check", str(repo / "config" / "config.yaml"), str(overlay)]) == 2
    err = one_line_error(capsys, "check")
    assert str(overlay) in err and "64 levels" in err


def test_an_overlay_made_deep_by_aliases_inside_aliases_is_refused(repo, tmp_path, capsys):
    # each list holds the one before: 1200 levels from 1200 short lines, under the 1,000,000 values of an alias bomb
    lines = ["anchors:", "- &a0 [1]"] + [f"- &a{i} [*a{i - 1}]" for i in range(1, 1200)]
    lines += ["experiments:", "  e: {figure: graphs, train: false, rows: [*a1199]}"]
    overlay = tmp_path / "chain.yaml"
    overlay.write_text("\n".join(lines) + "\n")
    assert main(["check", str(repo / "config" / "config.yaml"), str(overlay)]) == 2
    err = one_line_error(capsys, "check")
    assert str(overlay) in err and "64 levels" in err


# ---------------------------------------------------------------- 4. mhd check --docs MISSING.md
def test_check_docs_of_a_missing_file_is_a_message(repo, tmp_path, capsys):
    missing = tmp_path / "MISSING.md"
    assert main(["check", str(repo / "config" / "config.yaml"), "--docs", str(missing)]) == 2
    err = one_line_error(capsys, "check")
    assert f"--docs {missing}" in err and "config/README.md" in err


# ---------------------------------------------------------------- 5. specs of another kind
DATA_SPEC = {"name": "graphs_only", "figure": "graphs", "description": "", "x": None,
             "dataset_meta": "data/prepared/fashion_mnist.json", "splits": [], "graphs": ["data/graphs/ring-n5"]}


@pytest.mark.parametrize("command, spec, says", [
    ("table", DATA_SPEC, "'runs'"),
    ("figure", {**DATA_SPEC, "figure": "pie"}, "'pie'"),
    ("figure", {**DATA_SPEC, "figure": ["graphs"]}, "figure"),
    ("figure", {k: v for k, v in DATA_SPEC.items() if k != "graphs"}, "'graphs'"),
    ("figure", {**DATA_SPEC, "figure": "label_distribution", "splits": "data/splits/a"}, "'splits'"),
    ("figure", {**DATA_SPEC, "figure": "learning_curves", "runs": "results/runs/a"}, "'runs'"),
    ("table", {**DATA_SPEC, "figure": "learning_curves", "runs": [{"id": "a"}]}, "'dir'"),
    ("figure", {**DATA_SPEC, "figure": "sweep", "runs": []}, "'x'"),
], ids=["table-of-data-spec", "unknown-kind", "kind-not-a-string", "no-graphs", "splits-not-a-list",
        "runs-not-a-list", "run-without-dir", "sweep-without-x"])
def test_a_spec_of_another_kind_or_shape_is_a_message(tmp_path, capsys, command, spec, says):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    argv = [command, "--spec", str(path)] + (["--out", str(tmp_path / "f")] if command == "figure" else [])
    assert main(argv) == 2
    err = one_line_error(capsys, command)
    assert f"--spec {path}" in err and says in err
    assert not list(tmp_path.glob("f.*"))


# ---------------------------------------------------------------- 6. mhd bench --workflow --work PROJECT
def test_bench_workflow_refuses_a_work_folder_it_did_not_make(tmp_path, capsys, monkeypatch):
    from mhd.bench import workflow

    def no_snakemake(*args, **kwargs):
        raise AssertionError("the bench went on to run snakemake in a folder it did not make")

    monkeypatch.setattr(workflow, "_snakemake", no_snakemake)  # never the real workflow in a test
    project = tmp_path / "project"
    for name in ("results/summary.csv", "figures/a.png", "logs/x.log", ".snakemake/locks/0"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("keep me")
    assert main(["bench", "--workflow", "--work", str(project)]) == 2
    err = one_line_error(capsys, "bench")
    assert f"--work {project}" in err and "empty" in err
    for name in ("results/summary.csv", "figures/a.png", "logs/x.log", ".snakemake/locks/0"):
        assert (project / name).read_text() == "keep me"


def test_bench_workflow_work_folder_new_empty_or_its_own(tmp_path):
    from mhd.bench import workflow
    from mhd.errors import MHDError

    new = tmp_path / "new" / "work"
    workflow.prepare_work(new)  # a new folder: made and marked
    assert (new / workflow.MARKER).is_file()
    (new / "results" / "runs").mkdir(parents=True)
    (new / "data").mkdir()
    workflow.prepare_work(new)  # its own: results/ emptied, the rest kept
    assert not (new / "results").exists() and (new / "data").is_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    workflow.prepare_work(empty)
    assert (empty / workflow.MARKER).is_file()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(MHDError, match="not a folder"):
        workflow.prepare_work(a_file)
    assert a_file.read_text() == "x"


@pytest.mark.parametrize("argv", [["check", "{fifo}"], ["claims", "--summary", "{fifo}", "--defaults", "{{}}", "--out", "x"],
                                  ["train", "--config", "{fifo}", "--out", "x"]])
def test_a_fifo_given_as_a_config_a_summary_or_a_run_file_is_refused_without_reading_it(tmp_path, capsys, argv):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("blocked on a FIFO"))
    signal.alarm(10)
    try:
        code = main([a.format(fifo=fifo) for a in argv])
    finally:
        signal.alarm(0)
    assert code == 2 and "named pipe (FIFO), not a regular file" in capsys.readouterr().err
