"""The paper's claims (docs/SPEC.md), checked on the runs of results/summary.csv: per claim the measured
effect, its 95 % interval over seeds (paired by seed, Student's t) and a verdict. reproduced: the
whole interval is on the claimed side of the bar; not reproduced: the whole interval is on the other
side; inconclusive: it straddles the bar, or there are fewer than two seeds. A claim whose runs are
not in the summary says so, and no verdict is made up for it.

"The default run" is the config's `run` (its defaults) under a method: claims compare runs that are
equal in every setting but the ones named. `write` is `mhd claims`: the summary read back checked,
the claims, results/claims.csv and .md, and what DVC shows (headline.py)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import files
from ..errors import MHDError
from ..learning import methods, precision, run_folder
from . import diffusion, headline, readouts, summary

# two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom; 1.96 beyond
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
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


def verdict(low: float, high: float, bar: float) -> str:
    if math.isnan(low):
        return "inconclusive"
    return "reproduced" if low > bar else "not reproduced" if high < bar else "inconclusive"


def _norm(value) -> str:
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
        self.normed = self.runs[self.keys].map(_norm) if len(self.runs) else self.runs
        self.of = {m: t for m, t in self.runs.groupby("method")} if len(self.runs) else {}  # method -> its runs

    def select(self, **over) -> pd.DataFrame:
        want = methods.effective({**self.defaults, **over}, explicit=over)
        mask = np.ones(len(self.runs), dtype=bool)
        for k in self.keys:
            mask &= (self.normed[k] == _norm(want[k])).to_numpy()
        return self.runs[mask]

    def by_seed(self, column: str, **over) -> pd.Series:
        return self.select(**over).groupby("seed")[column].mean()


def _paired(a: pd.Series, b: pd.Series) -> pd.Series:
    """a - b on the seeds both have, indexed by seed."""
    seeds = sorted(set(a.index) & set(b.index))
    return pd.Series({s: float(a[s] - b[s]) for s in seeds}, dtype=float)


def _row(claim: str, measure: str, effects, bar: float, note: str = "") -> dict:
    mean, low, high, n = interval(list(effects))
    if n == 0:
        return {"claim": claim, "measure": measure, "effect": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                "seeds": 0, "bar": bar, "verdict": "not measured", "note": note or "the runs it needs are not in the summary"}
    return {"claim": claim, "measure": measure, "effect": mean, "ci_low": low, "ci_high": high, "seeds": n,
            "bar": bar, "verdict": verdict(low, high, bar), "note": note}


def shared_lift(r: Runs) -> dict:
    return _row("1. MHD lifts shared accuracy above isolated clients",
                "shared accuracy, MHD best head - isolated (default run)",
                _paired(r.by_seed("shared_best", method="mhd"), r.by_seed("shared_best", method="isolated")), 0.0)


def shared_lift_ensemble(r: Runs) -> dict:
    return _row("1b. ... also read by the own-heads ensemble (no head selected on the test split)",
                "shared accuracy, MHD ensemble - isolated (default run)",
                _paired(r.by_seed("shared_ensemble", method="mhd"), r.by_seed("shared_ensemble", method="isolated")), 0.0)


def private_kept(r: Runs) -> dict:
    effects = _paired(r.by_seed("private_main", method="mhd"), r.by_seed("private_main", method="isolated"))
    row = _row("2. MHD keeps the main head's private accuracy", "private accuracy, MHD main head - isolated "
               "(kept: above -1 point)", effects, PRIVATE_KEPT)
    if row["seeds"] and not math.isnan(row["ci_low"]):
        row["note"] = "enhanced (interval above 0)" if row["ci_low"] > 0 else "not enhanced (interval reaches 0 or below)"
    return row


def main_head_shared(r: Runs) -> dict:
    return _row("3. The main head's own shared accuracy is enhanced", "shared accuracy, MHD main head - isolated",
                _paired(r.by_seed("shared_main", method="mhd"), r.by_seed("shared_main", method="isolated")), 0.0)


def _gain_of_heads(r: Runs, topology: str) -> pd.Series:
    """Per seed: shared accuracy (best head) of MHD with the default H minus MHD with H = 1."""
    return _paired(r.by_seed("shared_best", method="mhd", topology=topology),
                   r.by_seed("shared_best", method="mhd", topology=topology, heads=1))


def more_heads(r: Runs) -> list[dict]:
    h = int(r.defaults["heads"])
    ring, complete = _gain_of_heads(r, "ring"), _gain_of_heads(r, "complete")
    return [_row(f"4a. More heads help (ring, H = {h} against H = 1)", "shared accuracy, best head, H - (H = 1)",
                 list(ring), 0.0),
            _row("4b. ... most on sparse graphs", "gain of H over H = 1: ring - complete", _paired(ring, complete),
                 0.0, "" if len(complete) else "needs MHD with H = 1 and with the default H on the complete graph too")]


def transitive(r: Runs) -> dict:
    """On the ring, skew splits: accuracy on the classes owned by clients 2 hops away and by none
    closer, head 2 - head 1 (chained heads carry one hop further per head). The hop distances and
    the owned classes (primary classes) are read from each run's own graph and split."""
    effects, unread = {}, []
    for _, run in r.select(method="mhd", topology="ring").iterrows():
        if run["scheme"] != "skew" or int(run["heads"]) < 2:
            continue
        if run["run"] not in r.inputs:
            unread.append(run["run"])
            continue
        t = summary.last_step(r.table[r.table.run == run["run"]])
        reach = diffusion.reach(r.inputs[run["run"]]["split"], r.inputs[run["run"]]["graph"])
        per_client = []
        for i in range(reach.clients):
            cls = sorted(reach.classes_at(i, 2))
            if not cls:
                continue
            acc = {k: t[(t.client == i) & (t["head"] == str(k))][[f"class_acc_{c}" for c in cls]].to_numpy().mean()
                   for k in (1, 2)}
            per_client.append(acc[2] - acc[1])
        if per_client:
            effects[int(run["seed"])] = float(np.mean(per_client))
    note = (f"runs whose folder was not given (mhd claims --runs), so whose graph and split were not read: "
            f"{', '.join(sorted(unread))}") if unread else ""
    return _row("5. Transitive learning: head k learns the classes of clients k hops away",
                "ring: accuracy on the classes 2 hops away, head 2 - head 1", list(effects.values()), 0.0, note)


def small_models(r: Runs) -> dict:
    def small(over) -> pd.Series:
        rows = r.select(**over)
        out = {}
        for _, run in rows.iterrows():
            t = summary.last_step(r.table[r.table.run == run["run"]])
            t = t[(t.client_architecture == "cnn_small") & (t["head"] == run["best_head"])]
            out[int(run["seed"])] = t.shared_acc.mean()
        return pd.Series(out, dtype=float)

    mixed = ["cnn_small", "cnn"]
    return _row("6. Small models gain from large ones", "shared accuracy of the cnn_small clients among cnn clients, "
                "MHD best head - isolated", _paired(small({"method": "mhd", "architectures": mixed}),
                                                   small({"method": "isolated", "architectures": mixed})), 0.0)


def matched_private(r: Runs, method: str, swept: dict[str, list]) -> tuple[pd.Series, str]:
    """The front's best shared accuracy (best head) among its settings whose private accuracy stays
    within 1 point of isolated's: per seed, and which setting that is."""
    iso = r.select(method="isolated").private_main.mean()
    if math.isnan(iso):  # no isolated runs: no bar to match
        return pd.Series(dtype=float), ""
    best, chosen = None, ""
    for key, values in swept.items():
        for value in values:
            runs = r.select(method=method, **{key: value})
            if runs.empty or runs.private_main.mean() < iso + PRIVATE_KEPT:
                continue
            if best is None or runs.shared_best.mean() > best.mean():
                best, chosen = runs.groupby("seed").shared_best.mean(), f"{key} = {value}"
    return (best if best is not None else pd.Series(dtype=float)), chosen


NAIVE_FRONTS = {  # claim 7's pairs of fronts: MHD against each naive-distillation family
    "single_head": ("7. MHD is ahead of naive distillation at matched private accuracy", "naive"),
    "mean_target": ("7b. ... and ahead of mean-target distillation (the neighbours' mean prediction)", "mean-target"),
}


def ahead_of(r: Runs, other: str) -> dict:
    """MHD's front against `other`'s (a naive-distillation family swept over nu_main), each at its best
    setting that keeps private accuracy within 1 point of isolated's."""
    claim, name = NAIVE_FRONTS[other]
    measure = f"best shared accuracy with private accuracy within 1 point of isolated: MHD front - {name} front"
    other_runs, mhd_runs = r.of.get(other, r.runs.iloc[:0]), r.of.get("mhd", r.runs.iloc[:0])
    weights = sorted({float(w) for w in other_runs.nu_main})
    mhd_settings = {"nu_aux": sorted({float(w) for w in mhd_runs.nu_aux}), "heads": sorted({int(h) for h in mhd_runs.heads})}
    mhd, mhd_at = matched_private(r, "mhd", mhd_settings)
    rival, rival_at = matched_private(r, other, {"nu_main": weights})
    note = f"MHD at {mhd_at or '(none kept private accuracy)'}; {name} at {rival_at or '(none kept private accuracy)'}"
    if r.select(method="isolated").empty:
        return _row(claim, measure, [], 0.0, "needs isolated runs: they set the private-accuracy bar")
    if len(other_runs) and len(mhd_runs) and (mhd.empty or rival.empty):
        return {**_row(claim, measure, [], 0.0), "verdict": "inconclusive",
                "note": note + ": a front without such a setting cannot be compared; sweep smaller weights"}
    return _row(claim, measure, _paired(mhd, rival), 0.0, note)


def check(table: pd.DataFrame, defaults: dict, inputs: dict[str, dict] | None = None) -> pd.DataFrame:
    """Every claim on the summary `table` at the default run `defaults` (see Runs for `inputs`)."""
    return _checked(Runs(table, defaults, inputs))


def _checked(r: Runs) -> pd.DataFrame:
    rows = [shared_lift(r), shared_lift_ensemble(r), private_kept(r), main_head_shared(r), *more_heads(r), transitive(r), small_models(r),
            *(ahead_of(r, other) for other in NAIVE_FRONTS)]
    return pd.DataFrame(rows)


def with_reference(claims: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Mark every verdict that differs from the reference run's (config/reference.yaml). A KeyError or
    ValueError names what is wrong with `reference` (a column missing, a claim given twice)."""
    for column in ("claim", "verdict"):
        if column not in reference.columns:
            raise KeyError(f"no column {column!r}")
    twice = sorted(set(reference.claim[reference.claim.duplicated()].astype(str)))
    if twice:
        raise ValueError(f"claims given more than once: {twice}")
    ref = reference.set_index("claim").verdict
    out = claims.assign(reference_verdict=claims.claim.map(ref))
    return out.assign(differs=out.reference_verdict.notna() & (out.verdict != out.reference_verdict))


def markdown(claims: pd.DataFrame, unconverged: list[str], unmeasurable: list[str] = ()) -> str:
    cols = ["claim", "measure", "effect", "95 % interval", "seeds", "verdict", "note"]
    if "reference_verdict" in claims:
        cols.insert(6, "reference verdict")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, c in claims.iterrows():
        ci = "" if math.isnan(c.ci_low) else f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
        cells = [c.claim, c.measure, "" if math.isnan(c.effect) else f"{c.effect:+.3f}", ci, str(c.seeds), c.verdict, c.note]
        if "reference_verdict" in claims:
            ref = c.reference_verdict if isinstance(c.reference_verdict, str) else ""
            cells.insert(6, f"**{ref}** (differs)" if c.differs else ref)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Intervals are over training seeds (split and graph fixed). The best head, and in claims 7 and 7b each "
              "front's best setting, are chosen on the same test split and seeds that make the interval: optimistic, "
              "most for the side with more settings to choose from; claim 1b reads the ensemble, which selects nothing.",
              "", f"Runs that have not converged (best head moved by 1 point or more over the last quarter): "
              f"{', '.join(unconverged) if unconverged else 'none'}."]
    if unmeasurable:
        lines.append(f"Runs whose convergence cannot be judged (fewer than two evaluations in the last quarter): "
                     f"{', '.join(unmeasurable)}.")
    return "\n".join(lines) + "\n"


def resolved(defaults: dict) -> dict:
    """The default run with `precision: auto` resolved for its device on this machine, as the runs carry
    it (config resolves it when it plans them), so that the default runs are found."""
    if isinstance(defaults.get("precision"), str) and isinstance(defaults.get("device"), str):
        return {**defaults, "precision": precision.resolve(defaults["precision"], defaults["device"])}
    return defaults


def convergence_lists(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Of the per-run readouts, (the runs that have not converged, those whose convergence cannot be
    judged), each sorted by name."""
    judged = runs.converged.notna()
    unconverged = sorted(runs[judged & (runs.converged != True)].run)  # noqa: E712 (True, False or NaN)
    return unconverged, sorted(runs[~judged].run)


def write(summary_path: str | Path, defaults: dict, out: str | Path, run_dirs: list[str | Path] | None = None,
          reference: str | Path | None = None, metrics_path: str | Path | None = None,
          curves_dir: str | Path | None = None) -> tuple[pd.DataFrame, str]:
    """`mhd claims`: the summary read back and checked (against its record and, given `run_dirs`, exactly
    those runs as they are now, whose run.yaml also says where each run's graph and split are), the
    claims at the default run `defaults` (the config's `run`), the verdicts that differ from a
    `reference` claims.csv marked, written to `out`.csv and `out`.md; and, where asked, what DVC shows
    (headline.write). Returns the claims and their markdown."""
    source = f"--summary {summary_path}"
    table = summary.read(summary_path, source, run_dirs)
    summary.check(table, source, [Path(d).name for d in run_dirs] if run_dirs else None)
    inputs = {Path(d).name: run_folder.read_run_file(Path(d) / "run.yaml")[1] for d in run_dirs or ()}
    try:
        r = Runs(table, resolved(defaults), inputs)
        checked = _checked(r)
    except KeyError as exc:
        raise MHDError(f"--defaults lacks the run key {exc}; give the config's whole `run`") from exc
    if reference:
        try:
            text = files.read_regular(reference, "a claims.csv (docs/claims-reference.csv)")
            checked = with_reference(checked, pd.read_csv(io.BytesIO(text)))
        except (OSError, ValueError, KeyError) as exc:
            raise MHDError(f"--reference {reference}: not a claims table ({exc})") from exc
    text = markdown(checked, *convergence_lists(r.runs))
    files.write_text(f"{out}.csv", checked.to_csv(index=False))
    files.write_text(f"{out}.md", text)
    headline.write(table, r, metrics_path, curves_dir)
    return checked, text
