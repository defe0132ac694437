"""The methods: what each fixes in a run (its preset) and where it leaves the shared loop (its hooks).
Adding a method touches this file only (and the method names of the config schema).

mhd: chained multi-head distillation [paper]. isolated: H = 0, no distillation [paper].
single_head: naive distillation, H = 0, the main head distils from the neighbours' main heads.
mean_target: as single_head with the mean of the neighbours' predictions (FedMD / DS-FL-like).
fedavg: H = 0, weights averaged over all clients every `fedavg_every` steps (a reference: it
shares weights). centralized: one model on the pooled private data (the upper bound).

Nothing here imports torch at module level (nor do losses.py and teachers.py, which this file reads
for the distillation weights and the teacher rules): the config's checks and the report stage read
labels and architectures from this file without paying for torch.
"""

from __future__ import annotations

import math

from ..errors import ConfigError
from . import losses, teachers

BYTES_PER_VALUE = 4  # predictions, embeddings and weights are sent as float32
_NO_DISTILLATION = {"heads": 0, **{weight: 0.0 for weight in losses.WEIGHTS}}  # every distillation term off


class Method:
    """The shared loop's behaviour; a method overrides only where it differs.

    fixed: the settings that define the method (single_head: no auxiliary heads); an experiment that
    gives one of them another value is refused. defaults: settings the method starts from unless an
    experiment's row or grid gives them (single_head's weight nu_main = 1.0), so they can be swept.
    shares: what crosses the network ("predictions" on the public set, "weights", or "nothing")."""

    def __init__(self, name: str, label: str, fixed: dict, defaults: dict | None = None, shares: str = "predictions"):
        self.name, self.label, self.fixed, self.defaults, self.shares = name, label, fixed, defaults or {}, shares

    def check(self, run: dict) -> None:
        """Refuse settings the method cannot run with (the preset is applied already)."""

    def client_models(self, archs: list[str]) -> list[str]:
        """The architecture of every model trained: one model per client."""
        return archs

    def model_of(self, client: int) -> int:
        """The model that answers for a client in evaluation."""
        return client

    def private_batch(self, data, gen, run: dict, clients: int):
        """This step's private batch, N x B: every client draws from its own private set."""
        return data.private_batch(gen, run["batch_private"])

    def after_step(self, models, run: dict, steps_done: int) -> None:
        """Called after every optimiser step, with the number of steps done."""

    def bytes_sent(self, run: dict, steps_done: int, model, out_degree: int, classes: int) -> int:
        """Bytes a client has sent after `steps_done` steps: what the distillation terms and the teacher
        rule read of it (losses.values_sent) on every public batch, to each of its `out_degree`
        receivers; a refresh every `refresh_every` steps."""
        if not uses_public(run):
            return 0
        exchanges = math.ceil(steps_done / run["refresh_every"])
        values = losses.values_sent(run, model.dim, classes)  # per public sample
        return exchanges * out_degree * run["batch_public"] * values * BYTES_PER_VALUE


class Naive(Method):
    """Naive distillation: the main head distils from the senders' main heads, with weight nu_main."""

    def check(self, run: dict) -> None:
        if run["nu_main"] <= 0:
            raise ConfigError(f"method {self.name} with nu_main = {run['nu_main']}: naive distillation needs a "
                              f"weight nu_main > 0; nu_main = 0 is the isolated baseline")


class MHD(Method):
    def check(self, run: dict) -> None:
        if run["heads"] < 1:
            raise ConfigError(f"method mhd with heads = {run['heads']}: MHD needs at least one auxiliary head "
                              f"(heads >= 1); heads = 0 is the single_head or isolated baseline")


class FedAvg(Method):
    def check(self, run: dict) -> None:
        archs = architectures(run)
        if len(set(archs)) > 1:
            raise ConfigError(f"method fedavg averages weights, so every client needs the same architecture; "
                              f"got architectures {archs}")

    def after_step(self, models, run: dict, steps_done: int) -> None:
        """Every `fedavg_every` steps every client takes the mean of all clients' parameters and
        BatchNorm statistics."""
        if steps_done % run["fedavg_every"]:
            return
        import torch

        with torch.no_grad():
            states = [m.state_dict() for m in models]
            for key, value in states[0].items():
                if value.is_floating_point():
                    mean = torch.stack([s[key] for s in states]).mean(0)
                    for s in states:
                        s[key].copy_(mean)

    def bytes_sent(self, run: dict, steps_done: int, model, out_degree: int, classes: int) -> int:
        params = sum(p.numel() for p in model.parameters())
        return (steps_done // run["fedavg_every"]) * params * BYTES_PER_VALUE


class Centralized(Method):
    """One model trained on the union of the private sets; it answers for every client."""

    def client_models(self, archs: list[str]) -> list[str]:
        return archs[:1]

    def model_of(self, client: int) -> int:
        return 0

    def private_batch(self, data, gen, run: dict, clients: int):
        return data.private_batch(gen, run["batch_private"] * clients, pooled=True)


_NAIVE = {"heads": 0, **{weight: 0.0 for weight in losses.WEIGHTS if weight != "nu_main"}}  # main head's term only
_ALL = (
    MHD("mhd", "MHD", {}),
    Method("isolated", "isolated", _NO_DISTILLATION, shares="nothing"),
    Naive("single_head", "single-head", _NAIVE, {"nu_main": 1.0}),
    Naive("mean_target", "mean-target", {**_NAIVE, "teacher": "mean"}, {"nu_main": 1.0}),
    FedAvg("fedavg", "FedAvg", _NO_DISTILLATION, shares="weights"),
    Centralized("centralized", "centralized", _NO_DISTILLATION, shares="nothing"),
)
BY_NAME = {m.name: m for m in _ALL}
METHODS = tuple(BY_NAME)  # the order of legends and tables
PRESETS = {m.name: m.fixed for m in _ALL}


def get(name: str) -> Method:
    if name not in BY_NAME:
        raise ConfigError(f"unknown method {name!r}; allowed: {', '.join(METHODS)}")
    return BY_NAME[name]


def effective(run: dict, explicit: dict | None = None) -> dict:
    """The run's settings after its method's preset: what the training actually uses. Computed once,
    when the config is read (config.expand, config.validate_run); everything downstream takes it.

    explicit: the settings an experiment's row and grid give (None: the run is resolved already, as in
    a RUN.yaml, so no default is applied). They override the method's defaults;
    one that contradicts a fixed setting is refused, never silently replaced. Settings that come
    from `run` (the defaults of every run) yield to the method: `heads: 3` does not stop a
    single_head row."""
    method = get(run["method"])
    if explicit is None:  # a resolved run (a RUN.yaml): its settings stand, the fixed ones are re-applied
        out = {**run, **method.fixed}
        method.check(out)
        architectures(out)
        teachers.check(out)
        return out
    for key, value in method.fixed.items():
        if key in explicit and explicit[key] != value:
            raise ConfigError(f"method {method.name} fixes {key} = {value!r} (it is what defines the method), but "
                              f"{key} = {explicit[key]!r} is given; leave {key} out of this row or grid, or use "
                              f"method mhd")
    out = {**run, **{k: v for k, v in method.defaults.items() if k not in explicit}, **method.fixed}
    method.check(out)
    architectures(out)  # refuses an `architectures` list longer than the clients
    teachers.check(out, explicit)
    return out


def is_effective(run: dict) -> bool:
    return all(run.get(k) == v for k, v in get(run["method"]).fixed.items())


def label(method: str, heads: int) -> str:
    """The legend's name of a run: MHD with its H, a baseline by its name."""
    name = get(method).label
    return f"{name} (H={heads})" if heads > 0 else name


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
    """Whether the run distils on the public set at all (any distillation term's weight above 0)."""
    return bool(losses.active(run))
