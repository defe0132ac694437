import gzip
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import fakedata
from mhd.data import datasets
from mhd.errors import DataError

FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    folder = fakedata.write_idx(tmp_path / "idx", gz=gz)
    data = datasets.read_raw("fashion_mnist", folder)
    assert data["train_x"].shape == (1500, 1, 28, 28) and data["train_x"].dtype == np.uint8
    assert data["test_y"].shape == (200,)
    assert np.bincount(data["train_y"]).tolist() == [150] * 10


def test_prepare_and_load(tiny_idx, tmp_path):
    out = tmp_path / "p" / "fashion_mnist.pt"
    rec = datasets.prepare("fashion_mnist", out, root=str(tiny_idx), download=False, verify=False)
    tensors, meta = datasets.load(out)
    assert meta == rec
    assert tensors["train_x"].dtype == torch.uint8 and tensors["train_y"].dtype == torch.int64
    assert meta["class_counts"]["test"] == [20] * 10
    assert meta["class_names"][0] == "T-shirt/top"


def test_strict_verification_rejects_a_subset(tiny_idx, tmp_path):
    with pytest.raises(DataError, match=r"60000.*dataset.verify: false"):
        datasets.prepare("fashion_mnist", tmp_path / "x.pt", root=str(tiny_idx), download=False, verify=True)
    assert not (tmp_path / "x.pt").exists()


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as err:
        datasets.prepare("fashion_mnist", tmp_path / "x.pt", root=str(tmp_path / "nowhere"), download=False)
    msg = str(err.value)
    assert "nowhere" in msg and "apt-get install dataset-fashion-mnist" in msg


def test_truncated_idx_is_refused(tmp_path):
    folder = fakedata.write_idx(tmp_path / "idx", gz=False)
    f = folder / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated or corrupt"):
        datasets.read_raw("fashion_mnist", folder)


def test_corrupt_gzip_is_refused(tmp_path):
    folder = fakedata.write_idx(tmp_path / "idx")
    f = folder / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:30])
    with pytest.raises(DataError, match="corrupt gzip"):
        datasets.read_raw("fashion_mnist", folder)


def test_labels_out_of_range_are_refused(tmp_path):
    folder = fakedata.write_idx(tmp_path / "idx", classes=12, train_per_class=10, test_per_class=2)
    with pytest.raises(DataError, match="labels span 0..11, expected 0..9"):
        datasets.prepare("fashion_mnist", tmp_path / "x.pt", root=str(folder), download=False, verify=False)


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_pickles(tmp_path, classes):
    folder = fakedata.write_cifar(tmp_path / "cifar", classes=classes)
    name = "cifar10" if classes == 10 else "cifar100"
    out = tmp_path / f"{name}.pt"
    rec = datasets.prepare(name, out, root=str(folder), download=False, verify=False)
    tensors, _ = datasets.load(out)
    per_file = 1 if classes == 100 else 5
    assert tensors["train_x"].shape == (classes * 5 * per_file, 3, 32, 32)
    assert rec["classes"] == classes and len(rec["class_names"]) == classes


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    folder = fakedata.write_cifar(tmp_path / "cifar")

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="refusing to load"):
        datasets.read_raw("cifar10", folder)
    assert not (tmp_path / "pwned").exists()


def test_imagefolder_is_resized(tmp_path):
    folder = fakedata.write_imagefolder(tmp_path / "imgs")
    out = tmp_path / "imagefolder.pt"
    rec = datasets.prepare("imagefolder", out, root=str(folder), download=False, image_size=16)
    assert rec["shapes"]["train_x"] == [12, 3, 16, 16]
    assert rec["class_names"] == ["n00", "n01", "n02"]


def test_corrupt_prepared_cache_is_detected(tiny_prepared, tmp_path):
    copy = tmp_path / "fashion_mnist.pt"
    copy.write_bytes(tiny_prepared.read_bytes())
    (tmp_path / "fashion_mnist.json").write_text(tiny_prepared.with_suffix(".json").read_text())
    raw = bytearray(copy.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    copy.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt"):
        datasets.load(copy)


def test_missing_prepared_cache_names_the_fix(tmp_path):
    # the command named is one Snakemake accepts (a rule with wildcards is not a target: name the file)
    with pytest.raises(DataError, match=r"run `snakemake --cores 1 \S*nothing\.pt` \(or `snakemake --cores 1 data_artefacts`"):
        datasets.load(tmp_path / "nothing.pt")


@pytest.mark.skipif(not FMNIST.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_verifies(tmp_path):
    rec = datasets.prepare("fashion_mnist", tmp_path / "f.pt", download=False, verify=True)
    assert rec["shapes"]["train_x"] == [60000, 1, 28, 28]
    assert rec["class_counts"]["train"] == [6000] * 10
    assert json.loads((tmp_path / "f.json").read_text())["verified"] is True


@pytest.mark.skipif(not FMNIST.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_tampered_real_file_fails_its_hash(tmp_path):
    folder = tmp_path / "fm"
    folder.mkdir()
    for f in FMNIST.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    data = bytearray(gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    data[100] = (data[100] + 1) % 10
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataError, match="sha256"):
        datasets.prepare("fashion_mnist", tmp_path / "f.pt", root=str(folder), download=False, verify=True)
