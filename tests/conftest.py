import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fakedata  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_idx(tmp_path_factory) -> Path:
    """A Fashion-MNIST-shaped IDX dataset: 10 classes x 150 train, x 20 test."""
    return fakedata.write_idx(tmp_path_factory.mktemp("raw") / "tiny_fmnist")


@pytest.fixture(scope="session")
def tiny_prepared(tiny_idx, tmp_path_factory) -> Path:
    from mhd import datasets

    out = tmp_path_factory.mktemp("prepared") / "fashion_mnist.pt"
    datasets.prepare("fashion_mnist", out, root=str(tiny_idx), download=False, strict=False)
    return out
