"""Teachers: what the senders sent on the current public batch, and the rules that turn it into each
receiver's target (which sender's prediction a receiver distils from, per public sample and head).

Shapes: N receiving clients, J sending clients, B public samples, K heads, C classes, D embedding dims.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .methods import SCORED_RULES, TEACHER_RULES  # noqa: F401 (the one list; the report reads it without torch)


def teacher_weights(probs_JxBxKxC: torch.Tensor, senders_NxJ: torch.Tensor, rule: str,
                    scores_JxBxK: torch.Tensor | None = None, threshold: float = 0.0,
                    temperature: float = 0.0) -> torch.Tensor:
    """Weight of sender j in receiver n's target, per sample and head: N x J x B x K, rows sum to 1
    where n has a sender, 0 where it has none.

    max_confidence: one-hot on j* = argmax_j max_c p_j(c|u) (ties: the lowest j) [paper];
    mean: uniform over senders; confidence_weighted: proportional to max_c p_j(c|u);
    energy, density [ours: the paper's suggested direction]: one-hot on the sender with the highest
    in-distribution score (scores_JxBxK: the sender's free energy, or the Mahalanobis score of its
    private-data density), or with temperature > 0 a softmax of the scores over the senders. Without
    scores (the density rule before its first fit) they choose by confidence.
    threshold > 0 [ours, IDKD-like]: only senders whose max_c p_j(c|u) reaches it count; a sample no
    sender passes gets no target (weights 0: it adds no loss)."""
    if rule not in TEACHER_RULES:
        raise ValueError(f"unknown teacher rule {rule!r}; allowed: {', '.join(TEACHER_RULES)}")
    conf_JxBxK = probs_JxBxKxC.amax(dim=-1)
    mask_NxJx1x1 = senders_NxJ[:, :, None, None]
    if threshold > 0:  # senders that pass, per sample and head
        mask = mask_NxJx1x1 & (conf_JxBxK >= threshold)[None]
    else:
        mask = mask_NxJx1x1
    score = conf_JxBxK
    if rule in SCORED_RULES and scores_JxBxK is not None:
        score = scores_JxBxK
        if temperature > 0:
            logits = torch.where(mask, score[None] / temperature, float("-inf"))
            weights = logits.softmax(dim=1).nan_to_num(0.0)  # a sample no sender passes: all -inf, weights 0
            return weights.to(probs_JxBxKxC.dtype)
    if rule in ("max_confidence", *SCORED_RULES):  # no host round trip: a scalar fill and a comparison
        lowest = -1.0 if rule == "max_confidence" or scores_JxBxK is None else float("-inf")
        scores = torch.where(mask, score[None], lowest)
        chosen_Nx1xBxK = scores.argmax(dim=1, keepdim=True)
        senders_1xJx1x1 = torch.arange(senders_NxJ.shape[1], device=conf_JxBxK.device)[None, :, None, None]
        weights = (chosen_Nx1xBxK == senders_1xJx1x1).to(probs_JxBxKxC.dtype)
        return weights * mask.any(dim=1, keepdim=True)
    if rule == "mean":
        weights = mask.to(probs_JxBxKxC.dtype).expand(-1, -1, *conf_JxBxK.shape[1:])
    else:  # confidence_weighted
        weights = mask * conf_JxBxK[None]
    return weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)


def precision_counts(weights_NxJxBxK: torch.Tensor, right_JxB: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per receiver and head (N x K): the weight its targets put on a right sender (one that has the
    sample's true class among its primary classes: right_JxB), and the weight in all. Their ratio
    over an evaluation interval is the teacher precision."""
    w = weights_NxJxBxK.float()
    return torch.einsum("njbk,jb->nk", w, right_JxB.float()), w.sum(dim=(1, 2))


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
    scores_JxBxK: torch.Tensor | None = None       # energy / density rules: each sender's score per sample, head
    public_y: torch.Tensor | None = None           # B: the public batch's labels, never trained on (teacher precision)

    def state(self) -> dict:
        """Checkpoint form, on the CPU; None where nothing was sent yet."""
        return {"public_x": _cpu(self.public_x), "probs_JxBxKxC": _cpu(self.probs_JxBxKxC),
                "embeddings": [e.cpu() for e in self.embeddings], "scores_JxBxK": _cpu(self.scores_JxBxK),
                "public_y": _cpu(self.public_y)}

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> "Teachers":
        def to(t):
            return None if t is None else t.to(device)
        return cls(to(state["public_x"]), to(state["probs_JxBxKxC"]), [e.to(device) for e in state["embeddings"]],
                   to(state["scores_JxBxK"]), to(state["public_y"]))


def _cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.cpu()
