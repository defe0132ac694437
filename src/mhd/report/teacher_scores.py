"""How well a sender's score tells the public samples of its own classes from the others', on a
trained run (`mhd teacher-scores RUN_DIR`): the diagnosis behind the teacher rules' precision.

From the run's last checkpoint, every client's model embeds the first `samples` public images and
its whole private set (eval mode). For each score below, two numbers:
- precision: the share of public samples whose highest-scoring client (over all clients) has the
  sample's class among its primary classes (what `teacher_precision` measures during training,
  here without the graph: every client a candidate);
- AUROC: per client, the probability that a public sample of one of its primary classes scores
  higher than one of another class (0.5: no separation), mean over clients.

Scores: the density rule's own (the checkpoint's last window fit, -min_c Mahalanobis^2 / D); the same
Gaussians fitted on the whole private set; that fit's mixture log-density (class priors from the
private counts, so a class the client holds a handful of images of weighs little); the nearest class
among those holding at least 5 % of the client's private set; the main head's top softmax
probability (max_confidence) and logsumexp (energy).
"""

from __future__ import annotations

from pathlib import Path

import torch

SUPPORT = 0.05  # share of a client's private set that makes a class "its own" in the supported score


def _embed(model, data, idx: torch.Tensor, batch: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    embs, logits = [], []
    with torch.no_grad():
        for start in range(0, len(idx), batch):
            e, lg = model(data.normalise(data.x[idx[start:start + batch]]))
            embs.append(e.float())
            logits.append(lg.float())
    return torch.cat(embs), torch.cat(logits)


def _auroc(s_in: torch.Tensor, s_out: torch.Tensor) -> float:
    if not len(s_in) or not len(s_out):
        return float("nan")
    ranks = torch.cat([s_in, s_out]).argsort().argsort().double() + 1
    return float((ranks[:len(s_in)].sum() - len(s_in) * (len(s_in) + 1) / 2) / (len(s_in) * len(s_out)))


def client_scores(model, data, private_idx: torch.Tensor, public_idx: torch.Tensor, classes: int,
                  window_density=None) -> dict[str, torch.Tensor]:
    """Every score of one client on the public samples (B each)."""
    from ..learning.density import PrivateDensity

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


def measure(run_dir: str | Path, samples: int = 4000) -> list[dict]:
    """One row per score: precision of the best-scoring client and the mean per-client AUROC."""
    from ..errors import DataError
    from ..config import validate_run
    from ..learning import checkpoint, run_folder
    from ..learning.federation import Federation
    from ..learning.trainer import Trainer

    run_dir = Path(run_dir)
    spec_path = run_dir / "run.yaml"
    if not spec_path.exists() or not (run_dir / "checkpoint.pt").exists():
        raise DataError(f"{run_dir}: needs run.yaml and checkpoint.pt (a trained run folder under results/runs/)")
    run, inputs = run_folder.read_run_file(spec_path)
    run = validate_run(run, str(spec_path))
    fed = Federation.load(run, inputs["prepared"], inputs["split"], inputs["graph"], "cpu")
    trainer = Trainer(run, fed)
    loaded = checkpoint.load(trainer, run_dir / "checkpoint.pt")
    if loaded.why:
        raise DataError(f"{run_dir / 'checkpoint.pt'} cannot be scored: {loaded.why}")
    if trainer.step != run["steps"]:
        raise DataError(f"{run_dir / 'checkpoint.pt'} is at step {trainer.step} of {run['steps']}: a run is scored "
                        f"once it is finished; finish it with snakemake")
    if len(trainer.models) != fed.clients:
        raise DataError(f"{run_dir}: method {run['method']} trains {len(trainer.models)} model(s) for "
                        f"{fed.clients} clients; the scores compare one model per client")
    data = fed.data
    public = data.public[:samples] if samples else data.public
    owner_BxN = fed.primary_NxC[:, data.y[public]].T
    per_client = [client_scores(m, data, data.private_NxM[i, :data.sizes_N[i]], public, fed.classes,
                                trainer.densities[i] if trainer.densities else None)
                  for i, m in enumerate(trainer.models)]
    rows = []
    for name in per_client[0]:
        s_BxN = torch.stack([c[name] for c in per_client], 1)
        pick = s_BxN.argmax(1)
        precision = float(owner_BxN[torch.arange(len(pick)), pick].float().mean())
        auroc = [_auroc(s_BxN[owner_BxN[:, i], i], s_BxN[~owner_BxN[:, i], i]) for i in range(fed.clients)]
        rows.append({"score": name, "precision": round(precision, 3), "auroc": round(sum(auroc) / len(auroc), 3)})
    return rows


def markdown(rows: list[dict], run_dir: str | Path) -> str:
    lines = [f"Teacher scores of {run_dir} (eval mode, every client a candidate):", "",
             "| score | precision of the best-scoring client | AUROC own classes vs others |", "|---|---|---|"]
    lines += [f"| {r['score']} | {r['precision']:.3f} | {r['auroc']:.3f} |" for r in rows]
    return "\n".join(lines)
