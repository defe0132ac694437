"""Checkpoints: a trainer's whole state (models, optimiser per client, teachers, RNG, metrics so far)
in one file, written atomically, loaded only into a trainer of the same run config on the same
inputs (prepared data, split and graph, by their hashes). Each also records the hash of the code that
wrote it (`provenance.code_sha256`) and, once the run is finished, the training record that run.json
gives (so that a rerun with nothing left to train restores it rather than writing a new one)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import NamedTuple

import torch

from ..data import files, provenance
from ..errors import DataError
from .teachers import Teachers
from .vectorised import from_client_layout, to_client_layout

# how a run executes, not what it computes (equal within float tolerance): a checkpoint resumes
# across them, e.g. a run begun vectorised on a GPU goes on with the loop on a CPU
EXECUTION_KEYS = ("engine", "compile")


def config_hash(run: dict) -> str:
    what = {k: v for k, v in run.items() if k not in EXECUTION_KEYS}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def state(trainer, record: dict | None = None) -> dict:
    return {"step": trainer.step, "config_hash": config_hash(trainer.run), "inputs": trainer.fed.inputs,
            "code": provenance.code_sha256(), "record": record,
            "models": trainer.models.state_dict(), "projections": trainer.projections.state_dict(),
            "optimizer": to_client_layout(trainer.opt.state_dict(), trainer.layout), "rng": torch.get_rng_state(),
            "metrics": trainer.metrics, "teachers": trainer.teachers.state(),
            "loss_sum": trainer.loss_sum.cpu(), "loss_steps": trainer.loss_steps,
            "densities": [d.state() for d in trainer.densities], "precision": trainer.precision.cpu()}


def save(trainer, path: Path, record: dict | None = None) -> None:
    """`record`: the finished run's training record (run.json), kept with the state it describes."""
    buf = io.BytesIO()
    torch.save(state(trainer, record), buf)
    files.write_bytes(path, buf.getvalue())


class Loaded(NamedTuple):
    """What `load` did: `why` is None when the trainer was restored, else why nothing was (a phrase);
    `record` is the training record saved with a finished run (None before the run finished)."""
    why: str | None
    record: dict | None


def load(trainer, path: Path, same_code: bool = False) -> Loaded:
    """Restore `trainer` from `path`, or restore nothing and say why: the checkpoint was trained on
    other inputs than the trainer's, or records none (checkpoints written before they recorded their
    inputs); with `same_code`, also when it was written by other code than this package's (or records
    none): training never continues another code's state. Refuse a file that is not a checkpoint of
    this run config."""
    try:
        saved = torch.load(io.BytesIO(path.read_bytes()), weights_only=True, map_location=trainer.device)
    except Exception as exc:  # truncated zip, tampered pickle, ...: never executed, always refused
        raise DataError(f"checkpoint {path} cannot be loaded ({_reason(exc)}); it is truncated or not a "
                        f"checkpoint of this project. Delete it to start the run from step 0") from exc
    if saved.get("config_hash") != config_hash(trainer.run):
        raise DataError(f"checkpoint {path} belongs to a different run config (hash {saved.get('config_hash')}, "
                        f"this run {config_hash(trainer.run)}); delete it or choose another --out")
    if saved.get("inputs") != trainer.fed.inputs:
        return Loaded(f"it was trained on other inputs than {trainer.fed.inputs} (or records none)", None)
    if same_code and saved.get("code") != provenance.code_sha256():
        return Loaded(f"it was written by other code (code sha256 {str(saved.get('code'))[:12]}, this package "
                      f"{provenance.code_sha256()[:12]}; or records none)", None)
    try:
        trainer.models.load_state_dict(saved["models"])
        trainer.projections.load_state_dict(saved["projections"])
        trainer.opt.load_state_dict(from_client_layout(saved["optimizer"], trainer.layout))
    except (RuntimeError, KeyError, ValueError, IndexError) as exc:  # shapes that do not fit this run's models
        raise DataError(f"checkpoint {path} has this run's config hash but does not fit its models "
                        f"({_reason(exc)}); delete it to start the run from step 0") from exc
    torch.set_rng_state(saved["rng"].cpu())
    trainer.step, trainer.metrics = saved["step"], [list(row) for row in saved["metrics"]]
    trainer.teachers = Teachers.from_state(saved["teachers"], trainer.device)
    trainer.loss_sum, trainer.loss_steps = saved["loss_sum"].to(trainer.device), saved["loss_steps"]
    for density, state in zip(trainer.densities, saved["densities"]):
        density.load(state, trainer.device)
    trainer.precision = saved["precision"].to(trainer.device)
    return Loaded(None, saved.get("record"))


def _reason(exc: Exception) -> str:
    """The exception's kind and first line, without PyTorch's advice to load untrusted files unsafely."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "weights_only" in first or "Weights only load failed" in first:
        first = "it holds objects other than tensors, which are never unpickled"
    return f"{type(exc).__name__}: {first[:160]}" if first else type(exc).__name__
