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


def make_trainer(run: dict, inputs: dict, device: str = "cpu", graph: str = "graph_dir"):
    """A Trainer of `run` on the tiny dataset's split and `graph` (the ring unless told)."""
    from mhd.learning.federation import Federation
    from mhd.learning.trainer import Trainer

    return Trainer(run, Federation.load(run, inputs["prepared"], inputs["split_dir"], inputs[graph], device))


@pytest.fixture(scope="session")
def tiny_prepared(tiny_idx, tmp_path_factory) -> Path:
    from mhd.data import datasets

    out = tmp_path_factory.mktemp("prepared") / "fashion_mnist.pt"
    datasets.prepare("fashion_mnist", out, root=str(tiny_idx), download=False, verify=False)
    return out


@pytest.fixture(scope="session")
def inputs(tiny_prepared, tmp_path_factory):
    from mhd.data import datasets, graphs, splits

    tensors, meta = datasets.load(tiny_prepared)
    labels = tensors["train_y"].numpy()
    root = tmp_path_factory.mktemp("inputs")
    s = splits.make(labels, 10, clients=4, skew=100, public_fraction=0.1, samples_per_client=120,
                    validation_per_class=10)
    splits.write(root / "split", s, labels, 10, {"clients": 4})
    for topo in ("ring", "complete"):
        graphs.write(root / topo, graphs.make(topo, 4), {"clients": 4, "topology": topo})
    return {"prepared": tiny_prepared, "split_dir": root / "split", "graph_dir": root / "ring",
            "complete": root / "complete"}


def pytest_unconfigure(config):
    """The very last lines of a run say whether the science regression test ran (tests/test_science.py):
    a skipped one is easy to miss in the middle of the skip list."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    science = [r for key in ("passed", "failed", "skipped", "error") for r in reporter.stats.get(key, [])
               if getattr(r, "nodeid", "").startswith("tests/test_science.py") and r.when in ("setup", "call")]
    if not science:
        return
    skipped = [r for r in science if r.skipped]
    if skipped:
        reason = skipped[0].longrepr[2] if isinstance(skipped[0].longrepr, tuple) else str(skipped[0].longrepr)
        reporter.write_sep("!", "the science regression test did NOT run", red=True, bold=True)
        reporter.write_line(reason)
    else:
        ran = {r.nodeid for r in science if r.when == "call"}
        reporter.write_line(f"science regression test: ran ({len(ran)} tests on the real Fashion-MNIST)")
