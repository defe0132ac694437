"""Non-iid data splits: a class-balanced public set (labels dropped), disjoint private sets and a
class-balanced labelled validation set that no client sees."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import files
from ..errors import ConfigError, DataError

SCHEMES = ("skew", "dirichlet", "inner_dirichlet")
# split_seed and graph_seed seed numpy's generators (any integer >= 0) and are stored as 64-bit integers
# in results/summary.csv and in file names: 0 .. 2**63 - 1 (the schema's maximum)
MAX_SEED = 2**63 - 1
# NIID-Bench redraws a Dirichlet split until every client holds at least this many samples
NIID_BENCH_MIN_SIZE = 10
DIRICHLET_ATTEMPTS = 1000


@dataclass
class Split:
    private: list[np.ndarray]   # per client: sorted indices into the training split
    public: np.ndarray          # sorted indices into the training split, labels not used
    distribution: np.ndarray    # clients x classes: the class probabilities the split was drawn from
    validation: np.ndarray      # sorted indices into the training split: labelled, seen by no client

    def counts(self, labels: np.ndarray, classes: int) -> np.ndarray:
        """(clients + 2) x classes counts: the private sets, then the public set, then the validation set."""
        sets = [*self.private, self.public, self.validation]
        return np.stack([np.bincount(labels[s], minlength=classes) for s in sets])


PRIMARY_MARGIN = 1e-9  # a share equal to 1/C up to float rounding is uniform, not primary


def primary_classes(distribution: np.ndarray) -> np.ndarray:
    """[client, class]: whether the class is one of the client's primary classes, those its split draws
    more often than uniform (a share above 1/C of the split's distribution, split.json). It holds for
    every scheme; under `skew` with skew > 1 these are the classes `deal_primary` weighted.

    Why the margin: an iid client's share is 1/C, and a share that went through a division and
    split.json's rounding to 6 decimals must not count as above it by a float's last bit. On
    6-decimal shares the margin changes nothing: such a share is 1/C exactly or lies more than 1e-9
    from it, so `> 1/C` and `> 1/C + 1e-9` agree on every split (tests/test_splits.py checks C < 300)."""
    distribution = np.asarray(distribution, dtype=float)
    return distribution > 1.0 / distribution.shape[1] + PRIMARY_MARGIN


def deal_primary(clients: int, classes: int) -> list[list[int]]:
    """The classes the `skew` scheme weights by `skew` for each client, dealt round-robin, so every
    class is weighted for at least one client and every client has at least one; C >= N gives
    disjoint groups. They are the client's primary classes (`primary_classes`) when skew > 1."""
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
        for i, prim in enumerate(deal_primary(clients, classes)):
            weights[i, prim] = skew
    elif scheme == "inner_dirichlet":
        _check_alpha(alpha)
        weights = (rng or np.random.default_rng(0)).dirichlet(np.full(classes, alpha), size=clients)
    else:
        raise ConfigError(f"unknown split scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
    return weights / weights.sum(axis=1, keepdims=True)


def public_per_class(public_fraction: float, n: int, classes: int) -> int:
    """Public images of every class: the class-balanced public set of `public_fraction` of n images."""
    return int(public_fraction * n) // classes


def check_validation_per_class(value) -> None:
    """validation_per_class: an integer >= 1; every selection is made on the validation set, so there is one."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"validation_per_class = {value!r}: allowed: an integer >= 1 (labelled validation images "
                          f"of every class; every selection is made on them, so the validation set cannot be empty)")


def check_seed(key: str, seed) -> None:
    """A seed of numpy's generators, in the range the schema allows."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{key} = {seed!r}: allowed: an integer in 0..{MAX_SEED} (2**63 - 1)")


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
         validation_per_class: int = 100, split_seed: int = 0) -> Split:
    """Draw the public set, then the private sets, then the validation set, all disjoint: `samples_per_client`
    samples per client, or for NIID-Bench's `dirichlet` that many on average (sizes vary), and
    `validation_per_class` of every class. The keywords are the run keys of config.split_params, so a
    rule's params reach here unrenamed."""
    labels = np.asarray(labels)
    n = len(labels)
    if not 0 <= public_fraction < 1:
        raise ConfigError(f"public_fraction = {public_fraction}: must be in [0, 1)")
    if clients < 1 or samples_per_client < 1:
        raise ConfigError(f"clients = {clients}, samples_per_client = {samples_per_client}: both must be >= 1")
    check_seed("split_seed", split_seed)
    check_validation_per_class(validation_per_class)
    rng = np.random.default_rng(split_seed)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in range(classes)]
    per_class = public_per_class(public_fraction, n, classes)
    if public_fraction > 0 and per_class < 1:  # 0 asks for no public set; a positive fraction for one
        raise ConfigError(f"public_fraction = {public_fraction}: int({public_fraction} x {n} training images) // "
                          f"{classes} classes = 0 public images per class, so there would be no public set; "
                          f"allowed: public_fraction >= {classes / n:.6g} ({classes} classes / {n} images)")
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
    # the validation set comes last and takes no random numbers of its own: the next indices of each class's
    # shuffled pool, after the private sets took theirs, so public and private sets are those drawn without it
    left = [len(pools[c]) - int(demand[c]) for c in range(classes)]
    short = min(range(classes), key=lambda c: left[c])
    if left[short] < validation_per_class:
        raise ConfigError(
            f"validation_per_class = {validation_per_class}: class {short} has only {left[short]} samples left after "
            f"the public set and the private sets (scheme {scheme}, public_fraction {public_fraction}, clients x "
            f"samples_per_client = {clients} x {samples_per_client}); "
            + (f"lower validation_per_class to at most {left[short]}, or " if left[short] >= 1 else "")
            + "lower samples_per_client or public_fraction")
    private: list[list[np.ndarray]] = [[] for _ in range(clients)]
    validation = []
    for c in range(classes):
        start = 0
        for i in range(clients):
            private[i].append(pools[c][start:start + counts[i, c]])
            start += counts[i, c]
        validation.append(pools[c][start:start + validation_per_class])
    return Split([np.sort(np.concatenate(p)) for p in private], public, dist, np.sort(np.concatenate(validation)))


def write(out_dir: str | Path, split: Split, labels: np.ndarray, classes: int, params: dict) -> None:
    """indices.csv (client, index), stats.csv (client, class, count), split.json; 'public' and 'validation'
    are owner names of their own, after the clients. Written deterministically: identical inputs give
    identical bytes."""
    out = Path(out_dir)
    owners = [*((str(i), s) for i, s in enumerate(split.private)), ("public", split.public),
              ("validation", split.validation)]
    idx = io.StringIO()
    w = csv.writer(idx, lineterminator="\n")
    w.writerow(["client", "index"])
    for owner, s in owners:
        w.writerows((owner, int(j)) for j in s)
    stats = _stats_text(split, labels, classes)
    files.write_text(out / "indices.csv", idx.getvalue())
    files.write_text(out / "stats.csv", stats)
    files.write_json(out / "split.json", {
        "params": params,
        "sizes": {owner: len(s) for owner, s in owners},
        "distribution": np.round(split.distribution, 6).tolist(),
        "sha256": {"indices.csv": files.sha256_bytes(idx.getvalue().encode()),
                   "stats.csv": files.sha256_bytes(stats.encode())},
    })


def _stats_text(split: Split, labels: np.ndarray, classes: int) -> str:
    """stats.csv: (client, class, count) of every private set, then the public set's, then the validation set's."""
    stats = io.StringIO()
    w = csv.writer(stats, lineterminator="\n")
    w.writerow(["client", "class", "count"])
    owners = [*map(str, range(len(split.private))), "public", "validation"]
    for owner, row in zip(owners, split.counts(labels, classes)):
        w.writerows((owner, c, int(row[c])) for c in range(classes))
    return stats.getvalue()


def read_stats(out_dir: str | Path, labels: np.ndarray, classes: int) -> tuple[np.ndarray, dict]:
    """(clients + 2) x classes counts of stats.csv (Split.counts) and the split's record, after checking stats.csv
    against the split itself: its counts must be those of indices.csv over the dataset's `labels` (a hash in
    split.json can be updated by whoever edits the file; the split cannot be argued with)."""
    out = Path(out_dir)
    split, meta = read(out)
    check(split, len(labels), out)
    path = out / "stats.csv"
    try:
        found = files.read_regular(path, f"the split's class counts, a CSV file; delete {out} and rebuild it").decode()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not text ({exc}); delete {out} and rebuild it") from exc
    expected = _stats_text(split, labels, classes)
    if found != expected:
        bad = next((f"line {i + 1} is {a!r} where the split gives {b!r}" for i, (a, b) in
                    enumerate(zip(found.splitlines(), expected.splitlines())) if a != b),
                   f"it has {len(found.splitlines())} lines where the split gives {len(expected.splitlines())}")
        raise DataError(f"{path} does not agree with indices.csv and the dataset's labels: {bad} (client, class, "
                        f"count); the file was edited; delete {out} and rebuild it")
    if files.sha256_bytes(found.encode()) != meta["sha256"]["stats.csv"]:
        raise DataError(f"{path} does not match the hash in split.json; delete {out} and rebuild it")
    return split.counts(labels, classes), meta


def check(split: Split, size: int, source: str | Path) -> None:
    """Indices inside the training split (0 <= i < size), no index twice within or across the private
    sets, the public set and the validation set, no empty private set (sizes may differ: NIID-Bench's
    dirichlet), a validation set."""
    sets = [*split.private, split.public, split.validation]
    everything = np.concatenate(sets) if sets else np.zeros(0, dtype=np.int64)
    if len(everything) and (everything.min() < 0 or everything.max() >= size):
        raise DataError(f"split {source}: index {int(everything.min() if everything.min() < 0 else everything.max())} "
                        f"lies outside the training split (0..{size - 1}); delete {source} and rebuild it")
    if len(np.unique(everything)) != len(everything):
        values, counts = np.unique(everything, return_counts=True)
        raise DataError(f"split {source}: index {int(values[counts > 1][0])} appears more than once (the private "
                        f"sets, the public set and the validation set must be disjoint); delete {source} and "
                        f"rebuild it")
    empty = [i for i, p in enumerate(split.private) if len(p) == 0]
    if empty:
        raise DataError(f"split {source}: client {empty[0]} has no private samples; every client needs some. "
                        f"Delete {source} and rebuild it")
    if len(split.validation) == 0:
        raise DataError(f"split {source}: no validation samples; every selection is made on them. Delete {source} "
                        f"and rebuild it")


def read(out_dir: str | Path) -> tuple[Split, dict]:
    """Load a split artefact, checking it against the hashes and the record beside it."""
    out = Path(out_dir)
    fix = f"delete {out} and rebuild it with snakemake"
    meta = files.read_record(out / "split.json", RECORD, fix)
    raw = files.read_regular(out / "indices.csv", f"the split's indices, a CSV file; {fix}")
    recorded, clients = meta["sha256"]["indices.csv"], meta["params"]["clients"]
    if files.sha256_bytes(raw) != recorded:
        raise DataError(f"{out / 'indices.csv'} does not match the hash in split.json: the file was changed "
                        f"or truncated; delete {out} and rebuild it")
    if clients > raw.count(b"\n"):  # every client owns a row at least: no list per client of a made-up count
        raise DataError(f"{out / 'split.json'}: key 'params.clients' = {clients}, more clients than indices.csv "
                        f"has rows; {fix}")
    private: list[list[int]] = [[] for _ in range(clients)]
    public: list[int] = []
    validation: list[int] = []
    owners = {str(i): p for i, p in enumerate(private)} | {"public": public, "validation": validation}
    try:
        rows = list(csv.reader(io.StringIO(raw.decode())))[1:]
        for owner, j in rows:
            owners[owner].append(int(j))
    except (KeyError, ValueError) as exc:
        raise DataError(f"{out / 'indices.csv'}: a row names owner or index {exc}; allowed owners: 0..{clients - 1}, "
                        f"public and validation, indices integers. Delete {out} and rebuild it") from exc
    if not validation:  # an empty validation set is never returned: every selection is made on it
        raise DataError(f"split {out} predates the validation set (indices.csv has no rows of owner validation, "
                        f"split.json's sizes no key validation); {fix}" if "validation" not in meta["sizes"] else
                        f"split {out} has no validation samples (indices.csv has no rows of owner validation); {fix}")
    dist = np.asarray(meta["distribution"], dtype=float)
    if len(dist) != clients:
        raise DataError(f"{out / 'split.json'}: key 'distribution' has {len(dist)} rows, but params.clients = "
                        f"{clients}; expected one row of class probabilities per client; {fix}")
    sizes = {owner: len(s) for owner, s in owners.items()}
    if meta["sizes"] != sizes:
        raise DataError(f"{out / 'split.json'}: key 'sizes' = {meta['sizes']} does not match indices.csv, which "
                        f"gives {sizes}; {fix}")
    return Split([np.asarray(p, dtype=np.int64) for p in private], np.asarray(public, dtype=np.int64), dist,
                 np.asarray(validation, dtype=np.int64)), meta


# what split.json must hold, and what each key allows (files.check_record)
RECORD = {("params",): files.MAPPING, ("params", "clients"): files.is_int(1),
          ("sha256", "indices.csv"): files.SHA256, ("sha256", "stats.csv"): files.SHA256,
          ("sizes",): (lambda v: isinstance(v, dict) and all(files.is_int()[0](x) for x in v.values()),
                       "a mapping of owner (0, 1, ..., public, validation) to its number of samples"),
          ("distribution",): files.NUMBER_ROWS}
