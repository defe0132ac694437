"""Gather runs into one table: a row per run, client, head and step, every run setting a column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from ..errors import DataError
from ..learning import methods

PER_CLIENT = ("bytes_sent", "train_loss")  # metrics of a client, not of a head


def load_run(run_dir: str | Path) -> pd.DataFrame:
    run_dir = Path(run_dir)
    try:
        spec = yaml.safe_load((run_dir / "run.yaml").read_text())
        long = pd.read_csv(run_dir / "metrics.csv", dtype={"head": str})
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise DataError(f"run {run_dir} is incomplete ({exc}); rerun it with snakemake") from exc
    run = spec["run"]
    heads = long[~long.metric.isin(PER_CLIENT)].pivot_table(index=["step", "client", "head"], columns="metric",
                                                             values="value").reset_index()
    clients = long[long.metric.isin(PER_CLIENT)].pivot_table(index=["step", "client"], columns="metric",
                                                              values="value").reset_index()
    table = heads.merge(clients, on=["step", "client"], how="left")
    table.columns.name = None
    archs = methods.architectures(run)
    table["client_architecture"] = [archs[c] if c < len(archs) else archs[0] for c in table.client]
    for key, value in run.items():
        table[key] = ",".join(value) if isinstance(value, list) else value
    table.insert(0, "run", run_dir.name)
    return table


def collect(run_dirs: list[str | Path]) -> pd.DataFrame:
    """Every run's rows, with each run's convergence (see `convergence`) as two more columns."""
    if not run_dirs:
        raise DataError("no runs to summarise")
    table = pd.concat([load_run(d) for d in run_dirs], ignore_index=True)
    return table.merge(convergence(table), on="run", how="left")


CONVERGED_WITHIN = 0.01  # a run has converged when its readout moves less than 1 point ...
LAST_SHARE = 0.25        # ... over the last quarter of its training


def convergence(table: pd.DataFrame) -> pd.DataFrame:
    """Per run: how far the best head's shared accuracy (mean over clients) moved over the last quarter
    of training (max - min over the evaluations from 75 % of the steps on, the last included), and
    whether that is under 1 point. Both NaN (not judged) when fewer than two evaluations fall in that quarter."""
    best = best_heads(table)
    rows = []
    for run, t in table[table["head"] != "ensemble"].groupby("run"):
        curve = t[t["head"] == best[run]].groupby("step").shared_acc.mean()
        tail = curve[curve.index >= (1 - LAST_SHARE) * curve.index.max()]
        moved = float(tail.max() - tail.min()) if len(tail) >= 2 else float("nan")
        rows.append({"run": run, "last_quarter_movement": moved,
                     "converged": float("nan") if moved != moved else bool(moved < CONVERGED_WITHIN)})
    return pd.DataFrame(rows, columns=["run", "last_quarter_movement", "converged"])


def last_step(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last evaluation."""
    return table[table.step == table.groupby("run").step.transform("max")]


def heads_at_last_step(table: pd.DataFrame, auxiliary_only: bool = False) -> pd.DataFrame:
    """Each run's heads 0..H (not the ensemble) at its last evaluation; `auxiliary_only`: only the runs
    that have auxiliary heads (H >= 1, i.e. MHD)."""
    last = last_step(table)
    last = last[last["head"] != "ensemble"]
    return last[last.heads > 0] if auxiliary_only else last


def best_heads(table: pd.DataFrame) -> pd.Series:
    """Per run, the head (0..H, not the ensemble) with the highest mean shared accuracy at the last step."""
    last = heads_at_last_step(table)
    means = last.groupby(["run", "head"]).shared_acc.mean().reset_index()
    return means.loc[means.groupby("run").shared_acc.idxmax()].set_index("run")["head"]


def headline_table(table: pd.DataFrame) -> str:
    """Markdown: one row per method (and H), one column per head, 'shared / private' at the last step,
    mean over clients and seeds."""
    last = last_step(table).copy()
    last["method (H)"] = last.apply(lambda r: f"{r['method']} (H={r['heads']})" if r["heads"] > 0
                                    else r["method"], axis=1)
    heads = sorted((h for h in last["head"].unique() if h != "ensemble"), key=int) + ["ensemble"]
    means = last.groupby(["method (H)", "head"])[["shared_acc", "private_acc"]].mean()
    seeds = last.groupby("method (H)").seed.nunique()
    lines = ["| method | seeds | " + " | ".join(f"head {h}" if h != "ensemble" else h for h in heads) + " |",
             "|---|---|" + "---|" * len(heads)]
    def order(name: str) -> tuple:  # baselines in the methods' order, then MHD by H
        method = name.split(" (")[0]
        return (" (H=" in name, methods.METHODS.index(method) if method in methods.METHODS else 0, name)

    for name in sorted(means.index.get_level_values(0).unique(), key=order):
        cells = [f"{means.loc[(name, h)].shared_acc:.3f} / {means.loc[(name, h)].private_acc:.3f}"
                 if (name, h) in means.index else "" for h in heads]
        lines.append(f"| {name} | {seeds[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
