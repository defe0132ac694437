"""Gather runs into one table: a row per run, client, head and step, every run setting a column;
read it back checked; its last-step selections and each run's convergence."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from ..data import files
from ..errors import DataError, MHDError
from ..learning import methods, run_folder

NAN = float("nan")
PER_CLIENT = run_folder.CLIENT_METRICS  # metrics of a client, not of a head
# what a summary must hold to be read (the run's settings that say which rows it must have, and the readouts)
NEEDED = ("run", "step", "client", "head", "shared_acc", "private_acc", "val_shared_acc", "val_private_acc", "method",
          "heads", "seed", "steps", "eval_every", "clients")


def load_run(run_dir: str | Path) -> pd.DataFrame:
    """A trained run's rows, one per step, client and head, once its result is checked whole
    (learning/run_folder.py: the metrics.csv its run.json recorded, every evaluation, client and head)."""
    run_dir = Path(run_dir)
    run, long = run_folder.load_metrics(run_dir)
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
    names = [Path(d).name for d in run_dirs]
    if len(set(names)) != len(names):
        raise DataError(f"runs named twice: {sorted({n for n in names if names.count(n) > 1})}; a run is summarised once")
    tables, refused = [], []
    for d in run_dirs:
        try:
            tables.append(load_run(d))
        except DataError as exc:
            refused.append(str(exc))
    if len(refused) == 1:
        raise DataError(refused[0])
    if refused:  # every refused run at once, not one per attempt
        raise DataError(f"{len(refused)} of {len(run_dirs)} runs cannot be summarised; `snakemake --forcerun train` "
                        f"redoes them all (from finished checkpoints of this code in seconds, else from step 0):\n  "
                        + "\n  ".join(refused[:20]) + (f"\n  ... and {len(refused) - 20} more" if len(refused) > 20 else ""))
    table = pd.concat(tables, ignore_index=True)
    return table.merge(convergence(table), on="run", how="left")


def record_path(path: str | Path) -> Path:
    """The summary's record beside it: results/summary.csv -> results/summary.json."""
    return Path(path).with_suffix(".json")


def write(table: pd.DataFrame, run_dirs: list[str | Path], out: str | Path) -> None:
    """The summary and its record (`record_path`): the summary's sha256 and, per run, the sha256 of the
    metrics.csv it summarises (from the run's run.json), so that a reader can check the summary against
    itself and against the runs as they are now."""
    text = table.to_csv(index=False)
    records = {Path(d).name: json.loads(files.read_regular(Path(d) / "run.json", "a run's run.json")) for d in run_dirs}
    runs = {name: r["metrics_sha256"] for name, r in records.items()}
    code = {name: (r.get("code") or {}).get("sha256") for name, r in records.items()}
    files.write_text(out, text)
    files.write_json(record_path(out), {"sha256": files.sha256_bytes(text.encode()), "runs": runs, "code": code})


def code_note(path: str | Path) -> str:
    """'' when every run of the summary at `path` was trained by the training code of this checkout;
    else a sentence saying which code trained which runs, and how to retrain them (Snakemake does not
    rerun a finished job when the package changes, so a study can mix results of several versions)."""
    from ..data import provenance

    code = files.read_record(record_path(path), RECORD, "`mhd summarize` rewrites it").get("code") or {}
    now = provenance.code_sha256()
    other = sorted(name for name, sha in code.items() if sha != now)
    if not other:
        return ""
    versions = sorted({str(code[name])[:12] for name in other})
    return (f"{len(other)} of {len(code)} runs were trained by other training code than this checkout's "
            f"({now[:12]}): {', '.join(versions)} ({', '.join(other[:5])}{', ...' if len(other) > 5 else ''}); "
            f"`snakemake --cores 2 all_figures --forcerun train` retrains them with this code")


RECORD = {("sha256",): files.SHA256, ("runs",): files.MAPPING}


def read(path: str | Path, source: str, run_dirs: list[str | Path] | None = None) -> pd.DataFrame:
    """A summary written by `mhd summarize`, read back and checked: it is the file its record names (by
    sha256: nothing cut or edited since), and, given `run_dirs`, it summarises exactly those runs as they
    are now (each run's metrics.csv hash in its run.json as the record has it: none retrained since). A
    summary whose record was rewritten to match an edit is still refused when it was cut (not a whole
    last line, a line with other fields than the header) or cannot be read as a table."""
    redo = "`snakemake results/summary.csv` rewrites it"
    try:
        data = files.read_regular(path, "a summary written by mhd summarize")
        text = data.decode("utf-8")
    except (DataError, UnicodeDecodeError) as exc:
        raise DataError(f"{source}: cannot be read ({exc}); {redo}") from exc
    rec = files.read_record(record_path(path), RECORD, redo)
    if rec["sha256"] != files.sha256_bytes(data):
        raise DataError(f"{source} is not the summary mhd summarize wrote ({record_path(path).name} records another "
                        f"sha256): cut or edited since; {redo}")
    if run_dirs is not None:
        names = {Path(d).name: Path(d) for d in run_dirs}
        if set(names) != set(rec["runs"]):
            lost, foreign = sorted(set(names) - set(rec["runs"])), sorted(set(rec["runs"]) - set(names))
            raise DataError(f"{source} does not summarise its runs: missing {lost or 'none'}, not of this config "
                            f"{foreign or 'none'}; {redo}")
        for name, folder in sorted(names.items()):
            try:
                now = json.loads(files.read_regular(folder / "run.json", "a run's run.json")).get("metrics_sha256")
            except (DataError, ValueError, AttributeError) as exc:
                raise DataError(f"{source}: run {folder} has no readable run.json ({exc}); {redo}") from exc
            if now != rec["runs"][name]:
                raise DataError(f"{source} summarises other results of run {name} than {folder} holds now (trained "
                                f"again, or its metrics.csv changed, since); {redo}")
    rows = list(csv.reader(io.StringIO(text)))
    short = next((n for n, row in enumerate(rows[1:], 2) if len(row) != len(rows[0])), None)
    if not text.endswith("\n") or short is not None:
        where = f"line {short} has {len(rows[short - 1])} fields, the header {len(rows[0])}" if short else \
            "its last line is not whole"
        raise DataError(f"{source}: {where}: a row cut short or edited; `snakemake results/summary.csv` rewrites it")
    try:
        return pd.read_csv(io.StringIO(text), dtype={"head": str, "architectures": str})
    except ValueError as exc:
        raise DataError(f"{source}: not a table ({exc}); `snakemake results/summary.csv` rewrites it") from exc


def read_many(paths: list[str | Path], run_dirs: list[str | Path] | None = None,
              option: str = "--summary") -> pd.DataFrame:
    """Several summaries of one study (its parts, each written by `mhd summarize`) read as one table:
    each read back and checked as `read` and `check` do, given `run_dirs` against the runs its own
    record names (together they must be exactly `run_dirs`). A run in two parts is kept once when its
    rows are the same in both, and refused when they differ: two results under one run id. `option`:
    the command-line option that named the summaries, for the messages."""
    redo = "`snakemake results/summary.csv` rewrites it"
    tables, covered = [], set()
    for path in paths:
        source, mine = f"{option} {path}", None
        if run_dirs is not None:
            named = files.read_record(record_path(path), RECORD, redo)["runs"]
            mine = [d for d in run_dirs if Path(d).name in named]
            covered |= set(named)
        table = read(path, source, mine)
        check(table, source, [Path(d).name for d in mine] if mine is not None else None)
        tables.append((source, table))
    lost = sorted({Path(d).name for d in run_dirs or ()} - covered)
    if lost:
        raise DataError(f"no {option} summarises the runs {lost}; `mhd summarize` the part that holds them")
    kept, seen = [], {}
    for source, table in tables:
        for run, rows in table.groupby("run", sort=False):
            if run not in seen:
                seen[run] = (source, rows)
                kept.append(rows)
            elif not _same_rows(seen[run][1], rows):
                raise DataError(f"run {run} is in {seen[run][0]} and in {source} with different rows: two results "
                                f"under one run id; summarise it once")
    return pd.concat(kept, ignore_index=True, sort=False)


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    def key(t):
        return t.sort_values(["step", "client", "head"]).reset_index(drop=True).sort_index(axis=1)

    try:
        pd.testing.assert_frame_equal(key(a), key(b), check_dtype=False)
    except AssertionError:
        return False
    return True


def check(table: pd.DataFrame, source: str, runs: list[str] | None = None) -> None:
    """Refuse a summary (results/summary.csv, read back) that is not whole: a needed column missing or
    not of numbers, a run cut short (`run_folder.check_whole` on each run's rows), or, given `runs`,
    other runs than those it summarises."""
    missing = [c for c in NEEDED if c not in table.columns]
    if table.empty or missing:
        raise DataError(f"{source}: not a summary of runs (lacks the columns {missing or list(NEEDED)}); "
                        f"`mhd summarize` writes one")
    for column in ("step", "client", "heads", "seed", "steps", "eval_every", "clients", "shared_acc", "private_acc",
                   "val_shared_acc", "val_private_acc"):
        if not pd.api.types.is_numeric_dtype(table[column]):
            bad = table[column][pd.to_numeric(table[column], errors="coerce").isna()].iloc[0]
            raise DataError(f"{source}: column {column} must hold numbers, found {bad!r}; `mhd summarize` writes it")
    if runs is not None and set(table["run"].astype(str)) != set(runs):
        lost, foreign = sorted(set(runs) - set(table["run"])), sorted(set(table["run"]) - set(runs))
        raise DataError(f"{source} does not summarise its runs: missing {lost or 'none'}, not of this config "
                        f"{foreign or 'none'}; `snakemake results/summary.csv` rewrites it")
    for run, rows in table.groupby("run"):
        settings = rows.iloc[0][["steps", "eval_every", "clients", "heads"]].to_dict()
        run_folder.check_whole(rows, settings, f"{source}, run {run}")


CONVERGED_WITHIN = 0.01  # a run has converged when each readout moves less than 1 point ...
LAST_SHARE = 0.25        # ... over the last quarter of its training
# A run whose best head's shared accuracy ends within 5 points of chance (1/C, C classes) has
# diverged: a collapsed run moves as little as a converged one, so movement alone would pass it.
NEAR_CHANCE = 0.05
CONVERGENCE = ("run", "shared_movement", "private_movement", "last_quarter_movement", "diverged", "converged")


def _classes(rows: pd.DataFrame) -> int:
    """C, the run's number of classes: its per-class accuracy columns that hold numbers (0: none)."""
    return sum(1 for c in rows.columns if c.startswith("class_acc_") and rows[c].notna().any())


def _movement(curve: pd.Series) -> float:
    """max - min of a readout over the evaluations from 75 % of the steps on (the last included); NaN
    with fewer than two there."""
    tail = curve[curve.index >= (1 - LAST_SHARE) * curve.index.max()].dropna()
    return float(tail.max() - tail.min()) if len(tail) >= 2 else NAN


def convergence(table: pd.DataFrame) -> pd.DataFrame:
    """Per run, judged on the validation split (whether a run counts is a selection-like decision, so
    it reads validation, as every selection does): how far each readout moved over the last quarter
    of training (`_movement`), the shared accuracy of the best head (run_folder.best_heads; mean over
    clients) and the private accuracy of the main head, and the larger of the two; `diverged`: the best
    head's shared accuracy at the last evaluation is below 1/C + NEAR_CHANCE; `converged`: not diverged
    and both readouts moved less than 1 point (a diverged run has not converged). NaN (not judged):
    `diverged` without per-class columns (C unknown), `converged` where a readout has fewer than two
    evaluations in that quarter or divergence is not judged; both where the summary has no
    validation accuracy.

    Why both readouts and chance: the cosine schedule has cut the learning rate to a few % of its peak
    by the last quarter, so a readout can stand still there without having settled; the main head's
    private accuracy is the readout distillation erodes, and a run collapsed at chance stands still
    too. Annealing can still make a run look settled: the verdicts at two budgets (claims.write's
    budget summary) are what it cannot fake."""
    if "val_shared_acc" not in table or "val_private_acc" not in table:  # no validation: not judged
        return pd.DataFrame([{"run": run, **dict.fromkeys(CONVERGENCE[1:], NAN)} for run in pd.unique(table["run"])],
                            columns=list(CONVERGENCE))
    best = run_folder.best_heads(table)
    rows = []
    for run, t in table[table["head"] != "ensemble"].groupby("run"):
        shared = t[t["head"] == best[run]].groupby("step").val_shared_acc.mean()
        moved = (_movement(shared), _movement(t[t["head"] == "0"].groupby("step").val_private_acc.mean()))
        classes, end = _classes(t), shared.iloc[-1]
        diverged = bool(end < 1 / classes + NEAR_CHANCE) if classes and end == end else NAN
        settled = max(moved) < CONVERGED_WITHIN if not any(m != m for m in moved) else NAN  # NaN != NaN
        rows.append({"run": run, "shared_movement": moved[0], "private_movement": moved[1],
                     "last_quarter_movement": max(moved) if settled == settled else NAN, "diverged": diverged,
                     "converged": False if diverged is True else settled if diverged == diverged else NAN})
    return pd.DataFrame(rows, columns=list(CONVERGENCE))


def last_step(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last evaluation."""
    return table[table.step == table.groupby("run").step.transform("max")]


def heads_at_last_step(table: pd.DataFrame, auxiliary_only: bool = False) -> pd.DataFrame:
    """Each run's heads 0..H (not the ensemble) at its last evaluation; `auxiliary_only`: only the runs
    that have auxiliary heads (H >= 1, i.e. MHD)."""
    last = last_step(table)
    last = last[last["head"] != "ensemble"]
    return last[last.heads > 0] if auxiliary_only else last


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


def where(table: pd.DataFrame, conditions: list[str]) -> pd.DataFrame:
    """The rows whose column KEY holds VALUE (compared as text) for every KEY=VALUE in `conditions`
    (`mhd table --where`); none left is the user's error."""
    for cond in conditions:
        key, _, value = cond.partition("=")
        if key not in table.columns:
            raise MHDError(f"--where {cond}: no column {key!r}; columns: {', '.join(table.columns)}")
        table = table[table[key].astype(str) == value]
    if table.empty:
        raise MHDError(f"no rows match {' and '.join(conditions)}")
    return table


def headline_of(run_dirs: list[str | Path], conditions: list[str] = ()) -> str:
    """`mhd table`: `headline_table` of the runs' rows that meet `conditions` (see `where`)."""
    return headline_table(where(collect(run_dirs), list(conditions)))
