"""Client models: backbone -> embedding e (dim d) -> heads h_0..h_H, each Linear(d, C).

h_0 is the main head (private labels); h_1..h_H are the auxiliary heads of chained distillation.
All heads are one Linear(d, (H+1) C) so the H+1 heads cost one matrix product.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


class SmallCNN(nn.Module):
    """Three conv blocks (width w, 2w, 4w), then a linear layer to the 8w-dim embedding. w = 16: ~97k
    parameters and ~2M multiply-adds per 28x28 image: small enough that the default workflow trains
    on a laptop CPU (a 32-64-128 stack costs about 4x the multiply-adds)."""

    def __init__(self, in_channels: int = 1, size: int = 28, width: int = 16):
        super().__init__()

        def block(cin, cout):
            # conv -> BN -> ReLU -> max-pool, computed with the pooling first: ReLU is monotone, so
            # relu(max(window)) = max(relu(window)), and both orders route the gradient to the same
            # element (or to none, where the window's maximum is <= 0). The values and gradients are
            # equal (tests/test_models.py); ReLU then acts on 4x fewer values, which measured the
            # step about 1.05x to 1.08x faster (docs/performance.md).
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.MaxPool2d(2),
                    nn.ReLU(inplace=True)]

        w = width
        self.dim = 8 * w
        self.features = nn.Sequential(*block(in_channels, w), *block(w, 2 * w), *block(2 * w, 4 * w), nn.Flatten(),
                                      nn.Linear(4 * w * (size // 8) ** 2, self.dim), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.features(x)


def relu_before_pool(model: SmallCNN) -> SmallCNN:
    """`model` (itself, changed) with each block in the textbook order, ReLU then max-pool: the same
    computation as SmallCNN's own order, kept for the test of that and benchmarks/pool_order.py."""
    layers = list(model.features)
    pairs = [i for i in range(len(layers) - 1)
             if isinstance(layers[i], nn.MaxPool2d) and isinstance(layers[i + 1], nn.ReLU)]
    if not pairs:
        raise ValueError(f"{type(model).__name__} has no max-pool followed by a ReLU to reorder")
    for i in pairs:
        layers[i], layers[i + 1] = layers[i + 1], layers[i]
    model.features = nn.Sequential(*layers)
    return model


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet (depth 6n+2; 16/32/64 channels); embedding dim 64."""

    def __init__(self, depth: int, in_channels: int = 3):
        super().__init__()
        n = (depth - 2) // 6
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)]
        cin = 16
        for stage, cout in enumerate((16, 32, 64)):
            for b in range(n):
                layers.append(_BasicBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dim = 64

    def forward(self, x):
        return self.features(x)


class _Torchvision(nn.Module):
    """A torchvision ImageNet model with its classifier removed."""

    def __init__(self, name: str, in_channels: int = 3):
        super().__init__()
        from ..vision import import_torchvision

        models = import_torchvision().models
        net = getattr(models, name)(weights=None)
        if name.startswith("resnet"):
            self.dim = net.fc.in_features
            net.fc = nn.Identity()
            if in_channels != 3:
                net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        else:
            self.dim = net.classifier[-1].in_features
            net.classifier = nn.Identity()
            if in_channels != 3:
                old = net.features[0][0]
                net.features[0][0] = nn.Conv2d(in_channels, old.out_channels, 3, 2, 1, bias=False)
        self.net = net

    def forward(self, x):
        return self.net(x)


BACKBONES = {
    "cnn": lambda in_channels, size: SmallCNN(in_channels, size),
    # half the width: ~25k parameters, ~4x fewer multiply-adds; the small model of mixed ensembles
    "cnn_small": lambda in_channels, size: SmallCNN(in_channels, size, width=8),
    **{f"resnet{d}": (lambda d: lambda in_channels, size: CifarResNet(d, in_channels))(d) for d in (8, 14, 20, 32)},
    **{name: (lambda n: lambda in_channels, size: _Torchvision(n, in_channels))(name)
       for name in ("resnet18", "resnet34", "mobilenet_v2")},
}


def backbone(name: str, in_channels: int, size: int) -> nn.Module:
    if name not in BACKBONES:
        raise ConfigError(f"unknown architecture {name!r}; allowed: {', '.join(BACKBONES)}")
    return BACKBONES[name](in_channels, size)


class MultiHead(nn.Module):
    def __init__(self, arch: str, in_channels: int, classes: int, heads: int, size: int = 28):
        super().__init__()
        self.backbone = backbone(arch, in_channels, size)
        self.dim, self.classes, self.num_heads = self.backbone.dim, classes, heads + 1
        self.heads = nn.Linear(self.dim, self.num_heads * classes)

    def forward(self, x):
        """x: B x C_in x H x W -> (embedding B x d, logits B x (H+1) x C)."""
        emb_BxD = self.backbone(x)
        logits_BxHxC = self.heads(emb_BxD).view(len(x), self.num_heads, self.classes)
        return emb_BxD, logits_BxHxC
