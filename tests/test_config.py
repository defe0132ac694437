import copy
import inspect

import pytest
import yaml

from mhd import config as mconfig
from mhd.data import splits
from mhd.errors import ConfigError


@pytest.fixture
def base(repo):
    return mconfig.read_yaml(repo / "config" / "config.yaml")


def test_default_and_smoke_configs_are_valid(repo):
    cfg = mconfig.load_layered(repo / "config" / "config.yaml", [repo / "config" / "smoke.yaml"])
    assert cfg["run"]["clients"] == 4 and cfg["dataset"]["name"] == "fashion_mnist"
    assert list(cfg["experiments"]) == ["labels", "graphs", "engine"], "an overlay's experiments replace the default ones"
    mconfig.load(repo / "config" / "config.yaml")


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["run"].update(skeww=3), r"unknown key 'skeww' under run .*; did you mean 'skew'\? \(every key: config/README.md\)"),
    (lambda c: c["run"].update(flux=3), r"unknown key 'flux' under run .*; allowed: alpha, architecture"),  # no close key
    (lambda c: c.update(extra=1), r"unknown key 'extra' under \(top level\)"),
    (lambda c: c["run"].update(clients="five"), r"run.clients = 'five' .*not of type 'integer'"),
    (lambda c: c["run"].update(skew=0), r"run.skew = 0 .*less than or equal to the minimum of 0"),
    (lambda c: c["run"].update(validation_per_class=0), r"run.validation_per_class = 0 .*less than the minimum of 1"),
    (lambda c: c["run"].update(topology="torus"), r"run.topology = 'torus'"),
    (lambda c: c["dataset"].update(name="svhn"), r"dataset.name = 'svhn'"),
    (lambda c: c["run"].update(architecture="vgg11"), r"run.architecture = 'vgg11'"),
    (lambda c: c["experiments"]["skew"]["grid"].update(skwe=[1]), r"'skwe' under experiments.skew.grid"),
    (lambda c: c["experiments"]["skew"]["grid"].update(skew=[1, -1]), r"experiment 'skew'.*skew = -1"),
    (lambda c: c["experiments"]["graphs"]["rows"].append({"topology": "islands", "islands": 4}),
     r"experiment 'graphs'.*islands = 4 with clients = 5"),
    (lambda c: c["experiments"]["graphs"].update(figure="pie_chart"), r"experiments.graphs.figure = 'pie_chart'"),
    (lambda c: c["run"].pop("clients"), r"'clients' is a required property under run"),
])
def test_bad_configs_fail_loudly(base, edit, message):
    cfg = copy.deepcopy(base)
    edit(cfg)
    with pytest.raises(ConfigError, match=message) as err:
        mconfig.validate(cfg, source="test.yaml")
    assert "test.yaml" in str(err.value)


def test_bad_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        mconfig.load(bad)


def test_merge_overlays_keys_but_replaces_experiments():
    base = {"run": {"a": 1, "b": 2}, "experiments": {"x": {}, "y": {}}}
    assert mconfig.merge(base, {"run": {"b": 3}}) == {"run": {"a": 1, "b": 3}, "experiments": {"x": {}, "y": {}}}
    assert mconfig.merge(base, {"experiments": {"z": {}}})["experiments"] == {"z": {}}


def test_expand_rows_times_grid_and_ids(base):
    cfg = copy.deepcopy(base)
    cfg["experiments"] = {"e": {"rows": [{"clients": 4}, {"clients": 6, "scheme": "dirichlet"}],
                                "grid": {"topology": ["ring", "islands"]}}}
    runs = mconfig.expand(cfg)["e"]
    assert len(runs) == 4
    ids = [(mconfig.split_id("fashion_mnist", r), mconfig.graph_id(r)) for r in runs]
    assert ids[0] == ("fashion_mnist-n4-skew100-pub0.2-m3000-val100-seed0", "ring-n4")
    assert ids[3] == ("fashion_mnist-n6-labeldir0.5-pub0.2-m3000-val100-seed0", "islands2-n6")


def test_same_graph_same_id_same_params(base):
    run = mconfig.expand(base)["label_skew"][0]
    directed = {**run, "directed": True}
    assert mconfig.graph_id(run) == mconfig.graph_id(directed) == "complete-n5"
    assert mconfig.graph_params(run) == mconfig.graph_params(directed)
    assert mconfig.split_id("m", {**run, "skew": 100}) == mconfig.split_id("m", {**run, "skew": 100.0})


def test_validation_per_class_reaches_the_split_unrenamed_and_names_it(base):
    run = mconfig.expand(base)["label_skew"][0]
    other = {**run, "validation_per_class": 7}
    assert mconfig.split_params(other)["validation_per_class"] == 7
    assert set(mconfig.split_params(other)) <= set(inspect.signature(splits.make).parameters)
    assert mconfig.split_id("m", other) == "m-n5-skew1-pub0.2-m3000-val7-seed0"
    assert mconfig.run_id("m", other) != mconfig.run_id("m", run), "a run on another validation set is another run"


def test_a_validation_set_that_cannot_fit_is_refused_by_check(base):
    """Fashion-MNIST (verified, 6000 images per class): the default split's public set takes 1200 of each
    class and the clients at most 1502, so 3298 are left of the scarcest class."""
    cfg = copy.deepcopy(base)
    cfg["experiments"] = {"big": {"figure": "label_distribution", "train": False,
                                  "grid": {"validation_per_class": [100, 3298, 3299]}}}
    with pytest.raises(ConfigError, match=r"experiments.big: validation_per_class = 3299 \(in test.yaml\): split "
                                          r"fashion_mnist-n5-skew100-pub0.2-m3000-val3299-seed0 of experiment big "
                                          r"leaves 3298 images of class \d of fashion_mnist .*allowed: "
                                          r"validation_per_class <= 3298") as err:
        mconfig.validate(cfg, "test.yaml")
    assert "3298 (in" not in str(err.value)
    cfg["run"]["validation_per_class"] = 3299
    cfg["experiments"]["big"]["grid"]["validation_per_class"] = [3299]
    with pytest.raises(ConfigError, match=r"run.validation_per_class = 3299 \(in test.yaml\)"):
        mconfig.validate(cfg, "test.yaml")
    cfg["dataset"]["verify"] = False  # a copy of unknown size: the split stage decides
    mconfig.validate(cfg, "test.yaml")


def test_schema_is_the_workflow_one(repo):
    assert mconfig.SCHEMA_PATH.read_bytes() == (repo / "workflow" / "schemas" / "config.schema.yaml").read_bytes()
    yaml.safe_load(mconfig.SCHEMA_PATH.read_text())


def test_tools_take_a_whole_config_or_an_overlay(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(repo)
    paper = mconfig.load_any("config/paper.yaml")  # an overlay: over config/config.yaml
    assert paper["run"]["architecture"] == "resnet20" and paper["run"]["engine"] == "auto"
    assert paper["experiments"] == mconfig.read_yaml("config/config.yaml")["experiments"]
    assert mconfig.load_any("config/config.yaml") == mconfig.load("config/config.yaml")
    gpu = mconfig.load_any("config/bench-gpu.yaml")["run"]  # the overlay of `make bench-gpu`
    assert (gpu["architecture"], gpu["clients"], gpu["device"]) == ("resnet20", 8, "cuda")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="overlay .*lacks experiments.*run from the repository root"):
        mconfig.load_any(repo / "config" / "paper.yaml")


def test_reference_overlays_plan_their_runs(repo):
    """The reference trains every claim row's settings at one length: 5 seeds for claims 1-3, 7 and 7b (MHD
    and isolated, the naive and mean-target fronts down to 0.003, MHD's own nu_main front), 3 for the rest
    (heads, ring, chain, embedding distillation, claim 6 and its control, teacher rules); its half-budget
    overlay plans the same settings at 1800 steps."""
    base = repo / "config" / "config.yaml"
    ref = mconfig.load_layered(base, [repo / "config" / "reference.yaml"])
    runs = {mconfig.run_id(ref["dataset"]["name"], r): r for rs in mconfig.expand(ref).values() for r in rs}
    assert {r["steps"] for r in runs.values()} == {3600} and len(runs) == 148

    def seeds(**where):
        return {r["seed"] for r in runs.values() if all(r[k] == v for k, v in where.items())}

    five, three = set(range(5)), set(range(3))
    assert seeds(method="isolated", topology="complete", architectures=None) == five
    assert seeds(method="mhd", topology="complete", nu_main=0.0, heads=3, nu_emb=0.0, architecture="cnn",
                 architectures=None, teacher="max_confidence", include_self=True) == five
    for w in (0.003, 0.01, 0.03, 0.1, 0.3):
        assert seeds(method="single_head", nu_main=w) == five and seeds(method="mean_target", nu_main=w) == five
    for w in (0.01, 0.03, 0.1, 0.3, 1.0):
        assert seeds(method="mhd", nu_main=w) == five
    assert seeds(method="mhd", heads=1, topology="complete") == three and seeds(method="mhd", nu_emb=1.0) == three
    assert seeds(method="mhd", architecture="cnn_small") == three and seeds(method="mhd", topology="chain") == three
    for rule in ("energy", "density"):
        assert seeds(teacher=rule, topology="complete") == three and seeds(teacher=rule, topology="ring") == three
    half = mconfig.load_layered(base, [repo / "config" / "reference.yaml", repo / "config" / "reference-half.yaml"])
    halves = [r for rs in mconfig.expand(half).values() for r in rs]
    assert half["study"] == "reference-half" and {r["steps"] for r in halves} == {1800}
    assert len({mconfig.run_id(half["dataset"]["name"], r) for r in halves}) == 148
    for key, values in (("lr", (0.005, 0.02)), ("nu_rampup", (0, 1600)), ("tau", (2.0,))):  # the defaults, re-checked
        assert all(seeds(method="mhd", **{key: v}) == three for v in values)
    teacher = mconfig.load_layered(base, [repo / "config" / "reference-teacher.yaml"])
    planned = {mconfig.run_id(teacher["dataset"]["name"], r): r for rs in mconfig.expand(teacher).values() for r in rs}
    assert len(planned) == 18


def test_naive_distillation_weights_and_mhd_keys_are_sweepable(base):
    cfg = copy.deepcopy(base)
    cfg["experiments"] = {"front": {"rows": [{"method": "single_head"}, {"method": "mean_target"}],
                                    "grid": {"nu_main": [0.03, 0.3, 3.0]}},
                          "mhd": {"grid": {"nu_aux": [0.3, 3.0], "include_self": [False, True], "heads": [1, 3]}},
                          "plain": {"rows": [{"method": "single_head"}]}}
    runs = mconfig.expand(cfg)
    assert sorted((r["method"], r["nu_main"], r["teacher"]) for r in runs["front"]) == sorted(
        [("single_head", w, "max_confidence") for w in (0.03, 0.3, 3.0)] + [("mean_target", w, "mean") for w in (0.03, 0.3, 3.0)])
    assert {(r["nu_aux"], r["include_self"], r["heads"]) for r in runs["mhd"]} == {
        (a, s, h) for a in (0.3, 3.0) for s in (False, True) for h in (1, 3)}
    assert runs["plain"][0]["nu_main"] == 1.0 and runs["plain"][0]["heads"] == 0  # the method's default weight


@pytest.mark.parametrize("row,message", [
    ({"method": "single_head", "heads": 3}, "single_head fixes heads = 0"),
    ({"method": "isolated", "nu_main": 0.3}, "isolated fixes nu_main = 0.0"),
    ({"method": "mean_target", "teacher": "max_confidence"}, "mean_target fixes teacher = 'mean'"),
    ({"method": "single_head", "nu_main": 0.0}, "needs a weight nu_main > 0"),
])
def test_a_key_the_method_cannot_use_is_refused_not_ignored(base, row, message):
    cfg = copy.deepcopy(base)
    cfg["experiments"] = {"e": {"rows": [row]}}
    with pytest.raises(ConfigError, match=message):
        mconfig.validate(cfg, "test.yaml")


def test_a_figure_that_would_pool_runs_is_refused_naming_the_key(repo):
    """An ablation over two keys draws one of them: the other's values would be averaged into one bar."""
    base = mconfig.load(repo / "config" / "config.yaml")
    two = {"figure": "ablation", "grid": {"tau": [1.0, 2.0], "nu_aux": [0.5, 1.0], "seed": [0, 1]}}
    with pytest.raises(ConfigError, match=r"experiments\.two .*tells runs apart by method, heads, tau .*nu_aux \(0\.5, 1\.0\)"):
        mconfig.validate({**base, "experiments": {"two": two}}, "my.yaml")
    # drawn, or averaged by design: accepted
    mconfig.validate({**base, "experiments": {"two": {**two, "x": "nu_aux", "grid": {"nu_aux": [0.5, 1.0], "seed": [0, 1]}}}})
    per_head = {"figure": "per_head", "rows": [{"method": "mhd"}, {"method": "mhd", "include_self": False}]}
    mconfig.validate({**base, "experiments": {"heads": per_head}}, "my.yaml")  # per_head tells include_self apart
    topo = {"figure": "topologies", "rows": [{"method": "mhd", "topology": "ring"}, {"method": "mhd", "tau": 2.0}]}
    mconfig.validate({**base, "experiments": {"t": topo}}, "my.yaml")
    topo["rows"].append({"method": "mhd", "topology": "ring", "lr": 0.05})
    with pytest.raises(ConfigError, match=r"experiments\.t .*lr \(0\.01, 0\.05\)"):
        mconfig.validate({**base, "experiments": {"t": topo}}, "my.yaml")


def test_an_overlay_checked_alone_names_the_base_config(repo, tmp_path):
    mine = tmp_path / "my.yaml"
    mine.write_text("run: {tau: 2.0}\n")
    with pytest.raises(ConfigError, match=r"lacks dataset, experiments: .*`mhd check config/config.yaml .*my.yaml`"):
        mconfig.validate(mconfig.read_yaml(mine), str(mine))


def test_mhd_version_names_the_package_and_its_training_code(capsys):
    from mhd import __version__
    from mhd.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"mhd {__version__} (training code ")
