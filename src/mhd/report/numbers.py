"""The docs' numbers, generated: every number of the reference in docs/results.md comes from two
committed files, `mhd numbers` writes the tables between markers in the docs, and
tests/test_numbers.py checks that the docs hold what the files give:

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
    step) of the best head's shared accuracy (the head chosen on validation, read on test), the
    ensemble's, the main head's private accuracy, and how many seeds converged (summary.convergence)."""
    lines = ["| setting | seeds | shared, best head | shared, ensemble | private, main head | converged |",
             "|---|---|---|---|---|---|"]
    for name in _order(runs.setting):
        t = runs[runs.setting == name]
        marks = [f"{n} {word}" for n, word in ((int((t.diverged == True).sum()), "diverged"),  # noqa: E712
                                               (int(t.converged.isna().sum()), "not judged")) if n]
        converged = f"{int((t.converged == True).sum())} of {len(t)}" + (f" ({', '.join(marks)})" if marks else "")  # noqa: E712
        lines.append(f"| {name} | {t.seed.nunique()} | {_f(t.shared_best.mean())} | {_f(t.shared_ensemble.mean())} | "
                     f"{_f(t.private_main.mean())} | {converged} |")
    return "\n".join(lines)


def convergence_text(runs: pd.DataFrame) -> str:
    lists = claims_table.convergence_lists(runs)
    done = len(runs) - sum(len(v) for v in lists.values())
    text = (f"{done} of {len(runs)} runs converged (on validation, the best head's shared accuracy and the main "
            f"head's private accuracy each moved by less than {summary.CONVERGED_WITHIN:g} over the last quarter of "
            f"training). Not converged: {', '.join(lists['unconverged']) or 'none'}. Diverged (the best head's "
            f"shared accuracy on validation ends below chance plus {summary.NEAR_CHANCE:g}): "
            f"{', '.join(lists['diverged']) or 'none'}.")
    if lists["unjudged"]:
        text += (f" Not judged (fewer than two evaluations in the last quarter, or no validation accuracy): "
                 f"{', '.join(lists['unjudged'])}.")
    return text


def _claims_table(claims: pd.DataFrame, columns: tuple[str, ...]) -> str:
    return "\n".join(claims_table.table_lines(claims, columns))


SECTIONS = {  # name -> what it holds, from (claims.csv, readouts.csv)
    "claims": lambda c, r: _claims_table(c, ("measure", "note")),
    "settings": lambda c, r: settings_table(r),
    "convergence": lambda c, r: convergence_text(r),
}


CLAIMS_COLUMNS = ("claim", "measure", "effect", "ci_low", "ci_high", "seeds", "verdict", "note")


def read(claims_path: str | Path, readouts_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claims and readouts the docs are written from, each checked for the columns the tables read."""
    out = []
    for path, what, columns in ((claims_path, "a claims.csv (mhd claims)", CLAIMS_COLUMNS),
                                (readouts_path, "a readouts.csv (mhd numbers --summary)", COLUMNS)):
        try:
            table = pd.read_csv(path, keep_default_na=True)
        except (OSError, ValueError) as exc:
            raise MHDError(f"{path}: cannot read {what}: {exc}") from exc
        missing = [c for c in columns if c not in table.columns]
        if "budget_robust" in table and "steps_at_budget" not in table:
            missing.append("steps_at_budget")
        if missing or not len(table):
            raise MHDError(f"{path}: not {what}: " + (f"it lacks the columns {missing}" if missing else "it has no rows")
                           + "; mhd numbers --summary writes both")
        out.append(table)
    return out[0], out[1]


def sections(claims: pd.DataFrame, runs: pd.DataFrame) -> dict[str, str]:
    return {name: make(claims, runs) + "\n" for name, make in SECTIONS.items()}


# anything that looks like a marker: each must be one of a well-formed pair, or the doc is refused
LOOSE = re.compile(r"<!--\s*(end\s+)?numbers?\b.*?(?:-->|$)", re.S | re.M)
OPEN = re.compile(r"<!-- numbers: ([\w-]+) -->\r?\n")
END = "<!-- end numbers -->"


def parse(doc: str | Path) -> tuple[str, list[tuple[str, int, int]]]:
    """`doc`'s text (line endings as they are) and its sections: (name, start, end) of each body between
    `<!-- numbers: NAME -->` (then a line end) and `<!-- end numbers -->`. A marker that is not one of a
    pair, a name not in SECTIONS, or a doc without a section is an error naming the doc and line."""
    try:
        with open(doc, encoding="utf-8", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise MHDError(f"--docs {doc}: cannot be read ({exc})") from exc
    found, open_at = [], None
    for m in LOOSE.finditer(text):
        where = f"--docs {doc}, line {text.count(chr(10), 0, m.start()) + 1}"
        opener = OPEN.match(text, m.start())
        if m.group(1) is None and opener and opener.group(0).rstrip() == m.group(0):
            if open_at is not None:
                raise MHDError(f"{where}: a section opens before the one above ends with {END}")
            if opener.group(1) not in SECTIONS:
                raise MHDError(f"{where}: unknown numbers section {opener.group(1)!r}; allowed: {', '.join(SECTIONS)}")
            open_at = (opener.group(1), opener.end())
        elif m.group(0) == END and open_at is not None:
            found.append((open_at[0], open_at[1], m.start()))
            open_at = None
        else:
            raise MHDError(f"{where}: {m.group(0)[:60]!r} is not a well-formed marker; a section is "
                           f"`<!-- numbers: NAME -->`, a line end, its table, then `{END}`")
    if open_at is not None:
        raise MHDError(f"--docs {doc}: section {open_at[0]!r} has no {END}")
    if not found:
        raise MHDError(f"--docs {doc}: no `<!-- numbers: NAME -->` ... `{END}` section to write")
    return text, found


def rewritten(doc: str | Path, made: dict[str, str]) -> tuple[str, str, list[str]]:
    """`doc`'s text, the text with each section's body from `made` (in the doc's line endings), and the
    names of the sections whose body differed (each once)."""
    text, found = parse(doc)
    newline = "\r\n" if "\r\n" in text else "\n"
    pieces, at, changed = [], 0, []
    for name, start, end in found:
        body = made[name].replace("\n", newline)
        if text[start:end] != body and name not in changed:
            changed.append(name)
        pieces += [text[at:start], body]
        at = end
    return text, "".join(pieces) + text[at:], changed


def write(claims_path: str | Path, readouts_path: str | Path, docs: list[str | Path], check: bool = False,
          summary_paths: list[str | Path] | None = None, defaults: dict | None = None,
          budget_paths: list[str | Path] | None = None, runs_root: str | Path = "results/runs") -> list[str]:
    """`mhd numbers`: given `summary_paths` (a study's parts, read as one) and its `defaults` (the config's
    `run`), first check its claims (`mhd claims`, against the runs the summaries name under `runs_root` as
    they are now, and at the second budget of `budget_paths` where given) into `claims_path` and its .md,
    and write its readouts to `readouts_path`; then each doc's sections from the claims and readouts (or,
    with `check`, write nothing and fail when one differs). Every doc is parsed before anything is
    written. Returns what was done, a line each."""
    if check and summary_paths:
        raise MHDError("--check writes nothing, and --summary writes the claims and readouts: give one of them")
    if budget_paths and not summary_paths:
        raise MHDError("--budget-summary is read with --summary (the claims are checked at both budgets)")
    for doc in docs:
        parse(doc)
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
    texts = {doc: rewritten(doc, made) for doc in docs}
    for doc, (old, new, changed) in texts.items():
        if changed and not check:
            files.write_text(doc, new)
        lines.append(f"{doc}: " + (("differs in " if check else "rewrote ") + ", ".join(changed) if changed
                                   else "up to date"))
    if check and any(changed for _, _, changed in texts.values()):
        raise MHDError("; ".join(lines) + f": the docs' numbers differ from {claims_path} and {readouts_path}; "
                       f"run mhd numbers without --check to write them")
    return lines
