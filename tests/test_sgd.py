"""sgd.SGD is torch.optim.SGD's update to the bit on the CPU, with its state-dict layout (checkpoints
load either way), and a CPU run no longer imports torch._dynamo."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from mhd.learning.sgd import SGD

SRC = Path(__file__).resolve().parents[1] / "src"


def _model(seed=0):
    torch.manual_seed(seed)
    # the last layer (a second head) gets a gradient on odd steps only: parameters without one are skipped
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3),
                         nn.Linear(3, 2))


def _steps(model, opt, n, start=0, set_lr=True):
    for t in range(start, start + n):
        gen = torch.Generator().manual_seed(t)
        x, y = torch.randn(5, 1, 8, 8, generator=gen), torch.randint(0, 2, (5,), generator=gen)
        if set_lr:
            opt.param_groups[0]["lr"] = 0.05 * (1 + t) / 12  # the trainer sets lr every step
        opt.zero_grad()
        logits = model[:-1](x)
        loss = nn.functional.cross_entropy(model[-1](logits) if t % 2 else logits, y)
        loss.backward()
        opt.step()


@pytest.mark.parametrize("momentum,decay,nesterov", [(0.9, 5e-4, True), (0.9, 0.0, False), (0.0, 5e-4, False)])
def test_the_update_equals_torch_sgd_to_the_bit(momentum, decay, nesterov):
    ours, theirs = _model(), _model()
    opt_ours = SGD(ours.parameters(), lr=0.05, momentum=momentum, weight_decay=decay, nesterov=nesterov)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=momentum, weight_decay=decay,
                                 nesterov=nesterov)
    _steps(ours, opt_ours, 12)
    _steps(theirs, opt_theirs, 12)
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)
    mine, torchs = opt_ours.state_dict(), opt_theirs.state_dict()
    assert [list(g.items()) for g in mine["param_groups"]] == [list(g.items()) for g in torchs["param_groups"]]
    assert list(mine["state"]) == list(torchs["state"])  # the same parameters, in the order their state began
    for i in torchs["state"]:
        assert mine["state"][i].keys() == torchs["state"][i].keys()
        assert all(torch.equal(mine["state"][i][k], torchs["state"][i][k]) for k in torchs["state"][i])


@pytest.mark.parametrize("direction", ["torch -> ours", "ours -> torch"])
def test_a_state_dict_resumes_in_the_other_optimiser(direction):
    straight = _model()
    opt = torch.optim.SGD(straight.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    _steps(straight, opt, 10)
    first = _model()
    first_cls, then_cls = (torch.optim.SGD, SGD) if direction == "torch -> ours" else (SGD, torch.optim.SGD)
    opt_first = first_cls(first.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    _steps(first, opt_first, 4)
    saved_model, saved_opt = first.state_dict(), opt_first.state_dict()
    resumed = _model(seed=1)
    resumed.load_state_dict(saved_model)
    opt_then = then_cls(resumed.parameters(), lr=0.9, momentum=0.5, weight_decay=0.0, nesterov=False)
    opt_then.load_state_dict(saved_opt)  # the saved hyperparameters replace these
    assert {k: opt_then.param_groups[0][k] for k in ("lr", "momentum", "weight_decay", "nesterov")} == {
        "lr": opt_first.param_groups[0]["lr"], "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}
    _steps(resumed, opt_then, 6, start=4)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_a_loaded_maximize_is_followed_like_torch():
    ours, theirs = _model(), _model()
    opt_ours, opt_theirs = (cls(m.parameters(), lr=0.05, momentum=0.9) for cls, m in ((SGD, ours), (torch.optim.SGD, theirs)))
    saved = opt_theirs.state_dict()
    saved["param_groups"][0]["maximize"] = True
    opt_ours.load_state_dict(saved)
    opt_theirs.load_state_dict(saved)
    _steps(ours, opt_ours, 3, set_lr=False)
    _steps(theirs, opt_theirs, 3, set_lr=False)
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)


def test_what_it_cannot_follow_is_refused():
    opt = SGD(_model().parameters(), lr=0.1, momentum=0.9)
    other = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="parameters per group"):
        opt.load_state_dict(other.state_dict())
    fused = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9).state_dict()
    fused["param_groups"][0]["foreach"] = True
    with pytest.raises(ValueError, match="foreach"):
        opt.load_state_dict(fused)
    shared = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="more than once"):
        SGD([shared.weight, shared.bias, shared.weight], lr=0.1)


def test_a_cpu_run_does_not_import_torch_dynamo(repo, inputs, tmp_path):
    """The import this optimiser exists to avoid: a whole CPU run (steps, evaluation, checkpoint) without it."""
    paths = {k: str(v) for k, v in inputs.items()}
    code = f"""
import sys
sys.path[:0] = [{str(SRC)!r}, {str(Path(__file__).parent)!r}]
from test_train import make_run
from mhd.learning import run as train
run = make_run(__import__("pathlib").Path({str(repo)!r}), method="mhd", heads=2, steps=4, eval_every=2)
p = {paths!r}
train.train(run, p["prepared"], p["split_dir"], p["graph_dir"], {str(tmp_path)!r}, device="cpu", progress=False)
print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "run.json").exists()
