"""Atomic file writes, content hashes and the checked reading of JSON records: a killed job never leaves a
half-written artefact, every file gets the permissions the umask gives (a project group can read results),
and a record with a key missing or of the wrong type is one message naming the file and the key."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..errors import DataError, MHDError


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


def json_text(obj: Any) -> str:
    """Sorted keys and a trailing newline, so identical content gives identical bytes."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json_text(obj))


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


def _kind(mode: int) -> str:
    return ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")


def read_regular(path: str | os.PathLike, allowed: str) -> bytes:
    """The bytes of `path` when it is a regular file (or a link to one); else DataError naming what it
    is and `allowed`. A FIFO or a device is never opened: reading one would block or never end."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise DataError(f"{path}: {_kind(mode)}, not a regular file; allowed: {allowed}")
        # O_NONBLOCK: should a FIFO be swapped in after the stat, opening it does not block either
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise DataError(f"{path}: {_kind(mode)}, not a regular file; allowed: {allowed}")
            return fh.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}); allowed: {allowed}") from exc


# ---------------------------------------------------------------- records: the JSON beside an artefact
Check = tuple[Callable[[Any], bool], str]  # (does the value pass, what is allowed, in words)


def is_int(low: int = 0) -> Check:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low), f"an integer >= {low}"


SHA256: Check = (lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) is not None,
                 "a sha256: a string of 64 hex digits")
MAPPING: Check = (lambda v: isinstance(v, dict), "a mapping of keys")
TEXT: Check = (lambda v: isinstance(v, str), "a string")
BOOLEAN: Check = (lambda v: isinstance(v, bool), "true or false")
TEXTS: Check = (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings")
INTS: Check = (lambda v: isinstance(v, list) and all(is_int()[0](x) for x in v), "a list of integers >= 0")
NUMBER_ROWS: Check = (lambda v: isinstance(v, list) and len(v) > 0 and all(
    isinstance(r, list) and len(r) == len(v[0]) > 0
    and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in r) for r in v),
    "a non-empty list of equally long, non-empty lists of finite numbers")


def check_record(record: Any, path: str | os.PathLike, expected: dict[tuple, Check], fix: str) -> dict:
    """`record` (the JSON read from `path`) must be a mapping holding every key path of `expected`
    (("sha256", "indices.csv") is record["sha256"]["indices.csv"]) with a value its check passes; else
    one DataError naming the file, the key and what is allowed, ending with `fix`."""
    if not isinstance(record, dict):
        raise DataError(f"{path}: expected a JSON object (a mapping of keys), found {type(record).__name__}; {fix}")
    for keys, (ok, allowed) in expected.items():
        node, where = record, []
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                raise DataError(f"{path}: key {'.'.join([*where, key])!r} is missing; expected {allowed}; {fix}")
            node = node[key]
            where.append(key)
        if not ok(node):
            shown = repr(node) if len(repr(node)) <= 60 else repr(node)[:57] + "..."
            raise DataError(f"{path}: key {'.'.join(where)!r} = {shown} ({type(node).__name__}); expected {allowed}; "
                            f"{fix}")
    return record


def read_record(path: str | os.PathLike, expected: dict[tuple, Check], fix: str) -> dict:
    """The JSON record at `path`, checked with check_record."""
    raw = read_regular(path, f"a JSON record written by the workflow; {fix}")
    try:
        record = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is one
        raise DataError(f"{path}: not JSON ({exc}); {fix}") from exc
    return check_record(record, path, expected, fix)
