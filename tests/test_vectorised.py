"""The vectorised engine equals the per-client loop: layer by layer for every backbone, and over
whole training runs (metrics, weights, BatchNorm statistics, optimiser state, checkpoints)."""

import copy

import pandas as pd
import pytest
import torch
from test_train import make_run
from torch import nn

from conftest import make_trainer

from mhd.learning import checkpoint, models
from mhd.learning import run as train
from mhd.learning.evaluation import evaluate
from mhd.errors import ConfigError
from mhd.learning.vectorised import WideClients, unsupported_layers

# float32 training: rounding differs from step 1 and grows; after 8 steps weights agree to ~1e-4
TOL_TRAIN = {"rtol": 1e-3, "atol": 5e-4}
# layer by layer in float64: deep nets at batch 4 (BatchNorm over 4 values at 1 x 1 resolution)
# amplify float32 rounding to 1 %, which would hide a real mismatch
TOL_LAYERS = {"rtol": 1e-7, "atol": 1e-10}


def _clients(arch, n, channels_last):
    ch, size = (1, 28) if arch.startswith("cnn") else (3, 32)
    torch.manual_seed(0)
    clients = [models.MultiHead(arch, ch, 10, 2, size).double() for _ in range(n)]
    if channels_last:
        for m in clients:
            m.to(memory_format=torch.channels_last)
    return clients, torch.randn(n, 4, ch, size, size, dtype=torch.float64)


@pytest.mark.parametrize("arch,channels_last", [(a, False) for a in models.BACKBONES] + [("cnn", True), ("resnet8", True)])
def test_wide_model_equals_each_client(arch, channels_last):
    clients, x = _clients(arch, 2, channels_last)
    reference = copy.deepcopy(clients)
    wide = WideClients(clients, channels_last)
    emb, logits = wide(x)
    logits.square().mean().backward()
    for i, ref in enumerate(reference):
        e, lg = ref(x[i])
        lg.square().mean().backward()
        torch.testing.assert_close(emb[i], e, **TOL_LAYERS)
        torch.testing.assert_close(logits[i], lg, **TOL_LAYERS)
        # BatchNorm running statistics were updated per client, through the shared views
        for (name, a), b in zip(ref.state_dict().items(), clients[i].state_dict().values()):
            torch.testing.assert_close(b, a, **TOL_LAYERS, msg=name)
    # each wide gradient is the clients' gradients side by side (2 clients: / 2 from the mean)
    for p, how, parts in wide.pieces:
        index = [next(j for j, q in enumerate(clients[k].parameters()) if q is part) for k, part in enumerate(parts)]
        grads = [list(ref.parameters())[j].grad for ref, j in zip(reference, index)]
        torch.testing.assert_close(p.grad, (torch.stack if how == "stack" else torch.cat)(grads) / 2, **TOL_LAYERS)
    wide.eval()
    for i, ref in enumerate(reference):
        ref.eval()
        torch.testing.assert_close(wide(x)[1][i], ref(x[i])[1], **TOL_LAYERS)


def test_unsupported_layers_are_named_and_refused():
    class Odd(nn.Module):
        def forward(self, x):
            return x

    model = models.MultiHead("cnn", 1, 10, 1)
    assert unsupported_layers(model) == []
    model.backbone.features.insert(0, Odd())
    assert unsupported_layers(model) == ["backbone.features.0 (Odd)"]
    with pytest.raises(ConfigError, match="Odd.*engine: loop"):
        WideClients([model, copy.deepcopy(model)])


def _trainer(repo, inputs, engine, **over):
    run = make_run(repo, engine=engine, **over)
    return make_trainer(run, inputs)


CASES = {
    "mhd": {"method": "mhd", "heads": 2},
    "embeddings, two architectures": {"method": "mhd", "heads": 1, "nu_emb": 1.0, "architectures": ["cnn_small", "cnn"]},
    "fedavg, adamw": {"method": "fedavg", "fedavg_every": 3, "optimizer": "adamw", "lr": 0.001},
    "energy teacher": {"method": "mhd", "heads": 2, "teacher": "energy"},
    "density teacher, refit every 3 steps": {"method": "mhd", "heads": 2, "teacher": "density", "density_refit_every": 3,
                                             "teacher_threshold": 0.2},
}


@pytest.mark.parametrize("case", CASES)
def test_training_equals_the_loop(repo, inputs, case):
    runs = {e: _trainer(repo, inputs, e, **CASES[case]) for e in ("loop", "vectorised")}
    assert {e: t.engine.name for e, t in runs.items()} == {"loop": "loop", "vectorised": "vectorised"}
    for t in runs.values():
        for _ in range(8):
            t.train_step()
    loop, vec = runs["loop"], runs["vectorised"]
    torch.testing.assert_close(vec.loss_sum, loop.loss_sum, **TOL_TRAIN)
    for (name, a), b in zip(loop.models.state_dict().items(), vec.models.state_dict().values()):
        torch.testing.assert_close(b, a, **TOL_TRAIN, msg=name)
    metrics = [pd.DataFrame(evaluate(t), columns=["step", "client", "head", "metric", "value"]) for t in (loop, vec)]
    torch.testing.assert_close(torch.tensor(metrics[1].value.values), torch.tensor(metrics[0].value.values),
                               rtol=0, atol=0.02)


def test_checkpoints_resume_under_either_engine(repo, inputs, tmp_path):
    over = {"method": "mhd", "heads": 2, "nu_emb": 1.0}
    straight = _trainer(repo, inputs, "vectorised", **over)
    for _ in range(6):
        straight.train_step()
    first = _trainer(repo, inputs, "vectorised", **over)
    for _ in range(3):
        first.train_step()
    checkpoint.save(first, tmp_path / "a.pt")
    # through the loop engine and back: the optimiser state survives both layout changes
    middle = _trainer(repo, inputs, "loop", **over)
    checkpoint.load(middle, tmp_path / "a.pt")
    assert middle.opt.state_dict()["state"][0]["momentum_buffer"].shape == middle.models[0].backbone.features[0].weight.shape
    checkpoint.save(middle, tmp_path / "b.pt")
    resumed = _trainer(repo, inputs, "vectorised", **over)
    checkpoint.load(resumed, tmp_path / "b.pt")
    for _ in range(3):
        resumed.train_step()
    for a, b in zip(straight.models.state_dict().values(), resumed.models.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.opt.state_dict()["state"].values(), resumed.opt.state_dict()["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    # and the loop engine continues from the vectorised checkpoint like the vectorised run
    middle_steps = _trainer(repo, inputs, "loop", **over)
    checkpoint.load(middle_steps, tmp_path / "a.pt")
    for _ in range(3):
        middle_steps.train_step()
    for a, b in zip(straight.models.state_dict().values(), middle_steps.models.state_dict().values()):
        torch.testing.assert_close(b, a, **TOL_TRAIN)


def test_auto_is_the_loop_on_the_cpu_and_engine_is_recorded(repo, inputs, tmp_path):
    assert _trainer(repo, inputs, "auto").engine.name == "loop"
    assert _trainer(repo, inputs, "vectorised", method="centralized").engine.name == "loop"
    record = train.train(make_run(repo, engine="vectorised", steps=2, eval_every=2), inputs["prepared"],
                         inputs["split_dir"], inputs["graph_dir"], tmp_path, device="cpu", progress=False)
    assert record["engine"] == "vectorised"


def test_compiled_forward_trains_like_the_eager_one(repo, inputs):
    runs = [_trainer(repo, inputs, "vectorised", method="mhd", heads=1, compile=c) for c in (False, True)]
    assert not hasattr(runs[0].engine.forward_fns[0], "_orig_mod") and hasattr(runs[1].engine.forward_fns[0], "_orig_mod")
    for t in runs:
        for _ in range(3):
            t.train_step()
    for a, b in zip(runs[0].models.state_dict().values(), runs[1].models.state_dict().values()):
        torch.testing.assert_close(b, a, **TOL_TRAIN)


def test_engines_agree_under_bf16_autocast(repo, inputs):
    """The bf16 precision (autocast), on the CPU: the engines agree to bf16 precision, and autocast
    really ran the layers in bf16."""
    runs = [_trainer(repo, inputs, e, method="mhd", heads=2, nu_emb=1.0, precision="bf16") for e in ("loop", "vectorised")]
    for t in runs:
        for _ in range(6):
            t.train_step()
    torch.testing.assert_close(runs[1].loss_sum, runs[0].loss_sum, rtol=2e-2, atol=2e-2)
    for (name, a), b in zip(runs[0].models.state_dict().items(), runs[1].models.state_dict().values()):
        assert a.dtype == b.dtype and torch.isfinite(b.float()).all(), name
        if a.is_floating_point():
            torch.testing.assert_close(b, a, rtol=5e-2, atol=5e-3, msg=name)
    for t in runs:  # last: this forward updates the BatchNorm statistics
        x_priv = t.fed.data.private_batch(t.fed.data.generator(0, 0), 4)[0]
        with t.autocast():
            assert t.engine.forward(x_priv, t.teachers.public_x)[1].dtype == torch.bfloat16
