"""Teachers: what the senders sent on the current public batch, and the rules that turn it into each
receiver's target (which sender's prediction a receiver distils from, per public sample and head).

Shapes: N receiving clients, J sending clients, B public samples, K heads, C classes, D embedding dims.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

TEACHER_RULES = ("max_confidence", "mean", "confidence_weighted")


def teacher_weights(probs_JxBxKxC: torch.Tensor, senders_NxJ: torch.Tensor, rule: str) -> torch.Tensor:
    """Weight of sender j in receiver n's target, per sample and head: N x J x B x K, rows sum to 1
    where n has a sender, 0 where it has none.

    max_confidence: one-hot on j* = argmax_j max_c p_j(c|u) (ties: the lowest j) [paper];
    mean: uniform over senders; confidence_weighted: proportional to max_c p_j(c|u)."""
    conf_JxBxK = probs_JxBxKxC.amax(dim=-1)
    mask_NxJx1x1 = senders_NxJ[:, :, None, None]
    if rule == "max_confidence":  # no host round trip: a scalar fill and a comparison, not one_hot
        scores = torch.where(mask_NxJx1x1, conf_JxBxK[None], -1.0)
        chosen_Nx1xBxK = scores.argmax(dim=1, keepdim=True)
        senders_1xJx1x1 = torch.arange(senders_NxJ.shape[1], device=conf_JxBxK.device)[None, :, None, None]
        weights = (chosen_Nx1xBxK == senders_1xJx1x1).to(probs_JxBxKxC.dtype)
        return weights * senders_NxJ.any(dim=1)[:, None, None, None]
    if rule == "mean":
        weights = mask_NxJx1x1.to(probs_JxBxKxC.dtype).expand(-1, -1, *conf_JxBxK.shape[1:])
    elif rule == "confidence_weighted":
        weights = mask_NxJx1x1 * conf_JxBxK[None]
    else:
        raise ValueError(f"unknown teacher rule {rule!r}; allowed: {', '.join(TEACHER_RULES)}")
    return weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)


def teacher_targets(probs_JxBxKxC: torch.Tensor, weights_NxJxBxK: torch.Tensor) -> torch.Tensor:
    """N x B x K x C: each receiver's target distribution per public sample and head."""
    return torch.einsum("njbk,jbkc->nbkc", weights_NxJxBxK, probs_JxBxKxC)


@dataclass
class Teachers:
    """The clients' detached outputs on one public batch: their neighbours' teachers until the next
    refresh (every `refresh_every` steps the public batch is redrawn and the outputs recomputed)."""
    public_x: torch.Tensor | None = None           # B x C x H x W: the public batch, normalised
    probs_JxBxKxC: torch.Tensor | None = None      # softmax(logits / tau) of every sender's heads
    embeddings: list[torch.Tensor] = field(default_factory=list)  # per sender: B x D_j (widths may differ)

    def state(self) -> dict:
        """Checkpoint form, on the CPU; None where nothing was sent yet."""
        return {"public_x": _cpu(self.public_x), "probs_JxBxKxC": _cpu(self.probs_JxBxKxC),
                "embeddings": [e.cpu() for e in self.embeddings]}

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> "Teachers":
        def to(t):
            return None if t is None else t.to(device)
        return cls(to(state["public_x"]), to(state["probs_JxBxKxC"]), [e.to(device) for e in state["embeddings"]])


def _cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.cpu()
