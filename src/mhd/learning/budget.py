"""What a step costs: the images it trains on (`images_per_step`: the memory bound below, the run's
record and the bench count them), and a lower bound on a run's memory, computed before anything large
is allocated, so that an absurd size (`batch_public: 100000000`, `heads: 1000000`) is refused with the
keys to lower instead of ending in an out-of-memory kill."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import TrainingError
from . import methods
from .models import backbone

BYTES = 4  # float32


def images_per_step(run: dict, models: int) -> int:
    """The images a step trains on: every client's private batch (pooled into one model's batch for
    centralized) and, when the run distils, the public batch through every one of its `models`."""
    return run["clients"] * run["batch_private"] + models * run["batch_public"] * methods.uses_public(run)


def lower_bound(run: dict, archs: list[str], in_channels: int, size: int, classes: int) -> int:
    """Bytes a step needs at least: every model's weights with their gradient and optimiser state, the
    step's images as float, and the logits of every head with their gradient and teachers."""
    images = images_per_step(run, len(archs))
    total = images * in_channels * size * size * BYTES
    total += 4 * images * (run["heads"] + 1) * classes * BYTES
    for arch in dict.fromkeys(archs):
        body = backbone(arch, in_channels, size)
        weights = sum(p.numel() for p in body.parameters()) + body.dim * (run["heads"] + 1) * classes
        total += 3 * archs.count(arch) * weights * BYTES
    return total


def available(device: torch.device) -> int | None:
    """Free memory of the device in bytes (CUDA: free on the GPU; CPU: MemAvailable), None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check(run: dict, archs: list[str], in_channels: int, size: int, classes: int, device: torch.device) -> None:
    need, have = lower_bound(run, archs, in_channels, size, classes), available(device)
    if have is not None and need > have:
        raise TrainingError(
            f"this run needs at least {need / 2**30:.1f} GiB on {device} and {have / 2**30:.1f} GiB are free: "
            f"{run['clients']} clients x batch_private {run['batch_private']} and {len(archs)} models x batch_public "
            f"{run['batch_public']} images of {in_channels}x{size}x{size}, heads {run['heads']}, {classes} classes; "
            f"lower them")
