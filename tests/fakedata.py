"""Tiny datasets written in the real on-disk formats, so the real readers are what the tests run."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

from mhd.data.datasets import IDX_FILES


def _idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def labelled(n_per_class: int, classes: int, shape: tuple, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose mean brightness encodes the class, so a model can learn them."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    rng.shuffle(y)
    x = rng.integers(0, 60, size=(len(y), *shape)) + (y * (190 // classes)).reshape(-1, *[1] * len(shape))
    return x.astype(np.uint8), y.astype(np.uint8)


def write_idx(folder: Path, train_per_class: int = 150, test_per_class: int = 20, gz: bool = True,
              classes: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train": labelled(train_per_class, classes, (28, 28), 0),
             "test": labelled(test_per_class, classes, (28, 28), 1)}
    for key, fname in IDX_FILES.items():
        x, y = parts["train" if key.startswith("train") else "test"]
        data = _idx_bytes(x if key.endswith("_x") else y)
        if gz:
            (folder / f"{fname}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / fname).write_bytes(data)
    return folder


def write_cifar(folder: Path, classes: int = 10, train_per_class: int = 5, test_per_class: int = 2) -> Path:
    """The official python layout: cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
    or cifar-100-python/{train,test,meta}."""
    folder.mkdir(parents=True, exist_ok=True)
    key = b"labels" if classes == 10 else b"fine_labels"

    def batch(per_class, seed):
        x, y = labelled(per_class, classes, (3 * 32 * 32,), seed)
        return {b"data": x, key: [int(v) for v in y], b"batch_label": b"fake"}

    if classes == 10:
        for i in range(1, 6):
            (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch(train_per_class, i)))
        (folder / "test_batch").write_bytes(pickle.dumps(batch(test_per_class, 9)))
        meta = {b"label_names": [f"class{c}".encode() for c in range(classes)]}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    else:
        (folder / "train").write_bytes(pickle.dumps(batch(train_per_class, 1)))
        (folder / "test").write_bytes(pickle.dumps(batch(test_per_class, 2)))
        (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{c}".encode() for c in range(classes)]}))
    return folder


def write_imagefolder(folder: Path, classes: int = 3, per_class: int = 4) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for part in ("train", "val"):
        for c in range(classes):
            d = folder / part / f"n0{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                arr = rng.integers(0, 255, size=(20 + i, 24, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"img{i}.{'png' if i % 2 else 'jpg'}")
    return folder
