"""Non-iid data splits: a class-balanced public set (labels dropped) and disjoint private sets."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import files
from ..errors import ConfigError, DataError

SCHEMES = ("skew", "dirichlet", "inner_dirichlet")
# NIID-Bench redraws a Dirichlet split until every client holds at least this many samples
NIID_BENCH_MIN_SIZE = 10
DIRICHLET_ATTEMPTS = 1000


@dataclass
class Split:
    private: list[np.ndarray]   # per client: sorted indices into the training split
    public: np.ndarray          # sorted indices into the training split, labels not used
    distribution: np.ndarray    # clients x classes: the class probabilities the split was drawn from

    def counts(self, labels: np.ndarray, classes: int) -> np.ndarray:
        """(clients + 1) x classes counts; the last row is the public set."""
        sets = [*self.private, self.public]
        return np.stack([np.bincount(labels[s], minlength=classes) for s in sets])


def primary_classes(clients: int, classes: int) -> list[list[int]]:
    """Classes dealt round-robin, so every class is primary for at least one client and every
    client has at least one; C >= N gives disjoint groups."""
    primary: list[list[int]] = [[] for _ in range(clients)]
    for t in range(max(classes, clients)):
        if t % classes not in primary[t % clients]:
            primary[t % clients].append(t % classes)
    return [sorted(p) for p in primary]


def class_distribution(scheme: str, clients: int, classes: int, *, skew: float = 100.0,
                       alpha: float = 0.5, rng: np.random.Generator | None = None) -> np.ndarray:
    """clients x classes: p_i(c), for the schemes that give every client the same number of samples.
    skew: weight s on client i's primary classes, 1 elsewhere (s = 1 is iid). inner_dirichlet: each
    client's class distribution p_i ~ Dir_C(alpha) (Flower's InnerDirichletPartitioner, FedLab's
    client-inner Dirichlet)."""
    if scheme == "skew":
        if not skew > 0:
            raise ConfigError(f"skew = {skew}: the weight of a client's primary classes must be > 0 "
                              f"(1 = iid, larger = more skewed)")
        weights = np.ones((clients, classes))
        for i, prim in enumerate(primary_classes(clients, classes)):
            weights[i, prim] = skew
    elif scheme == "inner_dirichlet":
        _check_alpha(alpha)
        weights = (rng or np.random.default_rng(0)).dirichlet(np.full(classes, alpha), size=clients)
    else:
        raise ConfigError(f"unknown split scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
    return weights / weights.sum(axis=1, keepdims=True)


def _check_alpha(alpha: float) -> None:
    if not alpha > 0:
        raise ConfigError(f"alpha = {alpha}: the Dirichlet concentration must be > 0")


def niid_bench_counts(clients: int, classes: int, samples_per_client: int, alpha: float,
                      rng: np.random.Generator) -> np.ndarray:
    """clients x classes counts of NIID-Bench's label-distribution skew (Li et al., 2022, "noniid-labeldir";
    Flower's DirichletPartitioner): every class's samples are divided over the clients by proportions
    q_c ~ Dir_N(alpha), a client already holding its share of the pool (samples_per_client) getting no
    more, redrawn until every client holds at least NIID_BENCH_MIN_SIZE. The pool is class-balanced,
    clients x samples_per_client in all, so client sizes vary around samples_per_client."""
    _check_alpha(alpha)
    total = clients * samples_per_client
    budget = round_counts(np.full((1, classes), 1.0 / classes), total)[0]
    need = min(NIID_BENCH_MIN_SIZE, samples_per_client)
    for _ in range(DIRICHLET_ATTEMPTS):
        counts = np.zeros((clients, classes), dtype=np.int64)
        for c in range(classes):
            q = rng.dirichlet(np.full(clients, alpha))
            q = q * (counts.sum(axis=1) < samples_per_client)
            q = q / q.sum() if q.sum() > 0 else np.full(clients, 1.0 / clients)
            counts[:, c] = round_counts(q[None], int(budget[c]))[0]
        if counts.sum(axis=1).min() >= need:
            return counts
    raise ConfigError(f"scheme dirichlet with alpha = {alpha}: {DIRICHLET_ATTEMPTS} draws all left a client "
                      f"with fewer than {need} samples; raise alpha or samples_per_client")


def round_counts(dist: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder rounding of total x dist, row by row: every row sums to `total` exactly."""
    raw = dist * total
    counts = np.floor(raw).astype(np.int64)
    for i in range(len(counts)):
        short = total - counts[i].sum()
        order = np.argsort(-(raw[i] - counts[i]), kind="stable")
        counts[i, order[:short]] += 1
    return counts


def make(labels: np.ndarray, classes: int, *, clients: int, scheme: str = "skew", skew: float = 100.0,
         alpha: float = 0.5, public_fraction: float = 0.2, samples_per_client: int = 3000,
         split_seed: int = 0) -> Split:
    """Draw the public set, then the private sets, all disjoint: `samples_per_client` samples per client,
    or for NIID-Bench's `dirichlet` that many on average (sizes vary). The keywords are the run keys of config.split_params, so a rule's params reach here unrenamed."""
    labels = np.asarray(labels)
    n = len(labels)
    if not 0 <= public_fraction < 1:
        raise ConfigError(f"public_fraction = {public_fraction}: must be in [0, 1)")
    if clients < 1 or samples_per_client < 1:
        raise ConfigError(f"clients = {clients}, samples_per_client = {samples_per_client}: both must be >= 1")
    rng = np.random.default_rng(split_seed)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in range(classes)]
    per_class = int(public_fraction * n) // classes
    smallest = min(len(p) for p in pools)
    if per_class > smallest:
        raise ConfigError(f"public_fraction = {public_fraction}: a class-balanced public set needs "
                          f"{per_class} samples of every class, but class {int(np.argmin([len(p) for p in pools]))} "
                          f"has only {smallest}; lower public_fraction")
    public = np.sort(np.concatenate([p[:per_class] for p in pools]))
    pools = [p[per_class:] for p in pools]
    available = sum(len(p) for p in pools)
    if clients * samples_per_client > available:
        raise ConfigError(f"clients x samples_per_client = {clients} x {samples_per_client} = "
                          f"{clients * samples_per_client} private samples asked, but only {available} remain "
                          f"after the public set; lower clients, samples_per_client or public_fraction")
    if scheme == "dirichlet":
        counts = niid_bench_counts(clients, classes, samples_per_client, alpha, rng)
        dist = counts / counts.sum(axis=1, keepdims=True)
    else:
        with np.errstate(all="ignore"):  # an overflowing skew is refused below, with the reason
            dist = class_distribution(scheme, clients, classes, skew=skew, alpha=alpha, rng=rng)
        if not np.isfinite(dist).all() or not np.allclose(dist.sum(axis=1), 1.0):
            raise ConfigError(f"scheme {scheme} with skew = {skew}, alpha = {alpha}: the class probabilities "
                              f"overflow (not finite numbers), so the clients would not get {samples_per_client} "
                              f"samples each; allowed: a finite skew below 1e300")
        counts = round_counts(dist, samples_per_client)
    if scheme != "dirichlet" and (counts.sum(axis=1) != samples_per_client).any():
        raise ConfigError(f"split: the clients would get {counts.sum(axis=1).tolist()} private samples, not "
                          f"samples_per_client = {samples_per_client} each")
    demand = counts.sum(axis=0)
    for c in range(classes):
        if demand[c] > len(pools[c]):
            raise ConfigError(
                f"impossible split: the clients together need {demand[c]} samples of class {c}, but only "
                f"{len(pools[c])} remain after the public set (scheme {scheme}, samples_per_client "
                f"{samples_per_client}); lower samples_per_client or public_fraction, or soften the skew")
    private: list[list[np.ndarray]] = [[] for _ in range(clients)]
    for c in range(classes):
        start = 0
        for i in range(clients):
            private[i].append(pools[c][start:start + counts[i, c]])
            start += counts[i, c]
    return Split([np.sort(np.concatenate(p)) for p in private], public, dist)


def write(out_dir: str | Path, split: Split, labels: np.ndarray, classes: int, params: dict) -> None:
    """indices.csv (client, index), stats.csv (client, class, count), split.json; 'public' is a client
    name of its own. Written deterministically: identical inputs give identical bytes."""
    out = Path(out_dir)
    owners = [*((str(i), s) for i, s in enumerate(split.private)), ("public", split.public)]
    idx = io.StringIO()
    w = csv.writer(idx, lineterminator="\n")
    w.writerow(["client", "index"])
    for owner, s in owners:
        w.writerows((owner, int(j)) for j in s)
    stats = io.StringIO()
    w = csv.writer(stats, lineterminator="\n")
    w.writerow(["client", "class", "count"])
    counts = split.counts(labels, classes)
    for (owner, _), row in zip(owners, counts):
        w.writerows((owner, c, int(row[c])) for c in range(classes))
    files.write_text(out / "indices.csv", idx.getvalue())
    files.write_text(out / "stats.csv", stats.getvalue())
    files.write_json(out / "split.json", {
        "params": params,
        "sizes": {owner: len(s) for owner, s in owners},
        "distribution": np.round(split.distribution, 6).tolist(),
        "sha256": {"indices.csv": files.sha256_bytes(idx.getvalue().encode()),
                   "stats.csv": files.sha256_bytes(stats.getvalue().encode())},
    })


def check(split: Split, size: int, source: str | Path) -> None:
    """Indices inside the training split (0 <= i < size), no index twice within or across the private
    sets and the public set, no empty private set (sizes may differ: NIID-Bench's dirichlet)."""
    sets = [*split.private, split.public]
    everything = np.concatenate(sets) if sets else np.zeros(0, dtype=np.int64)
    if len(everything) and (everything.min() < 0 or everything.max() >= size):
        raise DataError(f"split {source}: index {int(everything.min() if everything.min() < 0 else everything.max())} "
                        f"lies outside the training split (0..{size - 1}); delete {source} and rebuild it")
    if len(np.unique(everything)) != len(everything):
        values, counts = np.unique(everything, return_counts=True)
        raise DataError(f"split {source}: index {int(values[counts > 1][0])} appears more than once (the private "
                        f"sets and the public set must be disjoint); delete {source} and rebuild it")
    empty = [i for i, p in enumerate(split.private) if len(p) == 0]
    if empty:
        raise DataError(f"split {source}: client {empty[0]} has no private samples; every client needs some. "
                        f"Delete {source} and rebuild it")


def read(out_dir: str | Path) -> tuple[Split, dict]:
    """Load a split artefact, checking it against the hashes recorded beside it."""
    out = Path(out_dir)
    try:
        meta = json.loads((out / "split.json").read_text())
        raw = (out / "indices.csv").read_bytes()
        recorded, clients = meta["sha256"]["indices.csv"], int(meta["params"]["clients"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read the split artefact in {out}: {type(exc).__name__}: {exc}; rebuild it with "
                        f"snakemake") from exc
    if files.sha256_bytes(raw) != recorded:
        raise DataError(f"{out / 'indices.csv'} does not match the hash in split.json: the file was changed "
                        f"or truncated; delete {out} and rebuild it")
    rows = list(csv.reader(io.StringIO(raw.decode())))[1:]
    private: list[list[int]] = [[] for _ in range(clients)]
    public: list[int] = []
    owners = {str(i): p for i, p in enumerate(private)} | {"public": public}
    try:
        for owner, j in rows:
            owners[owner].append(int(j))
    except (KeyError, ValueError) as exc:
        raise DataError(f"{out / 'indices.csv'}: a row names owner or index {exc}; allowed owners: 0..{clients - 1} "
                        f"and public, indices integers. Delete {out} and rebuild it") from exc
    dist = np.asarray(meta["distribution"])
    return Split([np.asarray(p, dtype=np.int64) for p in private], np.asarray(public, dtype=np.int64), dist), meta
