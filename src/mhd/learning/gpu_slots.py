"""One GPU per training job: a job on CUDA holds a slot, a lock file per visible device, for its whole
life, and trains on that device. So on a machine with N GPUs at most N CUDA jobs run at once, each on a
GPU of its own, whether or not Snakemake was told the GPU count (`--resources gpu=N`, profiles/gpu):
a job that finds every slot taken waits for one. The lock is an `fcntl.flock` on an open file, which
the kernel releases when the process ends, however it ends, so a killed job frees its slot.

A process holds one slot at most: asking again (a second run trained in the same process, as tests and
benchmarks/run_slice.py do) gives the slot it holds. A second lock on the same file from the same
process would wait for itself forever, since `flock` locks belong to the open file, not the process.

Slots are named by the device's UUID where torch gives one (else its index), so jobs that see the
devices through different CUDA_VISIBLE_DEVICES (SLURM gives each job its own) never contend for a
device they do not share.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path

_HELD: list = []  # (lock path, open file) of each slot this process holds: closing the file frees its slot


def folder() -> Path:
    """Where the lock files live: per user, on this machine (MHD_GPU_SLOTS overrides)."""
    return Path(os.environ.get("MHD_GPU_SLOTS") or Path(tempfile.gettempdir()) / f"mhd-gpu-slots-{os.getuid()}")


def claim(names: list[str], where: Path | None = None, poll_s: float = 2.0, say=None) -> int:
    """Take the first free slot of `names` (one per visible device) and hold it until the process
    ends: its index. Waits while all are taken, saying so once. A process that holds one of them
    already gets that one again."""
    if not names:
        raise ValueError("no device to claim a slot on")
    where = folder() if where is None else where
    for path, _ in _HELD:
        if path.parent.resolve() == where.resolve() and path.stem in names:  # this process's slot: the device it trains on
            return names.index(path.stem)
    where.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        for index, name in enumerate(names):
            path = where / f"{name}.lock"
            handle = open(path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            _HELD.append((path, handle))
            return index
        if not said:
            (say or (lambda m: print(m, file=sys.stderr, flush=True)))(
                f"every GPU slot is taken ({len(names)} devices, {where}); waiting for one to free")
            said = True
        time.sleep(poll_s)


def release_all() -> None:
    """Free the slots this process holds (the end of the process does it too)."""
    while _HELD:
        _HELD.pop()[1].close()


def cuda_names() -> list[str]:
    """One slot name per CUDA device this process sees."""
    import torch

    names = []
    for i in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        names.append(f"gpu-{uuid}" if uuid else f"gpu-index-{i}")
    return names


def claim_cuda():
    """The CUDA device this job trains on, its slot held for the process's life."""
    import torch

    index = claim(cuda_names())
    torch.cuda.set_device(index)
    return torch.device("cuda", index)
