"""One GPU per training job (learning/gpu_slots.py), on the CPU with a faked device count: which slot each
job got, that no two jobs hold one slot at once, that a job waits while all are taken, and that a killed
job frees its slot."""

import os
import select
import signal
import subprocess
import sys

import pytest

from mhd.learning import gpu_slots

JOB = """
import sys, time
from pathlib import Path
from mhd.learning import gpu_slots
slot = gpu_slots.claim(["gpu-a", "gpu-b"], Path(sys.argv[1]), poll_s=0.05)
print(slot, flush=True)
time.sleep(60)
"""


def _job(where):
    return subprocess.Popen([sys.executable, "-c", JOB, str(where)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _slot(proc):
    line = proc.stdout.readline()  # blocks until the job holds a slot
    assert line, proc.stderr.read()
    return int(line)


def test_jobs_get_distinct_slots_wait_for_one_and_a_killed_job_frees_its_slot(tmp_path):
    first, second = _job(tmp_path), _job(tmp_path)
    third = None
    try:
        first_slot, second_slot = _slot(first), _slot(second)
        assert {first_slot, second_slot} == {0, 1}  # two devices, two jobs: one each
        third = _job(tmp_path)
        ready, _, _ = select.select([third.stdout], [], [], 1.5)
        assert not ready and third.poll() is None, "a third job got a slot while both were held"
        os.kill(first.pid, signal.SIGKILL)  # killed, not asked: the kernel frees its lock
        first.wait(10)
        assert _slot(third) == first_slot  # the killed job's slot; the second job still holds its own
        assert "every GPU slot is taken (2 devices" in third.stderr.readline()
    finally:
        for p in (first, second, third):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)


def test_a_slot_is_held_until_released(tmp_path):
    assert gpu_slots.claim(["gpu-x"], tmp_path) == 0
    with pytest.raises(BlockingIOError):  # another open file of the same slot cannot take it
        import fcntl
        with open(tmp_path / "gpu-x.lock", "a+") as other:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    gpu_slots.release_all()
    assert gpu_slots.claim(["gpu-x"], tmp_path) == 0
    gpu_slots.release_all()
    with pytest.raises(ValueError, match="no device"):
        gpu_slots.claim([], tmp_path)


def test_a_process_that_holds_a_slot_gets_it_again_without_waiting(tmp_path):
    """A second run trained in the same process (tests, benchmarks/run_slice.py) on a one-GPU machine:
    the process's own lock must not make it wait for itself."""
    code = ("import sys; from pathlib import Path; from mhd.learning import gpu_slots; "
            "w = Path(sys.argv[1]); print(gpu_slots.claim(['gpu-x'], w, poll_s=0.05), "
            "gpu_slots.claim(['gpu-x'], w, poll_s=0.05), gpu_slots.claim(['gpu-y', 'gpu-x'], w, poll_s=0.05))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0", "1"]  # its slot again, by name, wherever it stands in the list
    assert "waiting" not in done.stderr


def test_a_cuda_run_trains_on_the_gpu_its_slot_names(monkeypatch, tmp_path):
    """pick_device on a faked machine with two GPUs: a CUDA job takes the first free device and keeps it
    for every run of the process; another process's job takes the other (here: a lock held from outside);
    releasing frees it."""
    import torch

    from mhd.learning import federation

    monkeypatch.setenv("MHD_GPU_SLOTS", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: type("P", (), {"uuid": f"uuid-{i}"})())
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    import fcntl

    try:
        assert federation.pick_device("auto") == torch.device("cuda", 0)
        assert federation.pick_device("cuda") == torch.device("cuda", 0)  # the same process: its own GPU
        assert chosen == [0, 0] and [p.name for p in tmp_path.iterdir()] == ["gpu-uuid-0.lock"]
        gpu_slots.release_all()
        with open(tmp_path / "gpu-uuid-0.lock", "a+") as other:  # another job holds GPU 0
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            assert federation.pick_device("cuda") == torch.device("cuda", 1)
        assert chosen == [0, 0, 1]
    finally:
        gpu_slots.release_all()
    assert federation.pick_device("cpu") == torch.device("cpu")
