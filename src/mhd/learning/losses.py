"""The losses of MHD: the distillation terms (chained head distillation, main-head distillation and
embedding distillation), from the targets that teachers.py selects.

Each term is a `Term` in TERMS: the config key of its weight (0 = off), what the senders send for it
(the heads whose predictions it reads, their embeddings) and its loss. Adding a term touches this
file, the schema (its weight, a run key) and config.yaml (its default); config/README.md's table is
written from the schema (`mhd check --docs`). methods.py takes the weights from here: a method
without distillation sets them all to 0.

torch is imported inside the functions that compute: methods.py reads TERMS when a config is read,
without torch (as it reads teachers.py's rules).

Shapes: N receiving clients, J sending clients, B public samples, K heads, C classes, D embedding dims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from . import teachers as rules
from .teachers import Teachers, teacher_targets

if TYPE_CHECKING:
    import torch


def distill_kl(student_logits_BxKxC: torch.Tensor, target_BxKxC: torch.Tensor, tau: float) -> torch.Tensor:
    """tau^2 KL(T || softmax(student / tau)), summed over heads, mean over samples. T is detached.
    Leading dims (such as N clients: N x B x K x C) are kept: one loss per client."""
    import torch
    import torch.nn.functional as F

    log_q = F.log_softmax(student_logits_BxKxC.float() / tau, dim=-1)
    target = target_BxKxC.detach().float()
    kl_BxK = (torch.xlogy(target, target) - target * log_q).sum(dim=-1)
    return tau**2 * kl_BxK.sum(dim=-1).mean(dim=-1)


def embedding_loss(student_emb_BxD: torch.Tensor, teacher_embs: list[torch.Tensor],
                   weights_JxB: torch.Tensor, projections: dict) -> torch.Tensor:
    """|| normalise(W e_i(u)) - sg(target(u)) ||^2, mean over samples; the target mixes the senders'
    L2-normalised embeddings with the weights of head 1's targets. Senders of another width
    are reached through a learned projection W per width; same width and no projection: W = I."""
    import torch
    import torch.nn.functional as F

    loss = student_emb_BxD.new_zeros((), dtype=torch.float32)
    widths = sorted({e.shape[-1] for e in teacher_embs})
    for width in widths:
        idx = [j for j, e in enumerate(teacher_embs) if e.shape[-1] == width]
        # rows by Python ints, never by a list: a list index is copied to the GPU first, which waits for it
        w_jxB = weights_JxB if len(idx) == len(teacher_embs) else torch.stack([weights_JxB[j] for j in idx])
        share_B = w_jxB.sum(dim=0)  # 0 where no sender of this width was chosen: those samples add 0
        target_BxD = torch.einsum("jb,jbd->bd", w_jxB, torch.stack([F.normalize(teacher_embs[j].float().detach(), dim=-1)
                                                                   for j in idx]))
        target_BxD = target_BxD / share_B.clamp_min(1e-12)[:, None]
        proj = projections[str(width)] if str(width) in projections else None
        student = F.normalize((proj(student_emb_BxD) if proj is not None else student_emb_BxD).float(), dim=-1)
        loss = loss + (share_B * (student - target_BxD).pow(2).sum(dim=-1)).mean()
    return loss


@dataclass
class Public:
    """What a term reads on the public batch, and the teacher weights of each group of heads, made
    once per step by the run's rule: "aux" (head k >= 1 from the senders' head k-1, column k-1) and
    "main" (head 0 from the senders' head 0)."""
    run: dict
    teachers: Teachers
    senders_main_NxJ: torch.Tensor
    senders_aux_NxJ: torch.Tensor
    embs_pub: list[torch.Tensor]
    logits_pub_NxBxKxC: torch.Tensor
    projections: object
    used: dict = field(default_factory=dict)

    def weights(self, heads: str) -> torch.Tensor:
        """N x J x B x K: the teacher weights of "aux" or "main"."""
        if heads not in self.used:
            k = self.run["heads"] if heads == "aux" else 1
            senders = self.senders_aux_NxJ if heads == "aux" else self.senders_main_NxJ
            scores = self.teachers.scores_JxBxK
            self.used[heads] = rules.rule(self.run).weights(self.run, self.teachers.probs_JxBxKxC[:, :, :k], senders,
                                                            None if scores is None else scores[:, :, :k])
        return self.used[heads]


def _chained(p: Public) -> list[torch.Tensor]:
    """[paper] head k >= 1 from the senders' head k-1, summed over heads and clients."""
    h = p.run["heads"]
    if h < 1:
        return []
    t_aux = teacher_targets(p.teachers.probs_JxBxKxC[:, :, :h], p.weights("aux"))
    return [distill_kl(p.logits_pub_NxBxKxC[:, :, 1:], t_aux, p.run["tau"]).sum()]


def _main(p: Public) -> list[torch.Tensor]:
    """[ours] the main head from the senders' main heads (naive distillation's only term)."""
    t_main = teacher_targets(p.teachers.probs_JxBxKxC[:, :, :1], p.weights("main"))
    return [distill_kl(p.logits_pub_NxBxKxC[:, :, :1], t_main, p.run["tau"]).sum()]


def _embedding(p: Public) -> list[torch.Tensor]:
    """[paper] each client's embedding from its senders' embeddings, with head 1's teacher weights
    (head 0's without auxiliary heads); one loss per client."""
    w_NxJxBxK = p.weights("aux") if p.run["heads"] >= 1 else p.weights("main")
    return [embedding_loss(emb, p.teachers.embeddings, w_NxJxBxK[i, :, :, 0], p.projections[i])
            for i, emb in enumerate(p.embs_pub)]


@dataclass(frozen=True)
class Term:
    """A distillation term: `weight`, the run key of its weight (0 = off); `heads_sent(run)`, the
    senders' heads whose predictions it reads; `embedding`, whether it reads the senders' embeddings;
    `loss`, its losses, each added to the total times the weight (in order: a run's floats do not
    depend on how a term groups its sums)."""
    weight: str
    heads_sent: Callable[[dict], set]
    embedding: bool
    loss: Callable[[Public], list]


TERMS = (Term("nu_aux", lambda run: set(range(run["heads"])), False, _chained),
         Term("nu_main", lambda run: {0}, False, _main),
         Term("nu_emb", lambda run: set(), True, _embedding))
WEIGHTS = tuple(t.weight for t in TERMS)


def active(run: dict) -> list[Term]:
    return [t for t in TERMS if run[t.weight] > 0]


def values_sent(run: dict, dim: int, classes: int) -> int:
    """Values a sender sends per public sample: the predictions of every head an active term reads,
    its embedding (D values) if a term reads it, and what the teacher rule sends beside them."""
    terms = active(run)
    heads = set().union(*(t.heads_sent(run) for t in terms))
    values = len(heads) * classes + (dim if any(t.embedding for t in terms) else 0)
    return values + (rules.rule(run).values_sent(len(heads)) if heads else 0)


def distillation(run: dict, step: int, teachers: Teachers, senders_main_NxJ: torch.Tensor,
                 senders_aux_NxJ: torch.Tensor, embs_pub: list[torch.Tensor], logits_pub_NxBxKxC: torch.Tensor,
                 projections) -> tuple[torch.Tensor, dict]:
    """Every client's distillation loss on the public batch: each active term's losses times its
    weight, summed, times the ramp-up factor (linear over `nu_rampup` steps). Also the teacher weights
    used, N x J x B x K: "aux" (column k-1 for head k) and "main" (head 0)."""
    ramp = min(1.0, (step + 1) / run["nu_rampup"]) if run["nu_rampup"] else 1.0
    public = Public(run, teachers, senders_main_NxJ, senders_aux_NxJ, embs_pub, logits_pub_NxBxKxC, projections)
    total = teachers.probs_JxBxKxC.new_zeros(())
    for term in active(run):
        for loss in term.loss(public):
            total = total + run[term.weight] * loss
    return ramp * total, public.used
