"""The trainer on a tiny dataset: every method runs, metrics are tidy, resume is exact."""

import os
import pickle

import pandas as pd
import pytest
import torch

from mhd import config as mconfig
from conftest import make_trainer

from mhd.learning import run as train
from mhd.errors import ConfigError, DataError


def make_run(repo, **over):
    cfg = mconfig.load_layered(repo / "config" / "config.yaml", [repo / "config" / "smoke.yaml"])
    return mconfig.validate_run({**cfg["run"], **over}, "test", explicit=over)


def fit(repo, inputs, out, **over):
    run = make_run(repo, **over)
    train.train(run, inputs["prepared"], inputs["split_dir"], inputs["graph_dir"], out, device="cpu", progress=False)
    return pd.read_csv(out / "metrics.csv", dtype={"head": str})


@pytest.mark.parametrize("method", ["mhd", "isolated", "single_head", "mean_target", "fedavg", "centralized"])
def test_every_method_trains_and_reports(repo, inputs, tmp_path, method):
    m = fit(repo, inputs, tmp_path, method=method, **({"heads": 2} if method == "mhd" else {}))
    assert list(m.columns) == ["step", "client", "head", "metric", "value"]
    assert sorted(m.step.unique()) == [6, 12]
    heads = sorted(set(m["head"]) - {"-"})
    assert heads == (["0", "1", "2", "ensemble"] if method == "mhd" else ["0", "ensemble"])
    acc = m[m.metric.isin(["shared_acc", "private_acc"])].value
    assert acc.between(0, 1).all()
    assert {"bytes_sent", "train_loss", "class_acc_9"} <= set(m.metric)
    sent = m[(m.metric == "bytes_sent") & (m.step == 12)].value
    if method in ("isolated", "centralized"):
        assert (sent == 0).all()
    else:
        assert (sent > 0).all()
    for f in ("metrics.csv", "checkpoint.pt", "run.json"):
        assert (tmp_path / f).exists()


def test_bytes_follow_the_formula(repo, inputs, tmp_path):
    m = fit(repo, inputs, tmp_path, method="mhd", heads=3, nu_emb=1.0, refresh_every=4)
    sent = m[(m.metric == "bytes_sent") & (m.step == 12)].value.tolist()
    # ring: out-degree 2; 3 exchanges (steps 0, 4, 8) of 16 public samples x (heads 0..2 x 10 classes + 128 dims)
    assert sent == [3 * 2 * 16 * (3 * 10 + 128) * 4] * 4


def test_scores_travel_with_the_predictions(repo, inputs, tmp_path):
    """energy sends one score per sample per head sent, density one per sample."""
    for rule, scores in (("energy", 3), ("density", 1)):
        m = fit(repo, inputs, tmp_path / rule, method="mhd", heads=3, teacher=rule)
        sent = m[(m.metric == "bytes_sent") & (m.step == 12)].value.tolist()
        assert sent == [12 * 2 * 16 * (3 * 10 + scores) * 4] * 4, rule


def test_centralized_is_one_model_reported_for_every_client(repo, inputs, tmp_path):
    m = fit(repo, inputs, tmp_path, method="centralized")
    shared = m[(m.metric == "shared_acc") & (m["head"] == "0") & (m.step == 12)].value
    assert shared.nunique() == 1
    private = m[(m.metric == "private_acc") & (m["head"] == "0") & (m.step == 12)].value
    assert private.nunique() > 1, "private accuracy is reweighted per client"


def test_fedavg_leaves_clients_equal_after_a_round(repo, inputs):
    run = make_run(repo, method="fedavg", fedavg_every=3)
    t = make_trainer(run, inputs)
    for _ in range(3):
        t.train_step()
    w = [m.heads.weight for m in t.models]
    assert all(torch.equal(w[0], x) for x in w[1:])


@pytest.mark.parametrize("over", [{}, {"refresh_every": 4, "nu_emb": 1.0, "augment": "flip_crop"},
                                  {"teacher": "density", "density_refit_every": 4, "score_temperature": 0.5}])
def test_resume_equals_uninterrupted_to_the_bit(repo, inputs, tmp_path, over):
    run = make_run(repo, method="mhd", heads=3, **over)
    args = (inputs["prepared"], inputs["split_dir"], inputs["graph_dir"])
    train.train(run, *args, tmp_path / "whole", device="cpu", progress=False)
    stopped = train.train(run, *args, tmp_path / "cut", device="cpu", progress=False, stop_after=8)
    assert stopped == {"stopped_at": 8}
    rec = train.train(run, *args, tmp_path / "cut", device="cpu", progress=False)
    assert rec["resumed_from_step"] == 6
    assert (tmp_path / "whole" / "metrics.csv").read_bytes() == (tmp_path / "cut" / "metrics.csv").read_bytes()


def test_heterogeneous_clients_with_embedding_distillation(repo, inputs, tmp_path):
    m = fit(repo, inputs, tmp_path, method="mhd", heads=1, nu_emb=1.0,
            architectures=["cnn", "resnet8", "cnn", "resnet8"])
    assert set(m.client) == {0, 1, 2, 3}
    t = make_trainer(make_run(repo, method="mhd", heads=1, nu_emb=1.0, architectures=["cnn", "resnet8", "cnn", "resnet8"]),
                     inputs)
    # ring: client 0 hears clients 1 (resnet8, 64 dims) and 3 (resnet8): one projection 128 -> 64
    assert list(t.projections[0].keys()) == ["64"]


def test_truncated_or_tampered_checkpoint_is_refused(repo, inputs, tmp_path):
    run = make_run(repo, method="isolated")
    args = (inputs["prepared"], inputs["split_dir"], inputs["graph_dir"])
    train.train(run, *args, tmp_path, device="cpu", progress=False, stop_after=6)
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:-500])
    with pytest.raises(DataError, match="truncated"):
        train.train(run, *args, tmp_path, device="cpu", progress=False)

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"step": Evil()}, ckpt, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(DataError, match="cannot be loaded"):
        train.train(run, *args, tmp_path, device="cpu", progress=False)
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_of_another_config_is_not_reused(repo, inputs, tmp_path):
    args = (inputs["prepared"], inputs["split_dir"], inputs["graph_dir"])
    train.train(make_run(repo, method="isolated"), *args, tmp_path, device="cpu", progress=False, stop_after=6)
    with pytest.raises(DataError, match="different run config"):
        train.train(make_run(repo, method="isolated", lr=0.02), *args, tmp_path, device="cpu", progress=False)


def test_bad_run_settings_are_refused(repo, inputs, tmp_path):
    with pytest.raises(ConfigError, match="MHD needs at least one auxiliary head"):
        make_run(repo, method="mhd", heads=0)
    with pytest.raises(ConfigError, match="architectures lists 5 entries"):
        make_run(repo, architectures=["cnn"] * 5)
    from mhd.learning import methods
    assert methods.architectures(make_run(repo, architectures=["cnn_small", "cnn"])) == ["cnn_small", "cnn"] * 2
    with pytest.raises(ConfigError, match="same architecture"):
        make_run(repo, method="fedavg", architectures=["cnn", "resnet8", "cnn", "cnn"])
    with pytest.raises(ConfigError, match="unknown key 'lr_max'"):
        mconfig.validate_run({**make_run(repo), "lr_max": 1}, "x.yaml")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot be written"):
        train.train(make_run(repo), inputs["prepared"], inputs["split_dir"], inputs["graph_dir"], blocker / "out",
                    device="cpu", progress=False)


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(repo, inputs, tmp_path, monkeypatch):
    import errno

    import mhd.data.files
    from mhd.errors import MHDError

    run = make_run(repo, method="isolated")
    args = (inputs["prepared"], inputs["split_dir"], inputs["graph_dir"], tmp_path)
    train.train(run, *args, device="cpu", progress=False, stop_after=7)
    before = (tmp_path / "checkpoint.pt").read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mhd.data.files.os, "fsync", no_space)
    with pytest.raises(MHDError, match="No space left on device; the previous version"):
        train.train(run, *args, device="cpu", progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.undo()
    rec = train.train(run, *args, device="cpu", progress=False)
    assert rec["resumed_from_step"] == 6


def test_clients_of_unequal_sizes_draw_only_their_own_samples(repo, inputs, tmp_path):
    """NIID-Bench's dirichlet gives clients private sets of different sizes: each client's batches come
    from its own set only, uniformly, and every method trains on such a split."""
    import numpy as np

    from mhd.data import datasets, splits

    tensors, _ = datasets.load(inputs["prepared"])
    labels = tensors["train_y"].numpy()
    s = splits.make(labels, 10, clients=4, scheme="dirichlet", alpha=0.5, public_fraction=0.1, samples_per_client=120,
                    validation_per_class=10)
    sizes = [len(p) for p in s.private]
    assert len(set(sizes)) > 1
    splits.write(tmp_path / "split", s, labels, 10, {"clients": 4})
    unequal = {**inputs, "split_dir": tmp_path / "split"}
    t = make_trainer(make_run(repo, method="mhd", heads=2), unequal)
    data, seen = t.fed.data, [set() for _ in sizes]
    for step in range(40):
        gen = data.generator(0, step)
        rows = data.private_NxM.gather(1, (torch.rand(4, 16, generator=gen) * data.sizes_N[:, None]).long())
        for i in range(4):
            seen[i] |= set(rows[i].tolist())
    for i, p in enumerate(s.private):
        assert seen[i] <= set(p.tolist()) and len(seen[i]) > 0.8 * len(p), f"client {i} draws outside its set"
    x, y = data.private_batch(data.generator(0, 0), 16)
    assert x.shape[:2] == (4, 16) and all(np.isin(y[i].numpy(), labels[s.private[i]]).all() for i in range(4))
    m = fit(repo, unequal, tmp_path / "run", method="mhd", heads=2)
    assert m[m.metric == "private_acc"].value.between(0, 1).all()
    pooled = make_trainer(make_run(repo, method="centralized"), unequal).fed.data
    assert sorted(pooled.pooled_1xP[0].tolist()) == sorted(np.concatenate(s.private).tolist())
