"""The losses of MHD: teacher selection over neighbours, chained head distillation, embedding distillation.

Shapes: N receiving clients, J sending clients, B public samples, K heads, C classes, D embedding dims.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
