"""The density rule's model [ours: the paper's suggested direction]: each client's density of its own
private data in its embedding space, as class-conditional Gaussians with one shared covariance (the
Mahalanobis score of Lee et al., 2018).

Every step adds the client's private embeddings (detached) to running sums: per-class counts and
sums, and the sum of outer products. Every `density_refit_every` steps the Gaussians are refitted from
the sums gathered since the last fit (so the model follows the backbone as it trains) and the sums
start again. A sender's score for a public sample u is -min_c (e(u) - mu_c)^T Sigma^-1 (e(u) - mu_c) / D:
the log-density of its nearest class up to constants, divided by the width D so that senders of other
widths compare (in distribution, the squared distance is about D). One number per sample travels
with the predictions, and it is the same for all of a sender's heads: the sender has a density of its
own data only (what its main head learnt), not of what deeper heads learnt from its neighbours.

Shapes: B samples, C classes, D embedding dims.
"""

from __future__ import annotations

import torch

RIDGE = 1e-3  # added to the covariance's diagonal, relative to its mean variance: a fit from few samples stays invertible


class PrivateDensity:
    """One client's class-conditional Gaussians with a shared covariance, and the sums they are fitted from."""

    def __init__(self, dim: int, classes: int, device: torch.device):
        self.counts_C = torch.zeros(classes, device=device)
        self.sums_CxD = torch.zeros(classes, dim, device=device)
        self.outer_DxD = torch.zeros(dim, dim, device=device)
        self.means_CxD: torch.Tensor | None = None
        self.chol_DxD: torch.Tensor | None = None   # Cholesky factor of the shared covariance
        self.present_C: torch.Tensor | None = None  # classes seen in the fit's window

    def add(self, emb_BxD: torch.Tensor, y_B: torch.Tensor) -> None:
        e = emb_BxD.detach().float()
        self.counts_C.index_add_(0, y_B, torch.ones_like(y_B, dtype=torch.float32))
        self.sums_CxD.index_add_(0, y_B, e)
        self.outer_DxD += e.T @ e

    def refit(self) -> None:
        """Means and shared covariance from the sums since the last fit; then the sums start again."""
        n = self.counts_C.sum()
        if n < 2:
            return
        present = self.counts_C > 0
        means = self.sums_CxD / self.counts_C.clamp_min(1)[:, None]
        cov = (self.outer_DxD - (self.counts_C[:, None, None] * means[:, :, None] * means[:, None, :]).sum(0)) / n
        ridge = RIDGE * cov.diagonal().mean().clamp_min(1e-6)
        cov = cov + ridge * torch.eye(len(cov), device=cov.device)
        chol, info = torch.linalg.cholesky_ex(cov)
        if int(info) == 0:  # a failed factorisation keeps the previous fit
            self.means_CxD, self.chol_DxD, self.present_C = means, chol, present
        self.counts_C.zero_()
        self.sums_CxD.zero_()
        self.outer_DxD.zero_()

    def score(self, emb_BxD: torch.Tensor) -> torch.Tensor | None:
        """B: -min_c Mahalanobis^2 / D of each sample (None before the first fit)."""
        if self.chol_DxD is None:
            return None
        diff_CxBxD = emb_BxD.detach().float()[None] - self.means_CxD[:, None]
        z = torch.linalg.solve_triangular(self.chol_DxD, diff_CxBxD.transpose(1, 2), upper=False)  # C x D x B
        d2_CxB = z.pow(2).sum(dim=1).masked_fill(~self.present_C[:, None], float("inf"))
        return -d2_CxB.min(dim=0).values / emb_BxD.shape[-1]

    def state(self) -> dict:
        return {k: None if v is None else v.cpu() for k, v in vars(self).items()}

    def load(self, state: dict, device: torch.device) -> None:
        for k, v in state.items():
            setattr(self, k, None if v is None else v.to(device))


def scores(densities: list[PrivateDensity], embs_pub: list[torch.Tensor], heads: int) -> torch.Tensor | None:
    """J x B x K: every sender's score of the public batch, the same for each of its K heads; None until
    every sender has a fit (until then the rule chooses by confidence)."""
    per_sender = [d.score(e) for d, e in zip(densities, embs_pub)]
    if any(s is None for s in per_sender):
        return None
    return torch.stack(per_sender)[:, :, None].expand(-1, -1, heads)
