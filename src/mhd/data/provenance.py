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


# the code that computes a trained run: its stages up to the training (not the report, the benchmarks or
# the command line, whose edits change no trained number and must not restart a run)
TRAINING_CODE = ("data", "learning", "vision.py", "errors.py")


def training_files(package: Path) -> list[Path]:
    """The .py files of TRAINING_CODE under `package`: regular files only, none hidden (an editor's lock
    file `.#run.py`, a dangling link) and none compiled."""
    out = []
    for part in TRAINING_CODE:
        root = package / part
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            rel = path.relative_to(package).parts
            if any(p.startswith(".") or p == "__pycache__" for p in rel) or not path.is_file():
                continue
            out.append(path)
    return out


@functools.lru_cache(maxsize=None)
def code_sha256() -> str:
    """The training code as one hash: every file of `training_files`, by its path inside the package
    and its bytes. It names the code that computed a run with or without git (an installed wheel, a
    copy), and any edit of it (a commit or not) changes it: a checkpoint of other code is never continued."""
    digest = hashlib.sha256()
    for path in training_files(PACKAGE):
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
