"""The floats a run computes in: `fp32`, or `bf16` (torch's autocast: convolutions and matrix
products take bf16 inputs and accumulate in fp32), and `auto`, resolved to bf16 where the device
computes bf16 natively (a CUDA GPU that supports it; a CPU with AVX512-BF16 or AMX) and to fp32
elsewhere. A run is planned with its resolved precision, which is part of its settings, so its run id
and run.json name it: runs of the two precisions are never one run, never mixed up or reused for each
other, whichever machine planned them.

Under bf16 these stay fp32, because their rounding would change what is measured or learned, not only
how fast: the parameters, their gradients and the optimiser's state (autocast casts the inputs of an
operation, never a parameter); BatchNorm's running statistics and affine parameters (its activations
are bf16 under autocast, its buffers and weights are not); every loss, from logits cast to fp32 (cross-entropy, the distillation's softmax
at temperature tau and its KL); the teachers' probabilities and the scores that choose the teacher;
and the evaluation, which reads the trained weights in fp32 so that the two precisions' accuracies are
measured alike."""

from __future__ import annotations

import functools
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with native bf16 arithmetic


@functools.lru_cache(maxsize=None)
def cpu_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this machine's CPU computes bf16 natively (AVX512-BF16 or AMX); False where that cannot
    be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return any(flag in line.split() for flag in CPU_BF16_FLAGS)
    return False


def _cuda_present() -> bool:
    """A CUDA device here, asked of torch only where an NVIDIA driver is loaded (planning on a CPU
    machine never imports torch)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    if not (gpus.is_dir() and any(gpus.iterdir())):
        return False
    import torch

    return torch.cuda.is_available()


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def native_bf16(device: str) -> bool:
    """Whether `device` (cpu, cuda, or auto: CUDA when present, else the CPU) computes bf16 natively.
    cuda planned where no CUDA device is visible (a cluster's login node) counts as native: the GPUs
    this project targets (Ampere and later) are."""
    if device == "auto":
        device = "cuda" if _cuda_present() else "cpu"
    if device == "cuda":
        return _cuda_bf16() if _cuda_present() else True
    return cpu_native_bf16()


def resolve(precision: str, device: str) -> str:
    """`auto` as fp32 or bf16 for `device`; fp32 and bf16 as they are."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(device, precision: str):
    """The context a forward pass runs in: bf16 autocast on `device` (a torch.device) for bf16, off for fp32."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
