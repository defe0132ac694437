"""The CUDA path, where a GPU is present (skipped elsewhere, CI included): no host
synchronisation inside a training step, and the two engines agree under bf16 autocast."""

import pytest
import torch
from conftest import make_trainer
from test_train import make_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _trainer(repo, inputs, engine, **over):
    run = make_run(repo, engine=engine, device="cuda", **over)
    return make_trainer(run, inputs, "cuda")


@pytest.mark.parametrize("engine", ["loop", "vectorised"])
@pytest.mark.parametrize("over", [{"method": "mhd", "heads": 2, "nu_emb": 1.0},
                                  {"method": "mhd", "heads": 1, "architectures": ["cnn_small", "cnn"]}])
def test_a_step_never_waits_for_the_gpu(repo, inputs, engine, over):
    t = _trainer(repo, inputs, engine, **over)
    t.train_step()  # first step: allocations, cuDNN autotuning
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        for _ in range(3):
            t.train_step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    assert t.step == 4


def test_engines_agree_on_cuda(repo, inputs):
    runs = [_trainer(repo, inputs, e, method="mhd", heads=2, precision="bf16") for e in ("loop", "vectorised")]
    for t in runs:
        for _ in range(6):
            t.train_step()
    # bf16 autocast: agreement to bf16 precision, not float32's
    torch.testing.assert_close(runs[1].loss_sum, runs[0].loss_sum, rtol=2e-2, atol=2e-2)
    for a, b in zip(runs[0].models.state_dict().values(), runs[1].models.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(b, a, rtol=5e-2, atol=5e-3)
