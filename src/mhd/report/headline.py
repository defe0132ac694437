"""What DVC shows and compares between commits (`dvc metrics show/diff`, `dvc plots show/diff`): per
method, at the config's default run, the shared accuracy of its readouts and the private accuracy of
its main head at the last step (results/metrics.json), and their curves over training
(results/curves/shared/<method>.csv, results/curves/private/<method>.csv). Mean over clients and seeds."""

from __future__ import annotations

import pandas as pd

from ..learning import methods
from . import summary


def _default_runs(runs) -> dict[str, pd.DataFrame]:
    """method label -> its runs at the default setting (claims.Runs.select: the default run, that method)."""
    out = {}
    for method in methods.METHODS:
        picked = runs.select(method=method)
        if len(picked):
            out[methods.label(method, int(picked.heads.iloc[0]))] = picked
    return out


def metrics(runs) -> dict:
    """{method: {shared_best, shared_ensemble, shared_main, private_main, seeds}} at the last step."""
    return {label: {"shared_best": round(float(p.shared_best.mean()), 4),
                    "shared_ensemble": round(float(p.shared_ensemble.mean()), 4),
                    "shared_main": round(float(p.shared_main.mean()), 4),
                    "private_main": round(float(p.private_main.mean()), 4),
                    "seeds": int(p.seed.nunique())}
            for label, p in _default_runs(runs).items()}


def curves(table: pd.DataFrame, runs) -> dict[tuple[str, str], pd.DataFrame]:
    """{("shared" | "private", method): step, accuracy} per evaluation: the shared accuracy of each run's
    best head and the private accuracy of its main head (one file each: a DVC plot reads one column)."""
    best = summary.best_heads(table)
    out = {}
    for label, picked in _default_runs(runs).items():
        t = table[table.run.isin(picked.run)]
        shared = t[t["head"] == t.run.map(best)].groupby("step").shared_acc.mean()
        private = t[t["head"] == "0"].groupby("step").private_acc.mean()
        for kind, curve in (("shared", shared), ("private", private)):
            out[(kind, label)] = pd.DataFrame({"step": curve.index, "accuracy": curve.round(4).values})
    return out
