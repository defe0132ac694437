"""One row per run: the numbers that fronts and claims compare, at the last step and as the mean over
clients. Shared accuracy of the best head (run_folder.best_heads) and of the own-heads ensemble,
private and shared accuracy of the main head, each on the test split and, with a `val_` prefix, on
the validation split (same run, step, client and head: selections read these, effects the test
ones); the run's settings and its convergence (summary.convergence)."""

from __future__ import annotations

import pandas as pd

from ..learning import methods, run_folder, teachers
from . import summary

# columns of the summary that are measurements, not settings of the run
MEASURED = ("run", "step", "client", "head", "shared_acc", "private_acc", "val_shared_acc", "val_private_acc",
            "teacher_precision", "bytes_sent", "train_loss", "client_architecture", *summary.CONVERGENCE[1:])
NAN = float("nan")


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


def _mean(rows: pd.DataFrame, column: str) -> float:
    """The mean over clients of a readout; NaN where the summary lacks it (one from before the
    validation split: no `val_` columns)."""
    return rows[column].mean() if column in rows else NAN


def per_run(table: pd.DataFrame) -> pd.DataFrame:
    last = summary.last_step(table)
    best = run_folder.best_heads(table)
    keys = settings(table)
    rows = []
    for run, t in last.groupby("run"):
        head = t["head"]
        first = t.iloc[0]
        row = {"run": run, **{k: first[k] for k in keys},
               "family": family(first["method"], int(first["heads"]), bool(first["include_self"]),
                                str(first.get("teacher", teachers.PAPER))),
               "best_head": best[run]}
        for split in ("", "val_"):  # test, then validation: the same readouts
            row |= {f"{split}shared_best": _mean(t[head == best[run]], f"{split}shared_acc"),
                    f"{split}shared_ensemble": _mean(t[head == "ensemble"], f"{split}shared_acc"),
                    f"{split}shared_main": _mean(t[head == "0"], f"{split}shared_acc"),
                    f"{split}private_main": _mean(t[head == "0"], f"{split}private_acc")}
        # True, False or NaN (not judged); summary.convergence wrote them
        rows.append(row | {c: first.get(c, NAN) for c in summary.CONVERGENCE[1:]})
    return pd.DataFrame(rows)
