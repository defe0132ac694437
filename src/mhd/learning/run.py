"""`train()`: one run from its artefacts to results/runs/<id>/. Builds the federation and the trainer,
resumes from the checkpoint, steps, evaluates and checkpoints every `eval_every` steps, and writes
metrics.csv and run.json (the provenance)."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import files, provenance
from ..errors import ConfigError
from . import budget, checkpoint, methods, precision, run_folder
from .evaluation import evaluate
from .federation import Federation
from .trainer import Trainer


def metrics_text(rows: list[list]) -> str:
    """metrics.csv's bytes: a row per step, client, head and metric (floats as repr: exact)."""
    lines = ["step,client,head,metric,value"] + [f"{s},{c},{h},{m},{v!r}" for s, c, h, m, v in rows]
    return "\n".join(lines) + "\n"


def headline(rows: list[list]) -> tuple[float, float]:
    """At one evaluation, the mean over clients of the shared accuracy of the shared readout's head
    (run_folder.best_heads) and of the private accuracy of the main head."""
    accuracy = pd.DataFrame([(s, c, h, m, v) for s, c, h, m, v in rows if m in ("shared_acc", "val_shared_acc")],
                            columns=["step", "client", "head", "metric", "value"])
    shared = accuracy.pivot_table(index=["step", "client", "head"], columns="metric", values="value").reset_index()
    shared = shared.assign(run="")
    best = run_folder.best_heads(shared).iloc[0]
    private = [v for s, c, h, m, v in rows if m == "private_acc" and h == "0"]
    return float(shared[shared["head"] == best].shared_acc.mean()), float(np.mean(private))


def _writable(out: Path) -> None:
    """Create `out` and try a write there: a new file of a random name, so no planted link is followed."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"output folder {out} cannot be written: {exc.strerror}") from exc


@contextmanager
def _only_writer(out: Path):
    """Hold `out/.lock` for the whole run: a second `mhd train` on the same folder is refused. The lock
    is the kernel's (flock), so a killed run leaves none behind."""
    try:
        fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {out / '.lock'}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another `mhd train` is writing to {out} (it holds {out / '.lock'}); wait for it "
                              f"to end, or choose another --out") from None
        yield
    finally:
        os.close(fd)


def _resume(trainer: Trainer, ckpt: Path) -> checkpoint.Loaded | None:
    """Load the checkpoint if there is one trained on the same inputs by the same code; one trained on
    others (a new split, graph or dataset copy under the same run config) or by other code (an edit of
    the package since) is set aside, and the run starts over: a run is never continued by code other
    than the code that began it."""
    if not ckpt.exists():
        return None
    loaded = checkpoint.load(trainer, ckpt, same_code=True)
    if loaded.why is None:
        return loaded
    aside = ckpt.with_name("checkpoint.stale.pt")
    os.replace(ckpt, aside)
    print(f"{ckpt}: {loaded.why}: set aside as {aside.name}; this run starts from step 0", flush=True)
    return None


def train(run: dict, prepared, split_dir, graph_dir, out_dir, *, device: str = "auto", progress: bool | None = None,
          stop_after: int | None = None) -> dict:
    """Train one run into `out_dir` (metrics.csv, checkpoint.pt, run.json), resuming from
    `out_dir/checkpoint.pt` when it exists. `run` is effective (config.validate_run gives it).
    `stop_after`: stop after that many steps of this call (tests use it to interrupt a run)."""
    if not methods.is_effective(run):
        raise ConfigError(f"run of method {run['method']!r} does not carry its method's preset "
                          f"{methods.PRESETS[run['method']]}; pass it through config.validate_run first")
    out = Path(out_dir)
    _writable(out)
    with _only_writer(out):
        for leftover in files.leftovers(out):  # the temporary file of a write that was killed
            leftover.unlink()
        return _train(run, prepared, split_dir, graph_dir, out, device, progress, stop_after)


def outcome(run: dict, record: dict, out_dir) -> str | None:
    """What `mhd train` says of the record `train` returned: where a stopped run resumes, or what was
    trained how fast; nothing when a finished run had nothing to train (`train` said so itself)."""
    if "stopped_at" in record:
        return f"stopped at step {record['stopped_at']} as asked; rerun the same command to resume"
    if record.get("nothing_to_train"):
        return None
    return (f"{run['method']} H={run['heads']}: {run['steps']} steps in {record['wall_time_s']:.1f} s "
            f"({record['images_per_s']} images/s) on {record['device']['device']} -> {out_dir}")


def _train(run, prepared, split_dir, graph_dir, out: Path, device, progress, stop_after) -> dict:
    from tqdm.auto import tqdm

    fed = Federation.load(run, prepared, split_dir, graph_dir, device)
    trainer = Trainer(run, fed)
    ckpt = out / "checkpoint.pt"
    loaded = _resume(trainer, ckpt)
    if trainer.step >= run["steps"]:
        return _finished(out, trainer, loaded.record)
    start, t0, eval_s, record = trainer.step, time.perf_counter(), 0.0, None
    images_per_step = budget.images_per_step(run, len(trainer.models))
    bar = tqdm(total=run["steps"], initial=start, disable=None if progress is None else not progress,
               desc=f"{run['method']} H={run['heads']}", unit="step", dynamic_ncols=True)
    while trainer.step < run["steps"]:
        trainer.train_step()
        bar.update(1)
        if trainer.step % run["eval_every"] == 0 or trainer.step == run["steps"]:
            e0 = time.perf_counter()
            trainer.check_finite()
            rows = evaluate(trainer)
            trainer.metrics += rows
            text = metrics_text(trainer.metrics)
            files.write_text(out / "metrics.csv", text)
            if trainer.step == run["steps"]:  # the record goes into the last checkpoint with the state it describes
                now = time.perf_counter()
                record = _record(run, fed, trainer, prepared, split_dir, graph_dir, start, now - t0,
                                 eval_s + now - e0, images_per_step, files.sha256_bytes(text.encode()))
            checkpoint.save(trainer, ckpt, record)
            eval_s += time.perf_counter() - e0
            best, private = headline(rows)
            bar.set_postfix(shared_best_head=f"{best:.3f}", private_main=f"{private:.3f}")
            if bar.disable:  # logs get one line per evaluation instead of a bar
                print(f"step {trainer.step}/{run['steps']}: shared accuracy of the best head {best:.3f}, "
                      f"private accuracy of the main head {private:.3f}", flush=True)
        if stop_after is not None and trainer.step - start >= stop_after:
            break
    bar.close()
    if trainer.step < run["steps"]:
        return {"stopped_at": trainer.step}
    files.write_json(out / "run.json", record)
    return record


def _record(run, fed, trainer, prepared, split_dir, graph_dir, start, wall, eval_s, images_per_step,
            metrics_sha256) -> dict:
    """run.json: what was trained, on which inputs, by which code and packages, on which device, how
    fast, and the hash of the metrics.csv it wrote (a cut or edited metrics.csv is never summarised)."""
    steps_done = trainer.step - start
    meta = fed.meta
    return {
        "run": run, "seed": run["seed"], "config_hash": checkpoint.config_hash(run),
        "inputs": {"sha256": fed.inputs, "prepared_sha256": meta["data"]["sha256"], "split": meta["split"]["sha256"],
                   "split_params": meta["split"]["params"], "graph": meta["graph"]["params"],
                   "paths": {"prepared": str(prepared), "split": str(split_dir), "graph": str(graph_dir)}},
        "versions": provenance.versions(), "code": provenance.code_version(),
        "device": provenance.device_info(fed.device), "engine": trainer.engine.name,
        # the precision the run computed in (also in `run`), and whether this device computes it natively
        "precision": {"computed_in": run["precision"],
                      "native": precision.native_bf16(fed.device.type) if run["precision"] == "bf16" else True},
        "wall_time_s": round(wall, 3), "steps_this_call": steps_done, "resumed_from_step": start,
        "images_per_s": round(steps_done * images_per_step / wall, 1) if wall > 0 and steps_done else None,
        # what the workflow benchmark adds up: images trained per step, and the part of wall_time_s spent
        # evaluating, writing metrics and checkpointing
        "images_per_step": images_per_step, "eval_s": round(eval_s, 3),
        "metrics_sha256": metrics_sha256,
    }


def _finished(out: Path, trainer: Trainer, record: dict | None) -> dict:
    """A rerun of a run whose checkpoint is finished, by this code on these inputs: nothing to train.
    metrics.csv and run.json are restored from the checkpoint as the training that finished it wrote
    them (the same bytes; its wall time, speed and code, never a new record of a call that trained
    nothing), each rewritten only where it differs."""
    if record is None:
        raise ConfigError(f"{out / 'checkpoint.pt'} is finished but holds no training record; delete it to "
                          f"train the run again from step 0")
    text = metrics_text(trainer.metrics)
    if files.sha256_bytes(text.encode()) != record.get("metrics_sha256"):
        raise ConfigError(f"{out / 'checkpoint.pt'} is finished but its metrics do not match the hash of its training "
                          f"record; delete it to train the run again from step 0")
    for path, content in ((out / "metrics.csv", text), (out / "run.json", files.json_text(record))):
        if not path.exists() or path.read_text() != content:
            files.write_text(path, content)
    print(f"{out}: finished at step {trainer.step} by this code (sha256 {record['code']['sha256'][:12]}, commit "
          f"{record['code']['commit']}); nothing to train, metrics.csv and run.json are the ones that training "
          f"wrote. To train it again from step 0, delete {out / 'checkpoint.pt'}", flush=True)
    return {**record, "nothing_to_train": True}
