"""How well a sender's score tells the public samples of its own classes from the others', on a
trained run (`mhd teacher-scores RUN_DIR`): the diagnosis behind the teacher rules' precision.

The scores themselves (the density rule's, Gaussian fits of the private set, the main head's
confidence and energy) come from the learning stage (learning/public_scores.py), which loads the
run's last checkpoint; this module only judges them. For each score, two numbers:
- precision: the share of public samples whose highest-scoring client (over all clients) has the
  sample's class among its primary classes (what `teacher_precision` measures during training,
  here without the graph: every client a candidate);
- AUROC: per client, the probability that a public sample of one of its primary classes scores
  higher than one of another class (0.5: no separation), mean over clients.
"""

from __future__ import annotations

from pathlib import Path

import torch


def _auroc(s_in: torch.Tensor, s_out: torch.Tensor) -> float:
    if not len(s_in) or not len(s_out):
        return float("nan")
    ranks = torch.cat([s_in, s_out]).argsort().argsort().double() + 1
    return float((ranks[:len(s_in)].sum() - len(s_in) * (len(s_in) + 1) / 2) / (len(s_in) * len(s_out)))


def measure(run_dir: str | Path, samples: int = 4000) -> list[dict]:
    """One row per score: precision of the best-scoring client and the mean per-client AUROC."""
    from ..config import load_run_file
    from ..errors import DataError
    from ..learning import public_scores

    run_dir = Path(run_dir)
    spec_path = run_dir / "run.yaml"
    if not spec_path.exists() or not (run_dir / "checkpoint.pt").exists():
        raise DataError(f"{run_dir}: needs run.yaml and checkpoint.pt (a trained run folder under results/runs/)")
    run, inputs = load_run_file(spec_path)
    scored = public_scores.of_run(run, inputs, run_dir / "checkpoint.pt", samples)
    owner_BxN = scored.owner_BxN
    rows = []
    for name, s_BxN in scored.scores_BxN.items():
        pick = s_BxN.argmax(1)
        precision = float(owner_BxN[torch.arange(len(pick)), pick].float().mean())
        auroc = [_auroc(s_BxN[owner_BxN[:, i], i], s_BxN[~owner_BxN[:, i], i]) for i in range(owner_BxN.shape[1])]
        rows.append({"score": name, "precision": round(precision, 3), "auroc": round(sum(auroc) / len(auroc), 3)})
    return rows


def markdown(rows: list[dict], run_dir: str | Path) -> str:
    lines = [f"Teacher scores of {run_dir} (eval mode, every client a candidate):", "",
             "| score | precision of the best-scoring client | AUROC own classes vs others |", "|---|---|---|"]
    lines += [f"| {r['score']} | {r['precision']:.3f} | {r['auroc']:.3f} |" for r in rows]
    return "\n".join(lines)
