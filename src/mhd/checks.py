"""Checks of a config beyond its schema, each naming the value, where it is and what is allowed: a
bounded size and depth (YAML aliases), finite numbers, figure kinds that exist and fit their experiments (and
their graphs), a public set that is not empty, a validation set that fits."""

from __future__ import annotations

import math

import numpy as np

from .data import datasets, graphs, splits
from .errors import ConfigError
from .learning import methods
from .report import kinds
from .yaml_loaders import MAX_DEPTH  # mappings and lists inside each other: 64 levels at most

MAX_VALUES = 1_000_000  # a config is a few hundred values; YAML aliases can make it billions
SEED_KEYS = ("seed", "split_seed", "graph_seed")


def bounded(config, source: str) -> None:
    """Refuse a config whose values, counted with their repeats, exceed MAX_VALUES (an alias bomb), or
    whose mappings and lists nest deeper than MAX_DEPTH (aliases inside aliases), before anything walks
    it value by value or recursively."""
    count, stack = 0, [(config, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(f"config {source} expands to more than {MAX_VALUES:,} values (YAML aliases repeated "
                              f"into each other?); a config of this project has a few hundred")
        if isinstance(node, (dict, list)):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"config {source}: mappings and lists nested more than {MAX_DEPTH} levels deep "
                                  f"(YAML aliases inside each other?); allowed: at most {MAX_DEPTH} levels (a config "
                                  f"of this project needs 6)")
            stack.extend((child, depth) for child in (node.values() if isinstance(node, dict) else node))


def non_finite(config, source: str) -> list[str]:
    """Every NaN or infinite number in the config, by where it is."""
    found, stack = [], [((), config)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            stack.extend(((*path, k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, i), v) for i, v in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            where = ".".join(map(str, path))
            found.append(f"{where} = {node!r} (in {source}): not a finite number; allowed: finite numbers only")
    return sorted(found)


def swept_key(exp: dict) -> str | None:
    """The key a sweep or ablation figure puts on its x axis: `x`, else the first grid key that is not a seed."""
    swept = [k for k in exp.get("grid", {}) if k not in SEED_KEYS]
    return exp.get("x") or (swept[0] if swept else None)


def figures_fit(config: dict, runs: dict[str, list[dict]], source: str) -> list[str]:
    """Each experiment's figure exists and can be drawn from its runs: found when the config is read,
    not after the training."""
    problems = []
    for name, exp in config["experiments"].items():
        kind = exp.get("figure")
        if kind is None:
            continue
        where = f"experiments.{name}.figure = {kind!r} (in {source})"
        if kind not in kinds.KINDS:
            problems.append(f"{where}: not a figure kind; allowed: {', '.join(kinds.KINDS)}")
            continue
        edgeless = sorted({f"topology {r['topology']} with islands = {r['islands']}, clients = {r['clients']}"
                           for r in runs[name] if graphs.edge_count(r["topology"], r["clients"], islands=r["islands"],
                                                                    degree=r["degree"], directed=r["directed"]) == 0})
        if kind in kinds.EDGE_KINDS and edgeless:  # an empty panel, or no rows to draw after the training
            problems.append(f"{where}: drawn from the communication graph's edges, but the graph of {edgeless[0]} "
                            f"has none (cliques of one client); allowed: graphs with edges (islands < clients)")
            continue
        if kind not in kinds.TRAINING_KINDS:
            continue
        if not exp.get("train", True):
            problems.append(f"{where}: a figure of trained runs, but the experiment has train: false; "
                            f"allowed with train: false: {', '.join(kinds.DATA_KINDS)}")
        elif kind in kinds.AUXILIARY_KINDS and not any(r["heads"] > 0 for r in runs[name]):
            problems.append(f"{where}: shows auxiliary heads, but no run of the experiment has any "
                            f"(methods {sorted({r['method'] for r in runs[name]})}); add a row with method: mhd")
        elif kind in kinds.SWEPT_KINDS and swept_key(exp) is None:
            problems.append(f"{where}: needs a swept key on its x axis; give `x`, or a grid key other than "
                            f"{', '.join(SEED_KEYS)}")
        elif kind in kinds.SENDING_KINDS and all(methods.get(r["method"]).shares == "nothing" for r in runs[name]):
            problems.append(f"{where}: shows accuracy against bytes sent, but no run of the experiment sends any; "
                            f"add a run of a method that exchanges predictions or weights")
    return problems


def pooled(config: dict, runs: dict[str, list[dict]], source: str) -> list[str]:
    """Each training figure tells its runs apart: runs that agree in every key the figure draws
    (kinds.DRAWN, and a swept kind's `x`) differ in nothing but their seeds. Otherwise the figure would
    average, say, two `nu_aux` values into one error bar without saying so."""
    problems = []
    for name, exp in config["experiments"].items():
        kind = exp.get("figure")
        if kind not in kinds.DRAWN or not exp.get("train", True):
            continue
        drawn = (*kinds.DRAWN[kind], *([swept_key(exp)] if kind in kinds.SWEPT_KINDS and swept_key(exp) else []))
        groups: dict[tuple, list[dict]] = {}
        for r in runs[name]:
            groups.setdefault(tuple(repr(r[k]) for k in drawn), []).append(r)
        varying: dict[str, set] = {}
        for group in groups.values():
            for key in group[0]:
                if key not in SEED_KEYS and key not in drawn and len({repr(r[key]) for r in group}) > 1:
                    varying.setdefault(key, set()).update(repr(r[key]) for r in group)
        if varying:
            keys = ", ".join(f"{k} ({', '.join(sorted(v))})" for k, v in sorted(varying.items()))
            problems.append(f"experiments.{name} (in {source}): its {kind} figure tells runs apart by "
                            f"{', '.join(drawn)} and averages over {', '.join(SEED_KEYS)}, but runs that agree in "
                            f"those also differ in {keys}: they would be pooled into one mark; allowed: one value "
                            f"of each such key per experiment (a separate experiment per value), or the key as "
                            f"the figure's `x` (sweep, ablation)")
    return problems


def public_set(config: dict, runs: dict[str, list[dict]], source: str) -> list[str]:
    """Every run's public_fraction leaves a public image of every class. Known when the config is read
    for a named dataset that is verified (its training split has the official size); otherwise the split
    stage (splits.make) refuses it."""
    name = config["dataset"]["name"]
    info = datasets.KNOWN.get(name)
    if not config["dataset"]["verify"] or info is None or info.train is None:
        return []
    problems = {}
    for exp, exp_runs in runs.items():
        for r in exp_runs:
            fraction = r["public_fraction"]
            if splits.public_per_class(fraction, info.train, info.classes) < 1 and fraction not in problems:
                where = "run.public_fraction" if fraction == config["run"]["public_fraction"] else \
                    f"experiments.{exp}: public_fraction"
                problems[fraction] = (
                    f"{where} = {fraction:g} (in {source}): int({fraction:g} x {info.train} training images of "
                    f"{name}) // {info.classes} classes = 0 public images per class, so no public set; allowed: "
                    f"public_fraction >= {info.classes / info.train:.6g}")
    return list(problems.values())


def validation_set(config: dict, runs: dict[str, list[dict]], source: str) -> list[str]:
    """Every run's validation_per_class fits in what its split leaves of every class. Known when the config
    is read for a named dataset that is verified and class-balanced: its labels' order changes which images
    a split takes, not how many of each class, so the split drawn over balanced labels of the official size
    leaves what the real one will. A split that fails for another reason is left to the split stage
    (splits.make), which names it; so is any other dataset."""
    from .config import split_id, split_params  # config imports this module

    name = config["dataset"]["name"]
    info = datasets.KNOWN.get(name)
    if not config["dataset"]["verify"] or info is None or info.train is None or not info.balanced:
        return []
    labels = np.repeat(np.arange(info.classes), info.train // info.classes)
    left: dict[str, tuple[int, int] | None] = {}  # split params -> (fewest images left of a class, that class)
    problems = {}
    for exp, exp_runs in runs.items():
        for r in exp_runs:
            params = {**split_params(r), "validation_per_class": 1}
            key = repr(sorted(params.items()))
            if key not in left:
                try:
                    split = splits.make(labels, info.classes, **params)
                except ConfigError:
                    left[key] = None
                else:
                    taken = split.counts(labels, info.classes)[:-1].sum(axis=0)
                    left[key] = int(info.train // info.classes - taken.max()), int(taken.argmax())
            wanted = r["validation_per_class"]
            if left[key] is not None and wanted > left[key][0] and (wanted, key) not in problems:
                where = "run.validation_per_class" if wanted == config["run"]["validation_per_class"] else \
                    f"experiments.{exp}: validation_per_class"
                problems[wanted, key] = (
                    f"{where} = {wanted} (in {source}): split {split_id(name, r)} of experiment {exp} leaves "
                    f"{left[key][0]} images of class {left[key][1]} of {name} after the public set and the private "
                    f"sets; allowed: validation_per_class <= {left[key][0]}, or lower samples_per_client or "
                    f"public_fraction")
    return list(problems.values())
