"""The docs' numbers, generated: every number in the README's Expected results and in docs/results.md's
tables of the reference comes from two committed files, `mhd numbers` writes the tables between
markers in those docs, and tests/test_numbers.py checks that the docs hold what the files give:

    <!-- numbers: claims -->
    ...generated table...
    <!-- end numbers -->

The two files: the reference's claims (docs/reference/claims.csv, as `mhd claims` writes them) and its
per-run readouts (docs/reference/readouts.csv, one row per run: `readouts`), both written by
`mhd numbers --summary` from the reference's summaries.
A section names what it holds (SECTIONS); the prose around the markers is the doc's own and holds no
number of the reference.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from ..data import files
from ..errors import MHDError
from ..learning import methods
from . import claims as claims_table
from . import evidence, summary

MARKER = re.compile(r"(<!-- numbers: ([\w-]+) -->\n)(.*?)(<!-- end numbers -->)", re.S)
# the per-run readouts the docs read: the selected head's shared accuracy (the head chosen on
# validation, its accuracy on test), the ensemble's, the main head's private accuracy, convergence
COLUMNS = ("setting", "method", "seed", "run", "steps", "best_head", "shared_best", "shared_ensemble", "shared_main",
           "private_main", "val_shared_best", "val_private_main", "converged", "diverged")


def _setting(row: pd.Series, r: evidence.Runs, normed: pd.Series) -> str:
    """A run's setting in words: its method (and H) and each key where it differs from the default run
    of its method, seeds aside."""
    want = methods.effective({**r.defaults, "method": row["method"]}, explicit={"method": row["method"]})
    diff = [f"{k} {normed[k]}" for k in r.keys if k not in ("method", "heads") and normed[k] != evidence.norm(want[k])]
    return ", ".join([methods.label(row["method"], int(row["heads"])), *diff])


def readouts(table: pd.DataFrame, defaults: dict) -> pd.DataFrame:
    """One row per run of the summary `table` (readouts.per_run) with its setting in words (against the
    default run `defaults`, the config's `run`), accuracies rounded to 4 places, sorted by setting and seed."""
    r = evidence.Runs(table, claims_table.resolved(defaults))
    if not len(r.runs):
        raise MHDError("the summary holds no runs")
    runs = r.runs.assign(setting=[_setting(row, r, r.normed.loc[i]) for i, row in r.runs.iterrows()])
    out = runs[list(COLUMNS)].sort_values(["setting", "seed"], kind="stable").reset_index(drop=True)
    accuracy = [c for c in COLUMNS if "shared" in c or "private" in c]
    return out.assign(**{c: out[c].astype(float).round(4) for c in accuracy})


def _order(settings: pd.Series) -> list:
    """Settings in the order of methods.METHODS, then alphabetically."""
    rank = {methods.label(m, 0).split(" (")[0]: i for i, m in enumerate(methods.METHODS)}
    return sorted(settings.unique(), key=lambda s: (rank.get(s.split(" (")[0].split(",")[0], len(rank)), s))


def _f(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"


def settings_table(runs: pd.DataFrame) -> str:
    """Every setting of the study: its seeds, the mean over seeds (each the mean over clients at the last
    step) of the selected head's shared accuracy, the ensemble's, the main head's private accuracy, and
    how many seeds converged."""
    lines = ["| setting | seeds | shared, selected head | shared, ensemble | private, main head | converged |",
             "|---|---|---|---|---|---|"]
    for name in _order(runs.setting):
        t = runs[runs.setting == name]
        diverged = int((t.diverged == True).sum())  # noqa: E712 (True, False or NaN)
        converged = f"{int((t.converged == True).sum())} of {len(t)}" + (f" ({diverged} diverged)" if diverged else "")  # noqa: E712
        lines.append(f"| {name} | {len(t)} | {_f(t.shared_best.mean())} | {_f(t.shared_ensemble.mean())} | "
                     f"{_f(t.private_main.mean())} | {converged} |")
    return "\n".join(lines)


def convergence_text(runs: pd.DataFrame) -> str:
    lists = claims_table.convergence_lists(runs)
    done = len(runs) - sum(len(v) for v in lists.values())
    text = (f"{done} of {len(runs)} runs converged (on validation, the selected head's shared accuracy and the main "
            f"head's private accuracy each moved by less than {summary.CONVERGED_WITHIN:g} over the last quarter of "
            f"training). Not converged: {', '.join(lists['unconverged']) or 'none'}. Diverged: "
            f"{', '.join(lists['diverged']) or 'none'}.")
    if lists["unjudged"]:
        text += f" Not judged (too few evaluations in the last quarter): {', '.join(lists['unjudged'])}."
    return text


def _claims_table(claims: pd.DataFrame, columns: tuple[str, ...]) -> str:
    return "\n".join(claims_table.table_lines(claims, columns))


SECTIONS = {  # name -> what it holds, from (claims.csv, readouts.csv)
    "claims": lambda c, r: _claims_table(c, ("measure", "note")),
    "claims-short": lambda c, r: _claims_table(c, ()),
    "settings": lambda c, r: settings_table(r),
    "convergence": lambda c, r: convergence_text(r),
}


def read(claims_path: str | Path, readouts_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = []
    for path, what in ((claims_path, "a claims.csv (mhd claims)"), (readouts_path, "a readouts.csv (mhd numbers)")):
        try:
            out.append(pd.read_csv(path, keep_default_na=True))
        except (OSError, ValueError) as exc:
            raise MHDError(f"{path}: cannot read {what}: {exc}") from exc
    claims, runs = out
    missing = [c for c in COLUMNS if c not in runs.columns]
    if missing:
        raise MHDError(f"{readouts_path}: lacks the columns {missing}; write it with mhd numbers --summary")
    return claims, runs


def sections(claims: pd.DataFrame, runs: pd.DataFrame) -> dict[str, str]:
    return {name: make(claims, runs) + "\n" for name, make in SECTIONS.items()}


def rewrite(doc: str | Path, made: dict[str, str], check: bool = False) -> list[str]:
    """Write each `<!-- numbers: NAME -->` section of `doc` from `made` (or, with `check`, write nothing);
    returns the names of the sections whose text differed. An unknown name is an error naming the doc."""
    text = Path(doc).read_text()
    changed: list[str] = []

    def fill(m: re.Match) -> str:
        if m.group(2) not in made:
            raise MHDError(f"{doc}: unknown numbers section {m.group(2)!r}; allowed: {', '.join(made)}")
        if m.group(3) != made[m.group(2)]:
            changed.append(m.group(2))
        return m.group(1) + made[m.group(2)] + m.group(4)

    new = MARKER.sub(fill, text)
    if new == text and not MARKER.search(text):
        raise MHDError(f"{doc}: no `<!-- numbers: NAME -->` ... `<!-- end numbers -->` section to write")
    if changed and not check:
        files.write_text(doc, new)
    return changed


def write(claims_path: str | Path, readouts_path: str | Path, docs: list[str | Path], check: bool = False,
          summary_paths: list[str | Path] | None = None, defaults: dict | None = None,
          budget_paths: list[str | Path] | None = None, runs_root: str | Path = "results/runs") -> list[str]:
    """`mhd numbers`: given `summary_paths` (a study's parts, read as one) and its `defaults` (the config's
    `run`), first check its claims (`mhd claims`, against the runs the summaries name under `runs_root` as
    they are now, and at the second budget of `budget_paths` where given) into `claims_path` and its .md,
    and write its readouts to `readouts_path`; then each doc's sections from the claims and readouts (or,
    with `check`, fail when one differs). Returns what was done, a line each."""
    lines = []
    if summary_paths:
        named = [files.read_record(summary.record_path(p), summary.RECORD, "`mhd summarize` rewrites it")["runs"]
                 for p in summary_paths]
        run_dirs = sorted({Path(runs_root) / name for runs in named for name in runs})
        stem = str(claims_path).removesuffix(".csv")
        checked, _ = claims_table.write(summary_paths, defaults, stem, run_dirs, budget_paths=budget_paths)
        runs = readouts(summary.read_many(summary_paths), defaults)
        files.write_text(readouts_path, runs.to_csv(index=False))
        lines += [f"{len(checked)} claims -> {stem}.csv, {stem}.md", f"{len(runs)} runs -> {readouts_path}"]
    made = sections(*read(claims_path, readouts_path))
    stale = {doc: rewrite(doc, made, check) for doc in docs}
    lines += [f"{doc}: " + (("differs in " if check else "rewrote ") + ", ".join(c) if c else "up to date")
              for doc, c in stale.items()]
    if check and any(stale.values()):
        raise MHDError("; ".join(lines) + ": the docs' numbers differ from the files; run mhd numbers without --check")
    return lines
