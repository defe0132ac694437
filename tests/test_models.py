"""The client models: SmallCNN pools before its ReLU, which must compute exactly what the textbook
order (ReLU, then max-pool) computes, in both precisions."""

import copy

import pytest
import torch

from mhd.learning.models import SmallCNN, relu_before_pool


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("width", [16, 8])
def test_pooling_before_relu_equals_relu_before_pooling_bit_for_bit(precision, width):
    torch.manual_seed(0)
    model = SmallCNN(1, 28, width).to(memory_format=torch.channels_last)
    textbook = relu_before_pool(copy.deepcopy(model))
    assert [type(m) for m in model.features] != [type(m) for m in textbook.features]
    # BatchNorm's outputs are about standard normal: some 2x2 windows hold only values below zero, where
    # ReLU alone decides the gradient
    x = torch.randn(32, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    outputs, grads = [], []
    for m in (model, textbook):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = m(x)
        outputs.append(out)
        grads.append(torch.autograd.grad(out.float().square().sum(), list(m.parameters())))
    assert torch.equal(outputs[0], outputs[1])
    assert all(torch.equal(a, b) for a, b in zip(*grads))
    for a, b in zip(model.state_dict().values(), textbook.state_dict().values()):
        assert torch.equal(a, b)  # BatchNorm's running statistics too
    assert list(model.state_dict()) == list(textbook.state_dict())  # checkpoints load either way
