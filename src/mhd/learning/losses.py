"""The losses of MHD: chained head distillation, main-head distillation and embedding distillation,
from the targets that teachers.py selects.

Shapes: N receiving clients, J sending clients, B public samples, K heads, C classes, D embedding dims.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .teachers import Teachers, teacher_targets, teacher_weights


def distill_kl(student_logits_BxKxC: torch.Tensor, target_BxKxC: torch.Tensor, tau: float) -> torch.Tensor:
    """tau^2 KL(T || softmax(student / tau)), summed over heads, mean over samples. T is detached.
    Leading dims (such as N clients: N x B x K x C) are kept: one loss per client."""
    log_q = F.log_softmax(student_logits_BxKxC.float() / tau, dim=-1)
    target = target_BxKxC.detach().float()
    kl_BxK = (torch.xlogy(target, target) - target * log_q).sum(dim=-1)
    return tau**2 * kl_BxK.sum(dim=-1).mean(dim=-1)


def embedding_loss(student_emb_BxD: torch.Tensor, teacher_embs: list[torch.Tensor],
                   weights_JxB: torch.Tensor, projections: dict) -> torch.Tensor:
    """|| normalise(W e_i(u)) - sg(target(u)) ||^2, mean over samples; the target mixes the senders'
    L2-normalised embeddings with the weights of head 1's targets. Senders of another width
    are reached through a learned projection W per width; same width and no projection: W = I."""
    loss = student_emb_BxD.new_zeros((), dtype=torch.float32)
    widths = sorted({e.shape[-1] for e in teacher_embs})
    for width in widths:
        idx = [j for j, e in enumerate(teacher_embs) if e.shape[-1] == width]
        w_jxB = weights_JxB[idx]
        share_B = w_jxB.sum(dim=0)  # 0 where no sender of this width was chosen: those samples add 0
        target_BxD = torch.einsum("jb,jbd->bd", w_jxB, torch.stack([F.normalize(teacher_embs[j].float().detach(), dim=-1)
                                                                   for j in idx]))
        target_BxD = target_BxD / share_B.clamp_min(1e-12)[:, None]
        proj = projections[str(width)] if str(width) in projections else None
        student = F.normalize((proj(student_emb_BxD) if proj is not None else student_emb_BxD).float(), dim=-1)
        loss = loss + (share_B * (student - target_BxD).pow(2).sum(dim=-1)).mean()
    return loss


def distillation(run: dict, step: int, teachers: Teachers, senders_main_NxJ: torch.Tensor,
                 senders_aux_NxJ: torch.Tensor, embs_pub: list[torch.Tensor], logits_pub_NxBxKxC: torch.Tensor,
                 projections) -> tuple[torch.Tensor, dict]:
    """Every client's distillation loss on the public batch, summed, times the ramp-up factor:
    head k >= 1 from the senders' head k-1 (nu_aux), the main head from the senders' main heads
    (nu_main), the embedding from the senders' embeddings with head 1's teacher weights (nu_emb).
    Also the teacher weights used, N x J x B x K: "aux" (column k-1 for head k) and "main" (head 0)."""
    r, h = run, run["heads"]
    ramp = min(1.0, (step + 1) / r["nu_rampup"]) if r["nu_rampup"] else 1.0
    probs_JxBxKxC, scores = teachers.probs_JxBxKxC, teachers.scores_JxBxK
    rule = {"rule": r["teacher"], "threshold": r["teacher_threshold"], "temperature": r["score_temperature"]}
    total = probs_JxBxKxC.new_zeros(())
    used = {}
    if h >= 1 and (r["nu_aux"] > 0 or r["nu_emb"] > 0):
        # chained heads: head k of the receiver from head k-1 of its senders
        w_aux = used["aux"] = teacher_weights(probs_JxBxKxC[:, :, :h], senders_aux_NxJ,
                                              scores_JxBxK=None if scores is None else scores[:, :, :h], **rule)
        if r["nu_aux"] > 0:
            t_aux = teacher_targets(probs_JxBxKxC[:, :, :h], w_aux)
            total = total + r["nu_aux"] * distill_kl(logits_pub_NxBxKxC[:, :, 1:], t_aux, r["tau"]).sum()
    if r["nu_main"] > 0:
        w_main = used["main"] = teacher_weights(probs_JxBxKxC[:, :, :1], senders_main_NxJ,
                                                scores_JxBxK=None if scores is None else scores[:, :, :1], **rule)
        t_main = teacher_targets(probs_JxBxKxC[:, :, :1], w_main)
        total = total + r["nu_main"] * distill_kl(logits_pub_NxBxKxC[:, :, :1], t_main, r["tau"]).sum()
    if r["nu_emb"] > 0:
        for i, emb in enumerate(embs_pub):
            w_emb = w_aux[i, :, :, 0] if h >= 1 else w_main[i, :, :, 0]
            total = total + r["nu_emb"] * embedding_loss(emb, teachers.embeddings, w_emb, projections[i])
    return ramp * total, used
