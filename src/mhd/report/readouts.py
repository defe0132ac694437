"""One row per run: the numbers that fronts and claims compare, at the last step and as the mean over
clients. Shared accuracy of the best head (the readout the paper reports) and of the own-heads
ensemble, private and shared accuracy of the main head, the run's settings and its convergence."""

from __future__ import annotations

import pandas as pd

from ..learning import methods, run_folder, teachers
from . import summary

# columns of the summary that are measurements, not settings of the run
MEASURED = ("run", "step", "client", "head", "shared_acc", "private_acc", "val_shared_acc", "val_private_acc",
            "teacher_precision", "bytes_sent",
            "train_loss", "client_architecture", "last_quarter_movement", "converged")


def settings(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in MEASURED and not c.startswith("class_acc_")]


def family(method: str, heads: int, include_self: bool, teacher: str = teachers.PAPER) -> str:
    """A front's name: the method, and for MHD whether heads also distil from the client's own and,
    where it is not the paper's, the teacher rule."""
    name = methods.label(method, 0)
    if heads <= 0:
        return name
    rule = "" if teacher == teachers.PAPER else f", teacher {teacher}"
    return f"{name} ({'with' if include_self else 'without'} include_self{rule})"


def per_run(table: pd.DataFrame) -> pd.DataFrame:
    last = summary.last_step(table)
    best = run_folder.best_heads(table)
    keys = settings(table)
    rows = []
    for run, t in last.groupby("run"):
        head = t["head"]
        first = t.iloc[0]
        rows.append({"run": run, **{k: first[k] for k in keys},
                     "family": family(first["method"], int(first["heads"]), bool(first["include_self"]),
                                      str(first.get("teacher", teachers.PAPER))),
                     "best_head": best[run],
                     "shared_best": t[head == best[run]].shared_acc.mean(),
                     "shared_ensemble": t[head == "ensemble"].shared_acc.mean(),
                     "shared_main": t[head == "0"].shared_acc.mean(),
                     "private_main": t[head == "0"].private_acc.mean(),
                     "last_quarter_movement": first.get("last_quarter_movement", float("nan")),
                     "converged": first.get("converged", float("nan"))})  # True, False or NaN (not judged)
    return pd.DataFrame(rows)
