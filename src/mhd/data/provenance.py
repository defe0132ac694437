"""What produced a result: package versions, code version, device."""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # src/mhd, wherever the package is imported from


def versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("mhd", "torch", "torchvision", "numpy", "pandas", "snakemake", "dvc"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


@functools.lru_cache(maxsize=None)
def code_sha256() -> str:
    """The package's code as one hash: every .py file under the package, by its path inside it and its
    bytes. It names the code that computed a result with or without git (an installed wheel, a copy),
    and any edit (a commit or not) changes it: a checkpoint of other code is never continued."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def code_version() -> dict:
    """The package's code hash (`code_sha256`), the git commit of its checkout and whether that had
    uncommitted changes (commit and dirty are None outside a git checkout)."""
    root = PACKAGE.parents[1]  # src/mhd -> the checkout
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"sha256": code_sha256(), "commit": None, "dirty": None}
    return {"sha256": code_sha256(), "commit": commit or None, "dirty": dirty if commit else None}


def device_info(device) -> dict:
    import torch

    info = {"device": str(device), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
