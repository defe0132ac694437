"""A study: the name under which one config's summary, claims, experiment specs, figures and logs are
written, so that two configs run in one checkout never write the same path.

Runs are not a study's: `results/runs/<run id>/` is named by the run's settings, so a study reuses every
run another study has trained with equal settings. The default study (the embedded config) writes where
the README and dvc.yaml say (`results/summary.csv`, `figures/<experiment>.png`); any other study writes
under `results/studies/<study>/`, `figures/<study>/` and `logs/studies/<study>/`.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import ConfigError

DEFAULT = "default"
# a study's name is a folder name, a wildcard-free path part and a command word: nothing a shell reads
PATTERN = r"[a-z0-9][a-z0-9_-]*"


def of_overlay(path: str | Path) -> str:
    """The study of an overlay that does not name one: its file's stem, so that `--configfile
    config/my-ablation.yaml` writes under `my-ablation` and never over the default study's outputs."""
    stem = re.sub(r"[^a-z0-9_-]+", "-", Path(path).stem.lower()).strip("-_")
    if not stem:
        raise ConfigError(f"config {path}: its file name gives no study name; set `study: NAME` in it "
                          f"(allowed: {PATTERN})")
    return stem


def results(name: str) -> str:
    """The study's results folder (summary, claims, experiment specs, DVC metrics and curves)."""
    return "results" if name == DEFAULT else f"results/studies/{name}"


def figures(name: str) -> str:
    """The study's figures folder."""
    return "figures" if name == DEFAULT else f"figures/{name}"


def logs(name: str) -> str:
    """The study's logs of its own jobs (figures, specs, summary, claims); data and train logs are shared."""
    return "logs" if name == DEFAULT else f"logs/studies/{name}"
