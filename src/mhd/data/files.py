"""Atomic file writes and content hashes: a killed job never leaves a half-written artefact, and every
file gets the permissions the umask gives (a project group can read results)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..errors import MHDError


TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def leftovers(folder: str | os.PathLike) -> list[Path]:
    """Temporary files of writes killed before their rename (`.<name>.<random>.tmp`)."""
    return sorted(p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file() and not p.is_symlink())


def _atomic(path: str | os.PathLike, write: Callable[[Any], None], mode: str) -> Path:
    """Write through `write(fh)` into a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would honour the umask
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a vanished folder: say so, and leave the old file in place
        Path(tmp).unlink(missing_ok=True)
        raise MHDError(f"cannot write {path}: {exc.strerror or exc}; the previous version, if any, is "
                       f"unchanged") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic(path, lambda fh: fh.write(data), "wb")


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Sorted keys and a trailing newline, so identical content gives identical bytes."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    return _atomic(path, lambda fh: torch.save(obj, fh), "wb")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
