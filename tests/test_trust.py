"""Attacks of a hostile or careless user, each refused at its root or made harmless
(docs/reliability.md): names that would reach a shell, stale checkpoints, non-finite numbers, edited
artefacts, overlays, templated configs, file permissions, and inputs that used to end in a traceback."""

import copy
import fcntl
import json
import os

import numpy as np
import pytest
import torch
import yaml
from conftest import make_trainer
from test_train import make_run
from test_workflow import snakemake, tiny_overlay

from mhd import config as mconfig
from mhd.cli import main
from mhd.data import datasets, files, graphs, splits
from mhd.errors import ConfigError, DataError, TrainingError
from mhd.learning import run as train

@pytest.fixture(scope="module")
def base(repo):
    return mconfig.read_yaml(repo / "config" / "config.yaml")


def fit(repo, inputs, out, graph="graph_dir", stop_after=None, **over):
    run = make_run(repo, **over)
    return train.train(run, inputs["prepared"], inputs["split_dir"], inputs[graph], out, device="cpu", progress=False,
                       stop_after=stop_after)


# ---------------------------------------------------------------- 1. names never reach a shell
@pytest.mark.parametrize("name", ["x;touch PWNED;#", "a b", "(x", "../up", "-rf", "$(id)"])
def test_an_experiment_name_that_a_shell_would_read_is_refused(base, name):
    cfg = copy.deepcopy(base)
    cfg["experiments"][name] = {"figure": "graphs", "train": False, "rows": [{}]}
    with pytest.raises(ConfigError, match="names become file names"):
        mconfig.validate(cfg, "test.yaml")


@pytest.mark.slow
def test_names_and_paths_with_shell_characters_stay_words(repo, tiny_idx, tmp_path):
    overlay = tmp_path / "evil.yaml"
    overlay.write_text(yaml.safe_dump({"experiments": {"x;touch PWNED;#": {"figure": "graphs", "train": False}}}))
    res = snakemake(repo, tmp_path / "w1", "-n", "all_figures", configfiles=[overlay])
    assert res.returncode != 0 and "names become file names" in res.stdout + res.stderr
    assert not list(tmp_path.rglob("PWNED"))
    # a dataset folder whose name holds a space and a shell command is a path, quoted, not run
    odd = tmp_path / "tiny data;touch PWNED;#"
    odd.mkdir()
    for f in tiny_idx.iterdir():
        (odd / f.name).write_bytes(f.read_bytes())
    data = tiny_overlay(tmp_path, odd, experiments={"v1.0": {"figure": "graphs", "train": False}})
    res = snakemake(repo, tmp_path / "w2", "all_figures", configfiles=[repo / "config" / "smoke.yaml", data])
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "w2" / "figures" / "smoke" / "v1.0.png").exists()  # a '.' in a name is matched literally
    assert not list(tmp_path.rglob("PWNED"))


# ---------------------------------------------------------------- 2. a checkpoint is only its own run's
def test_a_checkpoint_trained_on_other_inputs_is_set_aside(repo, inputs, tmp_path, capsys):
    fit(repo, inputs, tmp_path / "ring", method="mhd", heads=2)
    fresh = tmp_path / "complete"
    fit(repo, inputs, fresh, graph="complete", method="mhd", heads=2)
    # the same run config on a new graph, into the folder of the finished ring run: a real rerun
    reused = tmp_path / "ring"
    record = fit(repo, inputs, reused, graph="complete", method="mhd", heads=2)
    assert "set aside as checkpoint.stale.pt" in capsys.readouterr().out
    assert record["resumed_from_step"] == 0 and record["steps_this_call"] == 12
    assert (reused / "metrics.csv").read_bytes() == (fresh / "metrics.csv").read_bytes()
    assert (reused / "checkpoint.stale.pt").exists()
    assert record["inputs"]["sha256"] == json.loads((fresh / "run.json").read_text())["inputs"]["sha256"]


def test_a_truncated_metrics_file_is_rewritten_whole(repo, inputs, tmp_path):
    fit(repo, inputs, tmp_path, method="isolated")
    whole = (tmp_path / "metrics.csv").read_bytes()
    (tmp_path / "metrics.csv").write_bytes(whole[: len(whole) // 3])
    fit(repo, inputs, tmp_path, method="isolated")
    assert (tmp_path / "metrics.csv").read_bytes() == whole


def test_two_trainers_on_one_folder_are_refused_and_leftovers_removed(repo, inputs, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    leftover = tmp_path / ".metrics.csv.k1ll3d.tmp"
    leftover.write_text("half a file")
    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another mhd train holds the folder
    try:
        with pytest.raises(ConfigError, match="another `mhd train` is writing to"):
            fit(repo, inputs, tmp_path, method="isolated")
        assert leftover.exists(), "nothing is touched while another run holds the folder"
    finally:
        os.close(fd)
    fit(repo, inputs, tmp_path, method="isolated")
    assert not leftover.exists()


# ---------------------------------------------------------------- 4. numbers are finite
@pytest.mark.parametrize("key,value", [("lr", float("nan")), ("skew", float("inf")), ("tau", float("-inf"))])
def test_non_finite_numbers_are_refused(base, key, value):
    cfg = copy.deepcopy(base)
    cfg["run"][key] = value
    with pytest.raises(ConfigError, match=f"run.{key} = .*not a finite number"):
        mconfig.validate(cfg, "test.yaml")
    grid = copy.deepcopy(base)
    grid["experiments"]["label_skew"]["grid"] = {key: [1.0, value]}
    with pytest.raises(ConfigError, match="not a finite number"):
        mconfig.validate(grid, "test.yaml")


def test_an_overflowing_skew_is_refused_not_turned_into_another_split():
    labels = np.repeat(np.arange(10), 100)
    with pytest.raises(ConfigError, match="skew = 1e\\+308.*overflow"):
        splits.make(labels, 10, clients=4, skew=1e308, samples_per_client=20)


def test_a_diverging_run_stops_naming_the_step(repo, inputs, tmp_path):
    with pytest.raises(TrainingError, match=r"NaN or infinite at step \d+ \(lr = 1e\+30"):
        fit(repo, inputs, tmp_path, method="mhd", heads=1, lr=1e30, warmup_steps=0)
    assert not (tmp_path / "metrics.csv").exists()


# ---------------------------------------------------------------- 5. artefacts are checked when read
def _edit_indices(split_dir, edit):
    text = (split_dir / "indices.csv").read_text().splitlines()
    text = edit(text)
    raw = "\n".join(text) + "\n"
    (split_dir / "indices.csv").write_text(raw)
    meta = json.loads((split_dir / "split.json").read_text())
    meta["sha256"]["indices.csv"] = files.sha256_bytes(raw.encode())  # the hash updated too
    (split_dir / "split.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("edit,message", [
    (lambda rows: rows[:1] + ["0,-3"] + rows[2:], "outside the training split"),
    (lambda rows: rows[:1] + [rows[2], rows[2]] + rows[3:], "more than once"),
    (lambda rows: rows[:1] + ["0," + next(r for r in rows if r.startswith("public")).split(",")[1]] + rows[2:],
     "more than once"),
    (lambda rows: rows + ["7,1"], "allowed owners"),
])
def test_an_edited_split_is_refused_even_with_its_hash_updated(repo, inputs, tmp_path, edit, message):
    split_dir = tmp_path / "split"
    split_dir.mkdir()
    for f in inputs["split_dir"].iterdir():
        (split_dir / f.name).write_bytes(f.read_bytes())
    _edit_indices(split_dir, edit)
    with pytest.raises(DataError, match=message):
        fit(repo, {**inputs, "split_dir": split_dir}, tmp_path / "out", method="isolated")


@pytest.mark.parametrize("edges,message", [("src,dst\n0,0\n", "unexpected \\[\\(0, 0\\)\\]"), ("src,dst\n", "0 edges"),
                                           ("src,dst\n-1,2\n", "unexpected"), ("src,dst\n0,x\n", "cannot be read")])
def test_an_edited_graph_is_refused(inputs, tmp_path, edges, message):
    graph_dir = tmp_path / "ring"
    graphs.write(graph_dir, graphs.make("ring", 4), {"clients": 4, "topology": "ring"})
    (graph_dir / "edges.csv").write_text(edges)
    with pytest.raises(DataError, match=message):
        graphs.read(graph_dir)


# ---------------------------------------------------------------- 6, 7. the plan is the project's
@pytest.mark.slow
def test_several_overlays_plan_what_mhd_check_plans(repo, tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump({"experiments": {"e": {"grid": {"seed": [0, 1, 2]}}}}))
    b.write_text(yaml.safe_dump({"experiments": {"e": {"rows": [{"method": "mhd"}, {"method": "isolated"}]}}}))
    planned = mconfig.plan(mconfig.merge_layered(repo / "config" / "config.yaml", [a, b]))[1]
    assert len(planned["e"]) == 2  # b replaces a's experiment whole, as mhd check merges
    res = snakemake(repo, tmp_path / "w", "-n", "-p", "all_runs", "--config", "run={steps: 3, eval_every: 3}",
                    configfiles=[a, b])
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout + res.stderr
    assert {line.split()[-1] for line in out.splitlines() if line.startswith("train ")} == {"2"}  # not 3 x 2
    # the run files themselves (rule run_config runs in the Snakemake process): --config values arrive as numbers
    written = snakemake(repo, tmp_path / "w", "all_runs", "--until", "run_config", "--config",
                        "run={steps: 3, eval_every: 3}", configfiles=[a, b])
    assert written.returncode == 0, written.stderr[-2000:]
    specs = [yaml.safe_load(p.read_text())["run"] for p in (tmp_path / "w" / "results" / "runs").glob("*/run.yaml")]
    assert sorted(r["method"] for r in specs) == ["isolated", "mhd"] and all(r["steps"] == 3 for r in specs)


def test_a_templated_overlay_is_named_as_code(repo, tmp_path, capsys):
    overlay = tmp_path / "yte.yaml"
    overlay.write_text("__use_yte__: true\nrun:\n  steps: 10\n")
    assert main(["check", str(repo / "config" / "config.yaml"), str(overlay)]) == 2
    assert "uses YTE templating" in capsys.readouterr().err


# ---------------------------------------------------------------- 8. files
def test_files_honour_the_umask_and_the_probe_follows_no_link(repo, inputs, tmp_path):
    old = os.umask(0o002)
    try:
        files.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o664
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".write-test").symlink_to(victim)
    fit(repo, inputs, out, method="isolated", steps=2, eval_every=2)
    assert victim.read_text() == "keep me"


# ---------------------------------------------------------------- 9. messages, not tracebacks
def test_a_truncated_idx_header_is_a_message(tmp_path):
    (tmp_path / "f").write_bytes(b"\x00\x00\x08\x03")
    with pytest.raises(DataError, match="announces 3 dimensions"):
        datasets.read_idx(tmp_path / "f")


def test_a_prepared_file_that_is_not_tensors_is_a_message(tmp_path):
    path = tmp_path / "fashion_mnist.pt"
    torch.save([1, 2, 3], path)
    meta = {"sha256": files.sha256_file(path), "shapes": {"train_x": [1]}}
    (tmp_path / "fashion_mnist.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="does not hold the tensors"):
        datasets.load(path)


def test_a_checkpoint_of_the_right_config_but_wrong_shapes_is_a_message(repo, inputs, tmp_path):
    fit(repo, inputs, tmp_path, method="isolated", stop_after=6)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    key = next(iter(state["models"]))
    state["models"][key] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(DataError, match="does not fit its models"):
        fit(repo, inputs, tmp_path, method="isolated")


def test_a_refused_checkpoint_gives_no_advice_to_unpickle(repo, inputs, tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.getcwd, ())

    tmp_path.mkdir(exist_ok=True)
    torch.save({"step": Payload()}, tmp_path / "checkpoint.pt")
    with pytest.raises(DataError) as err:
        fit(repo, inputs, tmp_path, method="isolated")
    assert "weights_only" not in str(err.value) and "never unpickled" in str(err.value)


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["experiments"].update(h={"figure": "per_head", "rows": [{"method": "isolated"}]}), "no run of the experiment has any"),
    (lambda c: c["experiments"].update(t={"figure": "learning_curves", "train": False}), "train: false"),
    (lambda c: c["experiments"].update(s={"figure": "sweep", "grid": {"seed": [0, 1]}}), "needs a swept key"),
    (lambda c: c["experiments"].update(c={"figure": "communication", "rows": [{"method": "isolated"}]}), "sends any"),
])
def test_a_figure_that_cannot_be_drawn_from_its_runs_is_refused_when_read(base, edit, message):
    cfg = copy.deepcopy(base)
    edit(cfg)
    with pytest.raises(ConfigError, match=message):
        mconfig.validate(cfg, "test.yaml")


def test_bad_command_line_values_are_messages(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", "x", "--out", "y", "--threads", "-1"])
    assert exit_.value.code == 2 and "positive number of threads" in capsys.readouterr().err
    assert main(["figure", "--spec", str(tmp_path / "missing.json"), "--out", str(tmp_path / "f")]) == 2
    assert "No such file" in capsys.readouterr().err


@pytest.mark.parametrize("over", [{"batch_public": 100_000_000}, {"heads": 1_000_000}])
def test_absurd_sizes_are_refused_before_allocating(repo, inputs, over):
    with pytest.raises(TrainingError, match="needs at least .* GiB"):
        make_trainer(make_run(repo, method="mhd", **{"heads": 1, **over}), inputs)


def test_a_yaml_alias_bomb_is_refused(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="expands to more than 1,000,000 values"):
        mconfig.read_yaml(tmp_path / "bomb.yaml")
