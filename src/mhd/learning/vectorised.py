"""Vectorised clients: N clients of one architecture trained as one wide model.

The wide model is the client architecture with every layer N times wider: client n owns channels
[n C, (n+1) C) of every activation. Convolutions become grouped convolutions (groups x N),
BatchNorm runs over the N C channels (so its batch statistics and running statistics stay per
client), Linear layers become one batched matrix product over the clients, and parameter-free
layers (ReLU, pooling, flatten) act on each channel alone and need no change. This is exact: each
client's outputs are computed from its own weights and batch only, as in the per-client loop.

The clients' own modules stay: their parameters and buffers become views into the wide model's
tensors, so the per-client state dicts (checkpoints, evaluation, FedAvg) read and write the
same numbers the wide model trains. An optimiser over the wide parameters is N per-client
optimisers: SGD and AdamW are elementwise.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import ConfigError

# layers that act on every channel alone (no parameters): unchanged in the wide model
_CHANNELWISE = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.Identity, nn.MaxPool2d, nn.AvgPool2d,
                nn.AdaptiveAvgPool2d, nn.Flatten, nn.Sequential, nn.ModuleList)


def _trusted_containers() -> tuple[type, ...]:
    """Module classes whose forward only composes their children channel by channel (sums of
    branches, ReLU, flatten): checked by reading them, and by the equality test for every backbone."""
    from . import models
    from ..vision import import_torchvision

    tv = import_torchvision().models
    return (models.MultiHead, models.SmallCNN, models.CifarResNet, models._BasicBlock, models._Torchvision,
            tv.ResNet, tv.resnet.BasicBlock, tv.resnet.Bottleneck, tv.MobileNetV2, tv.mobilenetv2.InvertedResidual)


def unsupported_layers(model: nn.Module) -> list[str]:
    """Names of the submodules the wide model cannot run side by side; empty: vectorisable."""
    trusted = _trusted_containers()
    bad = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                bad.append(f"{name} ({type(m).__name__}, padding_mode={m.padding_mode})")
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                bad.append(f"{name} (Flatten over dims {m.start_dim}..{m.end_dim})")
        elif not isinstance(m, (nn.BatchNorm2d, nn.Linear, *_CHANNELWISE, *trusted)):
            bad.append(f"{name or '(model)'} ({type(m).__name__})")
    return bad


class GroupedLinear(nn.Module):
    """N Linear(in, out) layers on B x (N in) input -> B x (N out); weight N x out x in."""

    def __init__(self, layers: list[nn.Linear]):
        super().__init__()
        self.n, self.in_features, self.out_features = len(layers), layers[0].in_features, layers[0].out_features
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers])) if layers[0].bias is not None else None

    def forward_NxB(self, x_NxBxI: torch.Tensor) -> torch.Tensor:
        """N x B x in -> N x B x out."""
        if self.bias is None:
            return torch.bmm(x_NxBxI, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias[:, None], x_NxBxI, self.weight.transpose(1, 2))

    def forward(self, x_BxNI: torch.Tensor) -> torch.Tensor:
        b = x_BxNI.shape[0]
        out_NxBxO = self.forward_NxB(x_BxNI.view(b, self.n, self.in_features).transpose(0, 1))
        return out_NxBxO.transpose(0, 1).reshape(b, self.n * self.out_features)


def _wide_layer(layers: list[nn.Module]) -> nn.Module | None:
    """The wide replacement of one leaf layer taken from N clients, or None if it needs none."""
    first, n = layers[0], len(layers)
    if isinstance(first, nn.Conv2d):
        wide = nn.utils.skip_init(nn.Conv2d, n * first.in_channels, n * first.out_channels, first.kernel_size, first.stride,
                                  first.padding, first.dilation, n * first.groups, first.bias is not None,
                                  device=first.weight.device, dtype=first.weight.dtype)  # no draw from the RNG
        with torch.no_grad():
            wide.weight.copy_(torch.cat([m.weight for m in layers]))
            if first.bias is not None:
                wide.bias.copy_(torch.cat([m.bias for m in layers]))
        return wide
    if isinstance(first, nn.BatchNorm2d):
        ref = next(first.buffers())
        wide = nn.BatchNorm2d(n * first.num_features, first.eps, first.momentum, first.affine,
                              first.track_running_stats, device=ref.device,
                              dtype=first.weight.dtype if first.affine else ref.dtype)
        with torch.no_grad():
            for key, _ in list(wide.named_parameters()) + list(wide.named_buffers()):
                if key == "num_batches_tracked":
                    wide.num_batches_tracked.copy_(first.num_batches_tracked)
                else:
                    getattr(wide, key).copy_(torch.cat([getattr(m, key) for m in layers]))
        return wide
    if isinstance(first, nn.Linear):
        return GroupedLinear(layers)
    return None


def _share(wide: nn.Module, layers: list[nn.Module]) -> list[tuple[nn.Parameter, str, list[nn.Parameter]]]:
    """Point every client layer's parameters and buffers at its slice of the wide layer's; return,
    per wide parameter, how it is split ("stack": along a new first dim, "cat": along dim 0) and
    the clients' parameters."""
    n = len(layers)
    pieces = []
    for key, value in list(wide.named_parameters(recurse=False)) + list(wide.named_buffers(recurse=False)):
        for i, m in enumerate(layers):
            if key == "num_batches_tracked":
                part = value  # one counter for all: the clients step together
            elif isinstance(wide, GroupedLinear):
                part = value[i]
            else:
                size = value.shape[0] // n
                part = value[i * size:(i + 1) * size]
            if key in m._parameters:
                m._parameters[key] = nn.Parameter(part.detach(), requires_grad=False)
            else:
                m._buffers[key] = part.detach()
        if key in wide._parameters:
            pieces.append((value, "stack" if isinstance(wide, GroupedLinear) else "cat",
                           [m._parameters[key] for m in layers]))
    return pieces


class WideClients(nn.Module):
    """N same-architecture MultiHead clients as one model. forward: N x B x C x H x W ->
    (embeddings N x B x D, logits N x B x K x C), the same as each client's forward on its slice."""

    def __init__(self, clients: list[nn.Module], channels_last: bool = False):
        super().__init__()
        bad = unsupported_layers(clients[0])
        if bad:
            raise ConfigError(f"architecture of {type(clients[0]).__name__} cannot be vectorised: "
                              f"{', '.join(bad[:5])}; use engine: loop")
        self.n, self.channels_last = len(clients), channels_last
        self.num_heads, self.classes = clients[0].num_heads, clients[0].classes
        self.backbone = copy.deepcopy(clients[0].backbone)
        pairs = []
        for name, _ in list(self.backbone.named_modules()):
            if not name:
                continue
            parent_name, _, leaf = name.rpartition(".")
            layers = [c.backbone.get_submodule(name) for c in clients]
            wide = _wide_layer(layers)
            if wide is not None:
                self.backbone.get_submodule(parent_name).register_module(leaf, wide)
                pairs.append((wide, layers))
        self.heads = GroupedLinear([c.heads for c in clients])
        pairs.append((self.heads, [c.heads for c in clients]))
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        # per wide parameter: (parameter, "cat" | "stack", the clients' views), for checkpoints
        self.pieces = [piece for wide, layers in pairs for piece in _share(wide, layers)]
        assert [id(p) for p in self.parameters()] == [id(p) for p, _, _ in self.pieces]

    def forward(self, x_NxBxCxHxW: torch.Tensor):
        n, b = x_NxBxCxHxW.shape[:2]
        rest = x_NxBxCxHxW.shape[2:]
        if self.channels_last:  # B x H x W x (N C) in memory: one copy of the input
            x = x_NxBxCxHxW.permute(1, 3, 4, 0, 2).reshape(b, *rest[1:], n * rest[0]).permute(0, 3, 1, 2)
        else:
            x = x_NxBxCxHxW.transpose(0, 1).reshape(b, n * rest[0], *rest[1:])
        emb_BxND = self.backbone(x)
        emb_NxBxD = emb_BxND.view(b, n, -1).transpose(0, 1)
        logits = self.heads.forward_NxB(emb_NxBxD)
        return emb_NxBxD, logits.view(n, b, self.num_heads, self.classes)


# ---------------------------------------------------------------- optimiser state in client layout
# A checkpoint holds the optimiser state as the per-client loop would (one entry per client
# parameter), so a run saved by one engine resumes under the other. `layout` lists, for each
# parameter of the optimiser in order, how it splits and the client-layout indices of its pieces:
# ("cat" | "stack", [i_0, ..., i_n-1]) for a wide parameter, ("same", [i]) for any other.

def _piece(value, how: str, k: int, n: int):
    if not torch.is_tensor(value) or value.dim() == 0 or how == "same":
        return value.clone() if torch.is_tensor(value) else value
    return (value[k] if how == "stack" else value.chunk(n)[k]).clone()


def to_client_layout(state: dict, layout: list[tuple[str, list[int]]]) -> dict:
    out: dict[int, dict] = {}
    for w, (how, idx) in enumerate(layout):
        if w in state["state"]:
            for k, i in enumerate(idx):
                out[i] = {key: _piece(v, how, k, len(idx)) for key, v in state["state"][w].items()}
    (group,) = state["param_groups"]
    total = sum(len(idx) for _, idx in layout)
    return {"state": out, "param_groups": [{**group, "params": list(range(total))}]}


def from_client_layout(state: dict, layout: list[tuple[str, list[int]]]) -> dict:
    out: dict[int, dict] = {}
    for w, (how, idx) in enumerate(layout):
        parts = [state["state"].get(i) for i in idx]
        if any(p is None for p in parts):
            continue  # no step taken yet
        out[w] = {}
        for key, v in parts[0].items():
            if how == "same" or not torch.is_tensor(v) or v.dim() == 0:
                out[w][key] = v
            else:
                out[w][key] = (torch.stack if how == "stack" else torch.cat)([p[key] for p in parts])
    (group,) = state["param_groups"]
    return {"state": out, "param_groups": [{**group, "params": list(range(len(layout)))}]}
