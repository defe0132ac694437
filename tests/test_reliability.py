"""Killed runs resume where their last checkpoint left them and end exactly as if never stopped;
the same seed gives the same bytes in another process."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from mhd import config as mconfig
from mhd.data import graphs, splits

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spec_file(repo, tiny_prepared, tmp_path_factory):
    """A RUN.yaml for `mhd train`: MHD, 4 clients, 150 steps, a checkpoint every 10."""
    from mhd.data import datasets

    root = tmp_path_factory.mktemp("reliability")
    tensors, _ = datasets.load(tiny_prepared)
    labels = tensors["train_y"].numpy()
    s = splits.make(labels, 10, clients=4, skew=100, public_fraction=0.1, samples_per_client=120,
                    validation_per_class=10)
    splits.write(root / "split", s, labels, 10, {"clients": 4})
    graphs.write(root / "graph", graphs.make("ring", 4), {"clients": 4, "topology": "ring"})
    cfg = mconfig.load_layered(repo / "config" / "config.yaml", [repo / "config" / "smoke.yaml"])
    run = {**cfg["run"], "steps": 150, "eval_every": 10, "eval_samples": 100, "nu_rampup": 20}
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump({"run": run, "inputs": {"prepared": str(tiny_prepared), "split": str(root / "split"),
                                                           "graph": str(root / "graph")}}))
    return path


def train_cmd(spec, out, *extra):
    return [sys.executable, "-m", "mhd", "train", "--config", str(spec), "--out", str(out), "--threads", "1", *extra]


@pytest.fixture(scope="module")
def uninterrupted(spec_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    subprocess.run(train_cmd(spec_file, out), check=True, capture_output=True)
    return out


def test_sigkill_mid_run_then_resume_is_exact(spec_file, uninterrupted, tmp_path):
    proc = subprocess.Popen(train_cmd(spec_file, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "run.json").exists()
    subprocess.run(train_cmd(spec_file, tmp_path), check=True, capture_output=True)
    record = json.loads((tmp_path / "run.json").read_text())
    assert 10 <= record["resumed_from_step"] < 150, "resumed from step 0, not from the checkpoint"
    assert (tmp_path / "metrics.csv").read_bytes() == (uninterrupted / "metrics.csv").read_bytes()


KILL_DURING_SECOND_CHECKPOINT = textwrap.dedent("""
    import os, signal, sys, tempfile
    from pathlib import Path
    import mhd.data.files as mio
    real, calls = mio.write_bytes, []

    def dying_write(path, data):
        if Path(path).name == "checkpoint.pt":
            calls.append(1)
            if len(calls) == 2:  # half a checkpoint in the temporary file, then the kill
                fd, tmp = tempfile.mkstemp(prefix=".checkpoint.pt.", suffix=".tmp", dir=Path(path).parent)
                os.write(fd, data[: len(data) // 2])
                os.fsync(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return real(path, data)

    mio.write_bytes = dying_write
    from mhd.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_sigkill_during_a_checkpoint_write_loses_nothing(spec_file, uninterrupted, tmp_path):
    args = train_cmd(spec_file, tmp_path)[3:]
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_SECOND_CHECKPOINT, *args], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert list(tmp_path.glob(".checkpoint.pt.*.tmp")), "the kill did not land inside a write"
    subprocess.run(train_cmd(spec_file, tmp_path), check=True, capture_output=True)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["resumed_from_step"] == 10, "resumes from the last whole checkpoint"
    assert (tmp_path / "metrics.csv").read_bytes() == (uninterrupted / "metrics.csv").read_bytes()


def test_same_seed_same_bytes_in_another_process_other_seed_other_numbers(spec_file, uninterrupted, tmp_path):
    subprocess.run(train_cmd(spec_file, tmp_path / "again"), check=True, capture_output=True)
    assert (tmp_path / "again" / "metrics.csv").read_bytes() == (uninterrupted / "metrics.csv").read_bytes()
    spec = yaml.safe_load(spec_file.read_text())
    spec["run"]["seed"] = 1
    other = tmp_path / "seed1.yaml"
    other.write_text(yaml.safe_dump(spec))
    subprocess.run(train_cmd(other, tmp_path / "seed1"), check=True, capture_output=True)
    assert (tmp_path / "seed1" / "metrics.csv").read_bytes() != (uninterrupted / "metrics.csv").read_bytes()
    record = json.loads((uninterrupted / "run.json").read_text())
    assert set(record["inputs"]["split"]) == {"indices.csv", "stats.csv"} and record["inputs"]["prepared_sha256"]
