"""The evidence every claim row is made of: the per-run readouts and how to find the runs of a setting
(`Runs`), per-seed effects paired by seed, their 95 % interval (Student's t) and the verdict they give
against a bar. claims.py and the row modules beside it (fronts, components, hops, teacher_rows) build
their rows from these."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..learning import methods
from . import readouts

# two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom; 1.96 beyond
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
SMALL, MIXED = "cnn_small", ("cnn_small", "cnn")  # claim 6: small clients, and the architectures it mixes
PRIVATE_KEPT = -0.01  # "private accuracy kept": within 1 point of the isolated clients'


def interval(values) -> tuple[float, float, float, int]:
    """Mean and 95 % interval of per-seed effects; the interval is NaN with fewer than two seeds."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan, len(v)
    half = (T975[len(v) - 2] if len(v) - 1 <= len(T975) else 1.96) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean, mean - half, mean + half, len(v)


# verdict words: above the bar, below it, straddling it
PAPER_WORDS = ("reproduced", "not reproduced", "inconclusive")  # a claim of the paper
OURS_WORDS = ("better", "worse", "inconclusive")  # a choice of ours (teacher rules): no paper claim to reproduce


def verdict(low: float, high: float, bar: float, words: tuple[str, str, str] = PAPER_WORDS) -> str:
    """`words`[0] when the whole interval is above the bar, [1] when below, [2] when it straddles it or
    there is no interval."""
    above, below, neither = words
    if math.isnan(low):
        return neither
    return above if low > bar else below if high < bar else neither


def norm(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "None"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    try:
        return format(float(value), "g")
    except (TypeError, ValueError):
        return str(value)


class Runs:
    """The per-run readouts, and how to find the runs of a setting: the default run with overrides.
    `inputs`: run name -> the inputs its run.yaml names (prepared, split, graph), for the claims that
    read a run's artefacts; a run without them is not measured there."""

    def __init__(self, table: pd.DataFrame, defaults: dict, inputs: dict[str, dict] | None = None):
        self.table, self.defaults, self.inputs = table, defaults, inputs or {}
        self.runs = readouts.per_run(table)
        self.keys = [k for k in readouts.settings(table) if k in defaults and k != "seed"]
        self.normed = self.runs[self.keys].map(norm) if len(self.runs) else self.runs
        self.of = {m: t for m, t in self.runs.groupby("method")} if len(self.runs) else {}  # method -> its runs

    def select(self, **over) -> pd.DataFrame:
        want = methods.effective({**self.defaults, **over}, explicit=over)
        mask = np.ones(len(self.runs), dtype=bool)
        for k in self.keys:
            mask &= (self.normed[k] == norm(want[k])).to_numpy()
        return self.runs[mask]

    def by_seed(self, column: str, **over) -> pd.Series:
        return self.select(**over).groupby("seed")[column].mean()


def paired(a: pd.Series, b: pd.Series) -> pd.Series:
    """a - b on the seeds both have, indexed by seed."""
    seeds = sorted(set(a.index) & set(b.index))
    return pd.Series({s: float(a[s] - b[s]) for s in seeds}, dtype=float)


def row(claim: str, measure: str, effects, bar: float, note: str = "",
         words: tuple[str, str, str] = PAPER_WORDS) -> dict:
    mean, low, high, n = interval(list(effects))
    if n == 0:
        return {"claim": claim, "measure": measure, "effect": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                "seeds": 0, "bar": bar, "verdict": "not measured", "note": note or "the runs it needs are not in the summary"}
    return {"claim": claim, "measure": measure, "effect": mean, "ci_low": low, "ci_high": high, "seeds": n,
            "bar": bar, "verdict": verdict(low, high, bar, words), "note": note}
