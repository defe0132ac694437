"""Attacks on the artefacts' trust and on configs that `mhd check` used to pass (docs/reliability.md):

A. artefacts trusted without their checks: a split's stats.csv edited with its hash updated in split.json
   (drawn by the label_distribution figure), a prepared dataset's record edited to `classes: 5`,
   Fashion-MNIST's files prepared and "verified" under the name mnist, and split.json / graph.json /
   prepared records with a key missing or a hash of the wrong type (tracebacks before);
B. configs that passed `mhd check` and failed later: seeds beyond what torch and numpy take, a
   public_fraction that leaves no public image, a graph too large for the graph job (30,000 clients on a
   complete graph), and figures drawn from the edges of a graph that has none.
"""

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from mhd import config as mconfig
from mhd.cli import main
from mhd.data import datasets, files, graphs, splits
from mhd.errors import ConfigError, DataError
from mhd.report import figures

FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def base(repo):
    return mconfig.read_yaml(repo / "config" / "config.yaml")


def _copy_prepared(tiny_prepared, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_prepared, folder / tiny_prepared.name)
    shutil.copy(tiny_prepared.with_suffix(".json"), folder / f"{tiny_prepared.stem}.json")
    return folder / tiny_prepared.name


def _edit_json(path: Path, edit) -> None:
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


# ---------------------------------------------------------------- A1. stats.csv checked against the split
def test_an_edited_stats_file_with_its_hash_updated_is_not_drawn(inputs, tiny_prepared, tmp_path):
    split_dir = tmp_path / "split"
    shutil.copytree(inputs["split_dir"], split_dir)
    lines = (split_dir / "stats.csv").read_text().splitlines()
    # client 0's classes 0 and 1 swap their counts: every total stays, only the labels' story changes
    (i, a), (j, b) = [(k, line) for k, line in enumerate(lines) if line.startswith("0,0,") or line.startswith("0,1,")]
    lines[i], lines[j] = f"0,0,{b.split(',')[2]}", f"0,1,{a.split(',')[2]}"
    assert lines != (split_dir / "stats.csv").read_text().splitlines()
    text = "\n".join(lines) + "\n"
    (split_dir / "stats.csv").write_text(text)
    _edit_json(split_dir / "split.json", lambda r: (r["sha256"].update({"stats.csv": files.sha256_bytes(text.encode())}),
                                                    r["params"].update(scheme="skew", skew=100)))
    spec = {"name": "labels", "figure": "label_distribution", "dataset_meta": str(tiny_prepared.with_suffix(".json")),
            "splits": [str(split_dir)]}
    with pytest.raises(DataError, match=r"stats.csv does not agree with indices.csv and the dataset's labels: line 2"):
        figures.draw(spec, tmp_path / "fig")
    assert not (tmp_path / "fig.png").exists()


# ---------------------------------------------------------------- A2. a record's facts against its tensors
@pytest.mark.parametrize("edit,message", [
    (lambda r: r.update(classes=5), r"classes = 5, but fashion_mnist has 10 classes"),
    (lambda r: r["class_counts"]["train"].__setitem__(0, 1), r"class_counts.train = \[1, "),
    (lambda r: r.update(name="cifar10"), r"images of shape \(1, 28, 28\), but cifar10's are \(3, 32, 32\)"),
])
def test_a_prepared_record_edited_to_other_facts_is_refused(tiny_prepared, tmp_path, edit, message):
    copy_ = _copy_prepared(tiny_prepared, tmp_path)
    _edit_json(copy_.with_suffix(".json"), edit)
    with pytest.raises(DataError, match=message):
        datasets.load(copy_)


# ---------------------------------------------------------------- A3. verified against the NAMED dataset
def test_another_datasets_files_are_refused_under_a_name_even_unverified(tiny_idx, tmp_path, monkeypatch):
    """The tiny files stand in for Fashion-MNIST's official release (their hashes are the known ones),
    and mnist's official sizes are the tiny ones: only the hashes tell the two apart."""
    digests = datasets.read_raw("fashion_mnist", tiny_idx)["sha256"]
    known = dict(datasets.KNOWN)
    known["fashion_mnist"] = dataclasses.replace(known["fashion_mnist"], train=1500, test=200, sha256=digests)
    known["mnist"] = dataclasses.replace(known["mnist"], train=1500, test=200)
    monkeypatch.setattr(datasets, "KNOWN", known)
    for verify in (True, False):
        with pytest.raises(DataError, match=r"train-images-idx3-ubyte in .*tiny_fmnist is a file of 'fashion_mnist'.*"
                                                r"not of 'mnist'; set dataset.name: fashion_mnist"):
            datasets.prepare("mnist", tmp_path / "mnist.pt", root=str(tiny_idx), download=False, verify=verify)
    assert not (tmp_path / "mnist.pt").exists()


def test_verification_needs_the_named_datasets_own_hashes(tiny_idx, tmp_path, monkeypatch):
    """Files of no known release, under a name whose sizes they have: verification cannot pass."""
    monkeypatch.setitem(datasets.KNOWN, "mnist", dataclasses.replace(datasets.KNOWN["mnist"], train=1500, test=200))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: sha256 .*, expected ba891046e6505d7a"):
        datasets.prepare("mnist", tmp_path / "mnist.pt", root=str(tiny_idx), download=False, verify=True)


@pytest.mark.skipif(not FMNIST.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_files_are_not_mnist(tmp_path, capsys):
    params = json.dumps({"root": str(FMNIST), "download": False, "verify": True})
    assert main(["prepare", "--dataset", "mnist", "--params", params, "--out", str(tmp_path / "mnist.pt")]) == 2
    assert "is a file of 'fashion_mnist'" in capsys.readouterr().err
    assert not (tmp_path / "mnist.json").exists()


# ---------------------------------------------------------------- A4. records without a key or with a wrong type
@pytest.mark.parametrize("record,edit,message", [
    ("split.json", lambda r: r.pop("distribution"), r"split.json: key 'distribution' is missing; expected a non-empty"),
    ("split.json", lambda r: r["sha256"].update({"indices.csv": 5}), r"key 'sha256.indices.csv' = 5 \(int\); expected a sha256"),
    ("split.json", lambda r: r["params"].pop("clients"), r"key 'params.clients' is missing; expected an integer >= 1"),
    ("split.json", lambda r: r.update(sizes={"0": 1}), r"key 'sizes' = \{'0': 1\} does not match indices.csv"),
    ("graph.json", lambda r: r.pop("params"), r"graph.json: key 'params' is missing; expected a mapping"),
    ("graph.json", lambda r: r["params"].update(topology=["ring"]), r"key 'params.topology' = \['ring'\] \(list\); expected one of"),
    ("graph.json", lambda r: r["params"].update(islands=3, topology="islands"), r"key 'params' = .* makes no graph: islands = 3"),
    ("graph.json", lambda r: r.update(edges=7), r"keys 'edges' = 7 and 'in_degree' = .* do not match edges.csv"),
    ("prepared", lambda r: r.update(sha256=5), r"fashion_mnist.json: key 'sha256' = 5 \(int\); expected a sha256"),
    ("prepared", lambda r: r.update(sha256=["a"]), r"key 'sha256' = \['a'\] \(list\); expected a sha256"),
    ("prepared", lambda r: r.pop("classes"), r"key 'classes' is missing; expected an integer >= 1"),
    ("prepared", lambda r: r.update(class_names="abc"), r"key 'class_names' = 'abc' \(str\); expected a list of strings"),
])
def test_a_record_without_a_key_or_with_a_wrong_type_is_one_line(inputs, tiny_prepared, tmp_path, record, edit, message):
    if record == "prepared":
        path = _copy_prepared(tiny_prepared, tmp_path)
        _edit_json(path.with_suffix(".json"), edit)
        read = lambda: datasets.load(path)  # noqa: E731
    else:
        folder = tmp_path / "artefact"
        shutil.copytree(inputs["split_dir" if record == "split.json" else "graph_dir"], folder)
        _edit_json(folder / record, edit)
        read = lambda: (splits if record == "split.json" else graphs).read(folder)  # noqa: E731
    with pytest.raises(DataError, match=message) as err:
        read()
    assert "\n" not in str(err.value) and ("delete" in str(err.value))


# ---------------------------------------------------------------- B5. seeds torch and numpy take
@pytest.mark.parametrize("key,value,allowed", [
    ("seed", 2**64, "17592186044415"), ("seed", 2**44, "17592186044415"),
    ("split_seed", 2**64, "9223372036854775807"), ("graph_seed", 2**63, "9223372036854775807"),
])
def test_a_seed_beyond_what_the_generators_take_is_refused_by_check(base, key, value, allowed):
    cfg = copy.deepcopy(base)
    cfg["run"][key] = value
    with pytest.raises(ConfigError, match=rf"run.{key} = {value} \(in test.yaml\): .*maximum of {allowed}"):
        mconfig.validate(cfg, "test.yaml")


def test_the_largest_seed_fits_torchs_seed_for_every_step(repo):
    import torch

    from mhd.learning.batches import STEP_SEED_STRIDE

    top = mconfig.schema()["$defs"]["run"]["properties"]["seed"]["maximum"]
    torch.Generator().manual_seed(top * STEP_SEED_STRIDE + 10**15)  # 10^15 steps: more than any run takes


@pytest.mark.parametrize("stage,params", [
    ("split", {"clients": 4, "split_seed": -1, "public_fraction": 0.1, "samples_per_client": 10}),
    ("graph", {"clients": 4, "topology": "regular", "degree": 2, "graph_seed": -1}),
])
def test_a_negative_seed_given_to_a_stage_is_a_message(tiny_prepared, tmp_path, capsys, stage, params):
    args = ["--prepared", str(tiny_prepared)] if stage == "split" else []
    assert main([stage, *args, "--params", json.dumps(params), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "_seed = -1: allowed: an integer in 0..9223372036854775807" in err and "Traceback" not in err


# ---------------------------------------------------------------- B6. a public set that is not empty
def test_a_public_fraction_leaving_no_public_image_is_refused_by_check(base):
    cfg = copy.deepcopy(base)
    cfg["experiments"] = {"tiny_public": {"figure": "label_distribution", "train": False,
                                          "grid": {"public_fraction": [0.1, 0.0001]}}}
    with pytest.raises(ConfigError, match=r"experiments.tiny_public: public_fraction = 0.0001 \(in test.yaml\): "
                                          r"int\(0.0001 x 60000 .* = 0 public images per class.*>= 0.000166667"):
        mconfig.validate(cfg, "test.yaml")


def test_a_public_fraction_leaving_no_public_image_is_refused_by_the_split_stage(tiny_prepared):
    tensors, meta = datasets.load(tiny_prepared)  # 1500 images: 0.005 x 1500 // 10 = 0 per class
    with pytest.raises(ConfigError, match=r"public_fraction = 0.005: .* no public set; allowed: public_fraction >= 0.00666667"):
        splits.make(tensors["train_y"].numpy(), 10, clients=4, public_fraction=0.005, samples_per_client=10)


# ---------------------------------------------------------------- B7. graphs the graph job can hold
def test_a_graph_with_too_many_edges_is_refused_by_check(base):
    cfg = copy.deepcopy(base)
    cfg["run"].update(clients=30000, topology="complete")
    with pytest.raises(ConfigError, match=r"topology complete with clients = 30000: 899,970,000 edges, more than the "
                                          r"1,000,000"):
        mconfig.validate(cfg, "test.yaml")


def test_edge_counts_are_known_before_the_graph_is_made():
    for topology, n, over in [("complete", 7, {}), ("ring", 2, {}), ("ring", 5, {"directed": True}),
                              ("chain", 6, {}), ("star", 5, {"directed": True}), ("islands", 6, {"islands": 3}),
                              ("islands", 4, {"islands": 4}), ("regular", 8, {"degree": 3})]:
        assert graphs.edge_count(topology, n, **over) == len(graphs.make(topology, n, **over)), (topology, n, over)


# ---------------------------------------------------------------- B8. figures drawn from edges need edges
@pytest.mark.parametrize("exp", [
    {"figure": "graphs", "train": False, "rows": [{"topology": "ring"}, {"topology": "islands", "islands": 5}]},
    {"figure": "transitive", "rows": [{"method": "mhd", "topology": "islands", "islands": 5}]},
    {"figure": "theory", "rows": [{"method": "mhd", "topology": "islands", "islands": 5}]},
])
def test_a_figure_drawn_from_edges_over_a_graph_without_edges_is_refused_by_check(base, exp):
    cfg = copy.deepcopy(base)
    cfg["run"]["clients"] = 5
    cfg["experiments"] = {"edgeless": exp}
    with pytest.raises(ConfigError, match=rf"experiments.edgeless.figure = '{exp['figure']}' \(in test.yaml\): drawn "
                                          r"from the communication graph's edges, but the graph of topology islands "
                                          r"with islands = 5, clients = 5 has none"):
        mconfig.validate(cfg, "test.yaml")
