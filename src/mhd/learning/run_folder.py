"""The files of a run folder, results/runs/<run id>/: run.yaml (what to train and on which inputs),
metrics.csv (a row per evaluation step, client, head and metric) and run.json (the training record,
with metrics.csv's hash). Read here, and checked whole before anything reports a run: a metrics.csv
cut or edited after training, or one that stops before the run's last step or lacks a client or a
head, is refused, never summarised as the run's result. Also the shared readout's head of a run
(`best_heads`), which training logs and the report reads."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import yaml

from ..data import files
from ..errors import ConfigError, DataError
from ..yaml_loaders import Loader

METRICS_COLUMNS = ["step", "client", "head", "metric", "value"]
# every head of every client at every evaluation: on the test split and on the validation split
HEAD_METRICS = ("shared_acc", "private_acc", "val_shared_acc", "val_private_acc")
CLIENT_METRICS = ("bytes_sent", "train_loss")  # every client at every evaluation (head "-")
INPUTS = ("prepared", "split", "graph")


def redo(run_dir: Path) -> str:
    """How to get a whole result of a run again."""
    return (f"`snakemake --forcerun {run_dir / 'metrics.csv'}` redoes it: rewritten from its checkpoint in seconds "
            f"when that is finished and of this code, trained again from step 0 otherwise (as every run trained "
            f"before run.json recorded metrics.csv's hash)")


def read_run_file(path: str | Path) -> tuple[dict, dict]:
    """RUN.yaml, as the workflow writes it: {run: {...every run key}, inputs: {prepared, split, graph}}.
    Returns (run, inputs), the run as written: `config.load_run_file` reads it here and validates the run
    (what training takes); a summary takes the run as it was trained."""
    path = Path(path)
    try:  # a regular file only (a FIFO would block); read as every config file: 1e-3 is a number
        spec = yaml.load(files.read_regular(path, "a run config (RUN.yaml)").decode("utf-8"), Loader=Loader)
    except (DataError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read run config {path}: {exc}") from exc
    if not isinstance(spec, dict) or set(spec) != {"run", "inputs"}:
        found = sorted(spec) if isinstance(spec, dict) else repr(spec)
        raise ConfigError(f"run config {path} must have exactly the keys 'run' and 'inputs' (prepared, split, "
                          f"graph); found {found}")
    run, inputs = spec["run"], spec["inputs"]
    if not isinstance(run, dict):
        raise ConfigError(f"run config {path}: run must map every run key to its value, found {run!r}")
    if not isinstance(inputs, dict) or not all(isinstance(inputs.get(k), str) for k in INPUTS):
        raise ConfigError(f"run config {path}: inputs must map {', '.join(INPUTS)} to paths, found {inputs!r}")
    return run, inputs


def evaluation_steps(steps: int, eval_every: int) -> list[int]:
    """The steps a run evaluates at (learning/run.py): every `eval_every` steps and the last."""
    return sorted({*range(eval_every, steps + 1, eval_every), steps})


def best_heads(rows: pd.DataFrame) -> pd.Series:
    """The shared readout's head of each run: of its heads 0..H (not the ensemble), the one with the
    highest mean VALIDATION shared accuracy over clients at the run's last evaluation, chosen on the
    validation split so that the test split reporting its accuracy never chose it. `rows`: a row per
    run, step, client and head with its val_shared_acc (a summary, or one evaluation of a run in
    training). On a tie, the first head in the heads' order as text."""
    last = rows[rows.step == rows.groupby("run").step.transform("max")]
    last = last[last["head"] != "ensemble"]
    means = last.groupby(["run", "head"]).val_shared_acc.mean().reset_index()
    return means.loc[means.groupby("run").val_shared_acc.idxmax()].set_index("run")["head"]


def check_whole(long: pd.DataFrame, run: dict, source: str) -> None:
    """Refuse a run's metrics (metrics.csv's long rows, or a summary's rows of one run: then `long` has
    a column per metric) unless they are whole: evaluated at exactly the run's evaluation steps, the
    last being its `steps`, each with every client and, for the accuracies, every head (0..H and the
    ensemble), once, with finite values."""
    try:
        steps, every, clients, heads = (int(run[k]) for k in ("steps", "eval_every", "clients", "heads"))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{source}: its run lacks a whole steps, eval_every, clients or heads ({exc})") from exc
    expected = evaluation_steps(steps, every)
    wide = "metric" not in long.columns
    found = sorted(pd.unique(long["step"]))
    if found != expected:
        last = found[-1] if found else None
        raise DataError(f"{source}: not a whole run: evaluated at {len(found)} steps (last {last}), the run has "
                        f"{len(expected)} (every {every} steps to step {steps})")
    head_names = [str(h) for h in range(heads + 1)] + ["ensemble"]
    for metric in HEAD_METRICS + CLIENT_METRICS:
        names = head_names if metric in HEAD_METRICS else ["-"]
        if wide:
            if metric not in long.columns:
                raise DataError(f"{source}: not a whole run: no {metric} column")
            # a summary carries a client's metrics on each of its head rows: read them on head 0's
            on = head_names if metric in HEAD_METRICS else ["0"]
            rows = long[long["head"].isin(on) & long[metric].notna()][["step", "client", "head", metric]]
            rows = rows.rename(columns={metric: "value"})
            if metric in CLIENT_METRICS:
                rows = rows.assign(head="-")
        else:
            rows = long[long["metric"] == metric]
        want = len(expected) * clients * len(names)
        keys = rows[["step", "client", "head"]].astype(str).drop_duplicates()
        complete = (len(rows) == want == len(keys) and set(rows["head"].astype(str)) == set(names)
                    and set(pd.to_numeric(rows["client"], errors="coerce")) == set(range(clients)))
        if not complete:
            raise DataError(f"{source}: not a whole run: {len(rows)} {metric} rows, expected {want} ({len(expected)} "
                            f"evaluations x {clients} clients x {len(names)} heads, each once)")
        values = pd.to_numeric(rows["value"], errors="coerce")
        if not values.map(lambda v: v == v and abs(v) != float("inf")).all():
            raise DataError(f"{source}: {metric} holds values that are not finite numbers")


def load_metrics(run_dir: str | Path) -> tuple[dict, pd.DataFrame]:
    """A trained run's (run, metrics.csv rows), checked: metrics.csv is the one its run.json recorded
    (by hash) and whole (`check_whole`). Anything else is a DataError that says how to redo the run."""
    run_dir = Path(run_dir)
    run, _ = _read(run_dir)
    metrics, record_path = run_dir / "metrics.csv", run_dir / "run.json"
    try:
        data = files.read_regular(metrics, "a run's metrics.csv")
        record = json.loads(files.read_regular(record_path, "a run's run.json"))
    except (DataError, ValueError) as exc:
        raise DataError(f"run {run_dir} is incomplete ({exc}); {redo(run_dir)}") from exc
    recorded = record.get("metrics_sha256") if isinstance(record, dict) else None
    if recorded != files.sha256_bytes(data):
        why = "records no hash of it (written before run.json did)" if recorded is None else "records another hash"
        raise DataError(f"{metrics} is not the file its training wrote: {record_path} {why}; it was cut or "
                        f"edited since. {redo(run_dir)}")
    try:
        long = pd.read_csv(io.BytesIO(data), dtype={"head": str})
    except ValueError as exc:
        raise DataError(f"{metrics} cannot be read as a table ({exc}); {redo(run_dir)}") from exc
    if list(long.columns) != METRICS_COLUMNS:
        raise DataError(f"{metrics}: columns {list(long.columns)}, a run's metrics have {METRICS_COLUMNS}")
    check_whole(long, run, str(metrics))
    return run, long


def _read(run_dir: Path) -> tuple[dict, dict]:
    try:
        return read_run_file(run_dir / "run.yaml")
    except ConfigError as exc:
        raise DataError(f"run {run_dir}: {exc}; {redo(run_dir)}") from exc
