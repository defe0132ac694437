"""Batches as tensors on the training device: every client's private batch and the shared public
batch of a step are drawn with one seeded generator per step, so a resumed run draws exactly what an
uninterrupted one would. Augmentation works on whole batches."""

from __future__ import annotations

import numpy as np
import torch

STEP_SEED_STRIDE = 1_000_003  # seed of step t: seed * stride + t, distinct for every (seed, step)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Random draws are made on the CPU (the same batches on every device); to CUDA they go
    through pinned memory without blocking, so the step never waits for the GPU."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class TensorData:
    """The training split as uint8 on `device`, normalised per channel when batches are read."""

    def __init__(self, train_x, train_y, private: list, public, device: torch.device, augment: str = "none"):
        self.x = train_x.to(device)
        self.y = train_y.to(device)
        self.device = device
        self.augment = augment
        xf = train_x.float() / 255
        self.mean = xf.mean(dim=(0, 2, 3)).view(1, -1, 1, 1).to(device)
        self.std = xf.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, -1, 1, 1).to(device)
        # private sets of unequal sizes (NIID-Bench's dirichlet) are padded to the largest; a client draws
        # only from its own first sizes_N[i] entries
        self.sizes_N = torch.tensor([len(p) for p in private], dtype=torch.long)
        self.equal_sizes = len(set(self.sizes_N.tolist())) == 1
        width = int(self.sizes_N.max())
        self.private_NxM = torch.stack([torch.as_tensor(np.resize(np.asarray(p, dtype=np.int64), width))
                                        for p in private]).to(device)
        self.pooled_1xP = torch.cat([torch.as_tensor(p, dtype=torch.long) for p in private])[None].to(device)
        self.public = torch.as_tensor(public, dtype=torch.long).to(device)

    def normalise(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return (x_uint8.float() / 255 - self.mean) / self.std

    def generator(self, seed: int, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed * STEP_SEED_STRIDE + step)

    def private_batch(self, gen: torch.Generator, batch: int, pooled: bool = False):
        """x: N x B x C x H x W (normalised, augmented), y: N x B; with replacement across steps.
        pooled: one batch from the union of the private sets (1 x B), for the centralized baseline."""
        rows = self.pooled_1xP if pooled else self.private_NxM
        if pooled or self.equal_sizes:
            pick = torch.randint(rows.shape[1], (rows.shape[0], batch), generator=gen)
        else:  # uniform over each client's own samples
            pick = (torch.rand(rows.shape[0], batch, generator=gen) * self.sizes_N[:, None]).long()
        pick = to_device(pick, self.device)
        idx_NxB = rows.gather(1, pick)
        x = self.x[idx_NxB.flatten()]
        x = self.normalise(augment(x, self.augment, gen))
        return x.view(*idx_NxB.shape, *x.shape[1:]), self.y[idx_NxB]

    def public_batch(self, gen: torch.Generator, batch: int, with_labels: bool = False):
        """B x C x H x W (normalised, augmented); with_labels: also its labels, which no loss reads (the
        teacher precision metric does)."""
        pick = to_device(torch.randint(len(self.public), (batch,), generator=gen), self.device)
        x = self.normalise(augment(self.x[self.public[pick]], self.augment, gen))
        return (x, self.y[self.public[pick]]) if with_labels else x


def augment(x_uint8: torch.Tensor, how: str, gen: torch.Generator) -> torch.Tensor:
    """`flip_crop`: random horizontal flip and a random crop from a zero-padded image (pad = size/8),
    drawn per sample but applied to the whole batch at once."""
    if how == "none":
        return x_uint8
    b, _, h, w = x_uint8.shape
    pad = max(1, h // 8)
    flip = to_device(torch.rand(b, generator=gen) < 0.5, x_uint8.device)
    x = torch.where(flip[:, None, None, None], x_uint8.flip(-1), x_uint8)
    off = to_device(torch.randint(0, 2 * pad + 1, (2, b), generator=gen), x.device)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (off[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (off[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]
