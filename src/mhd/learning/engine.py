"""How the clients' forward passes run: one client after another (the loop), or the clients of one
architecture side by side as one wide model (vectorised.py). Both give the same numbers; the
engine is how a run executes, not what it computes."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .vectorised import WideClients, unsupported_layers


def resolve_engine(run: dict, device: torch.device, models: nn.ModuleList, archs: list[str]) -> str:
    """`engine` of the run -> "loop" or "vectorised". auto: vectorised on CUDA, the loop on the CPU,
    where the loop measured faster (docs/performance.md). One model (centralized): the loop."""
    if run["engine"] == "loop" or len(models) == 1 or (run["engine"] == "auto" and device.type != "cuda"):
        return "loop"
    one_each = {arch: m for arch, m in zip(archs, models)}  # one model per architecture
    bad = sorted({f"{arch}: {b}" for arch, m in one_each.items() for b in unsupported_layers(m)})
    if run["engine"] == "vectorised":
        if bad:
            raise ConfigError(f"engine = 'vectorised', but these layers cannot run side by side: {'; '.join(bad[:5])}; "
                              f"allowed: engine auto or loop")
        return "vectorised"
    return "loop" if bad else "vectorised"


class Engine:
    """The callables one step runs (compiled when `compile` is on): every client's model (loop) or
    one wide model per architecture, clients in order (vectorised)."""

    def __init__(self, run: dict, device: torch.device, models: nn.ModuleList, archs: list[str]):
        self.name = resolve_engine(run, device, models, archs)
        self.models = models
        self.groups: list[tuple[list[int], WideClients]] = []
        if self.name == "vectorised":
            for arch in dict.fromkeys(archs):
                idx = [i for i, a in enumerate(archs) if a == arch]
                self.groups.append((idx, WideClients([models[i] for i in idx], run["channels_last"])))
        # each group's clients as an index tensor on the device (a list index would be copied every step)
        self.group_index = [torch.tensor(idx, device=device) for idx, _ in self.groups]
        modules = [wide for _, wide in self.groups] if self.groups else list(models)
        self.forward_fns = [torch.compile(m) if run["compile"] else m for m in modules]

    def parameters(self) -> list[nn.Parameter]:
        """What the optimiser steps: the clients' parameters, or the wide models' (which they view)."""
        if self.name == "loop":
            return list(self.models.parameters())
        return [p for _, wide in self.groups for p in wide.parameters()]

    def optimizer_layout(self, projections: nn.Module) -> list[tuple[str, list[int]]]:
        """How each optimiser parameter maps to the per-client parameters (see vectorised.py), so a
        checkpoint stores the optimiser state per client and resumes under either engine."""
        index = {id(p): i for i, p in enumerate(self.models.parameters())}
        layout = [(how, [index[id(c)] for c in clients]) for _, wide in self.groups
                  for _, how, clients in wide.pieces]
        if not layout:
            layout = [("same", [i]) for i in range(len(index))]
        return layout + [("same", [len(index) + k]) for k, _ in enumerate(projections.parameters())]

    def forward(self, x_priv_NxB: torch.Tensor, public_x: torch.Tensor | None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every client's embeddings (a list: widths may differ) and logits (N x B x K x C, stacked:
        the losses of all clients are computed at once) on [its private batch; the public batch]."""
        pub = public_x
        if self.name == "loop":
            outs = [fn(torch.cat([x_priv_NxB[i], pub]) if pub is not None else x_priv_NxB[i])
                    for i, fn in enumerate(self.forward_fns)]
            return [e for e, _ in outs], torch.stack([lg for _, lg in outs])
        embs, logits = [None] * len(self.models), [None] * len(self.models)
        for (idx, _), idx_t, fn in zip(self.groups, self.group_index, self.forward_fns):
            x = x_priv_NxB[idx_t] if len(idx) < len(x_priv_NxB) else x_priv_NxB
            if pub is not None:
                x = torch.cat([x, pub.expand(len(idx), *pub.shape)], dim=1)
            emb_NxBxD, logits_NxBxKxC = fn(x)
            if len(self.groups) == 1:  # one architecture: already stacked in client order
                return list(emb_NxBxD), logits_NxBxKxC
            for k, i in enumerate(idx):
                embs[i], logits[i] = emb_NxBxD[k], logits_NxBxKxC[k]
        return embs, torch.stack(logits)
