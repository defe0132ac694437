"""What DVC shows and compares between commits (`dvc metrics show/diff`, `dvc plots show/diff`): per
method, at the config's default run, the shared accuracy of its readouts and the private accuracy of
its main head at the last step (results/metrics.json), and their curves over training
(results/curves/shared/<method>.csv, results/curves/private/<method>.csv). Mean over clients and seeds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..data import files

from ..learning import methods, run_folder


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
    best = run_folder.best_heads(table)
    out = {}
    for label, picked in _default_runs(runs).items():
        t = table[table.run.isin(picked.run)]
        shared = t[t["head"] == t.run.map(best)].groupby("step").shared_acc.mean()
        private = t[t["head"] == "0"].groupby("step").private_acc.mean()
        for kind, curve in (("shared", shared), ("private", private)):
            out[(kind, label)] = pd.DataFrame({"step": curve.index, "accuracy": curve.round(4).values})
    return out


def file_name(label: str) -> str:
    """A method's legend label as a file name: "MHD (H=3)" -> "MHD_H3"."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label.replace("=", "")).strip("_").replace("__", "_")


def write(table: pd.DataFrame, runs, metrics_path: str | Path | None = None,
          curves_dir: str | Path | None = None) -> None:
    """What DVC shows, each where asked: `metrics` at `metrics_path` (dvc metrics show) and `curves` in
    `curves_dir`/shared/ and /private/, a CSV per method (dvc plots show). The two folders are made even
    when no run is at the default setting (no curve to draw)."""
    if metrics_path:
        files.write_json(metrics_path, metrics(runs))
    if curves_dir:
        for kind in ("shared", "private"):
            (Path(curves_dir) / kind).mkdir(parents=True, exist_ok=True)
        for (kind, label), curve in curves(table, runs).items():
            files.write_text(Path(curves_dir) / kind / f"{file_name(label)}.csv", curve.to_csv(index=False))
