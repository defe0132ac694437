"""The method of a run and its baselines, as the settings each one fixes.

mhd: chained multi-head distillation [paper]. isolated: H = 0, no distillation [paper].
single_head: naive distillation, H = 0, the main head distils from the neighbours' main heads.
mean_target: as single_head with the mean of the neighbours' predictions (FedMD / DS-FL-like).
fedavg: H = 0, weights averaged over all clients every `fedavg_every` steps (a reference: it
shares weights). centralized: one model on the pooled private data (the upper bound).
"""

from __future__ import annotations

from .errors import ConfigError

METHODS = ("mhd", "isolated", "single_head", "mean_target", "fedavg", "centralized")
_NO_DISTILLATION = {"heads": 0, "nu_aux": 0.0, "nu_emb": 0.0, "nu_main": 0.0}
PRESETS = {
    "mhd": {},
    "isolated": _NO_DISTILLATION,
    "single_head": {"heads": 0, "nu_aux": 0.0, "nu_emb": 0.0, "nu_main": 1.0},
    "mean_target": {"heads": 0, "nu_aux": 0.0, "nu_emb": 0.0, "nu_main": 1.0, "teacher": "mean"},
    "fedavg": _NO_DISTILLATION,
    "centralized": _NO_DISTILLATION,
}


def effective(run: dict) -> dict:
    """The run's settings after its method's preset: what the training actually uses."""
    method = run["method"]
    if method not in PRESETS:
        raise ConfigError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    out = {**run, **PRESETS[method]}
    if method == "mhd" and out["heads"] < 1:
        raise ConfigError(f"method mhd with heads = {out['heads']}: MHD needs at least one auxiliary head "
                          f"(heads >= 1); heads = 0 is the single_head or isolated baseline")
    archs = architectures(out)
    if method == "fedavg" and len(set(archs)) > 1:
        raise ConfigError(f"method fedavg averages weights, so every client needs the same architecture; "
                          f"got architectures {archs}")
    return out


def architectures(run: dict) -> list[str]:
    """One architecture per client: `architectures` repeated over the clients (client i gets entry
    i mod its length, so [cnn_small, cnn] alternates at any client count), else `architecture`."""
    archs = run.get("architectures")
    if not archs:
        return [run["architecture"]] * run["clients"]
    if len(archs) > run["clients"]:
        raise ConfigError(f"architectures lists {len(archs)} entries ({archs}) for clients = {run['clients']}; "
                          f"give at most one per client (a shorter list repeats), or leave it empty")
    return [archs[i % len(archs)] for i in range(run["clients"])]


def uses_public(run: dict) -> bool:
    return run["nu_aux"] > 0 or run["nu_emb"] > 0 or run["nu_main"] > 0
