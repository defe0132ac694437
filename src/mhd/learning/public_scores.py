"""Every client's scores of the public samples, computed from a finished run's last checkpoint: what
`mhd teacher-scores` (report/teacher_scores.py) judges. Every client's model embeds the first
`samples` public images and its whole private set (eval mode) and scores each public sample:

- the density rule's own (the checkpoint's last window fit, -min_c Mahalanobis^2 / D), when the run
  trained with it;
- the same Gaussians fitted on the whole private set;
- that fit's mixture log-density (class priors from the private counts, so a class the client holds
  a handful of images of weighs little);
- the nearest class among those holding at least SUPPORT of the client's private set;
- the main head's top softmax probability (max_confidence) and logsumexp (energy).

Loading the run and running its models is this stage's work; the report only reads the scores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError
from . import checkpoint
from .density import PrivateDensity
from .federation import Federation
from .trainer import Trainer

SUPPORT = 0.05  # share of a client's private set that makes a class "its own" in the supported score


@dataclass
class PublicScores:
    scores_BxN: dict[str, torch.Tensor]  # score name -> [public sample, client]: the client's score of it
    owner_BxN: torch.Tensor              # [public sample, client]: the sample's class is a primary class of the client


def _embed(model, data, idx: torch.Tensor, batch: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    embs, logits = [], []
    with torch.no_grad():
        for start in range(0, len(idx), batch):
            e, lg = model(data.normalise(data.x[idx[start:start + batch]]))
            embs.append(e.float())
            logits.append(lg.float())
    return torch.cat(embs), torch.cat(logits)


def client_scores(model, data, private_idx: torch.Tensor, public_idx: torch.Tensor, classes: int,
                  window_density=None) -> dict[str, torch.Tensor]:
    """Every score of one client on the public samples (B each)."""
    e_pub, l_pub = _embed(model, data, public_idx)
    e_priv, _ = _embed(model, data, private_idx)
    y_priv = data.y[private_idx]
    dim = e_pub.shape[1]
    full = PrivateDensity(dim, classes, e_pub.device)
    full.add(e_priv, y_priv)
    full.refit()
    z = torch.linalg.solve_triangular(full.chol_DxD, (e_pub[None] - full.means_CxD[:, None]).transpose(1, 2),
                                      upper=False)
    d2_CxB = z.pow(2).sum(dim=1)
    counts = torch.bincount(y_priv, minlength=classes).float()
    share = counts / counts.sum()
    present, supported = (counts > 0)[:, None], (share >= SUPPORT)[:, None]
    out = {
        "density as trained (window fit)": window_density.score(e_pub) if window_density is not None else None,
        "density, whole private set": -d2_CxB.masked_fill(~present, float("inf")).min(0).values / dim,
        "mixture log-density (class priors)": torch.logsumexp(share.clamp_min(1e-12).log()[:, None] - d2_CxB / 2, 0),
        f"nearest class holding >= {SUPPORT:.0%}": -d2_CxB.masked_fill(~supported, float("inf")).min(0).values / dim,
        "main head top softmax (max_confidence)": l_pub[:, 0].softmax(-1).max(-1).values,
        "main head logsumexp (energy)": torch.logsumexp(l_pub[:, 0], -1),
    }
    return {k: v for k, v in out.items() if v is not None}


def finished(run: dict, inputs: dict, ckpt: str | Path) -> Trainer:
    """The trainer of a finished run (`run` effective, `inputs` as its run.yaml names them) at its last
    step, on the CPU, from its checkpoint `ckpt`; a DataError when the checkpoint cannot be loaded, is
    not at the run's last step, or the method trains other than one model per client."""
    ckpt = Path(ckpt)
    fed = Federation.load(run, inputs["prepared"], inputs["split"], inputs["graph"], "cpu")
    trainer = Trainer(run, fed)
    loaded = checkpoint.load(trainer, ckpt)
    if loaded.why:
        raise DataError(f"{ckpt} cannot be scored: {loaded.why}")
    if trainer.step != run["steps"]:
        raise DataError(f"{ckpt} is at step {trainer.step} of {run['steps']}: a run is scored "
                        f"once it is finished; finish it with snakemake")
    if len(trainer.models) != fed.clients:
        raise DataError(f"{ckpt.parent}: method {run['method']} trains {len(trainer.models)} model(s) for "
                        f"{fed.clients} clients; the scores compare one model per client")
    return trainer


def of_run(run: dict, inputs: dict, ckpt: str | Path, samples: int = 4000) -> PublicScores:
    """Every client's scores of the first `samples` public samples (0: all of them) of a finished run,
    and which clients own each sample's class (Federation.primary_NxC)."""
    trainer = finished(run, inputs, ckpt)
    fed, data = trainer.fed, trainer.fed.data
    public = data.public[:samples] if samples else data.public
    per_client = [client_scores(m, data, data.private_NxM[i, :data.sizes_N[i]], public, fed.classes,
                                trainer.densities[i] if trainer.densities else None)
                  for i, m in enumerate(trainer.models)]
    return PublicScores({name: torch.stack([c[name] for c in per_client], 1) for name in per_client[0]},
                        fed.primary_NxC[:, data.y[public]].T)
