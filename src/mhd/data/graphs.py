"""Communication graphs: who sends predictions to whom. An edge (src, dst) means dst distils from src."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from . import files
from .splits import check_seed
from ..errors import ConfigError, DataError

TOPOLOGIES = ("complete", "ring", "chain", "star", "islands", "regular")
_MAX_TRIES = 1000  # rejection sampling of random regular graphs; fails only for near-impossible asks
# The most edges a graph may have. The graph job holds every edge as Python tuples in a list and a set
# (graphs.make's peak, tracemalloc, a complete graph of 700 clients: 136 MB for 489,300 edges, about 280
# bytes an edge: 1,000,000 edges take about 280 MB; 30,000 clients on a complete graph, 9 x 10^8 edges, 250 GB),
# edges.csv gets a line per edge, and hops_to walks all of them for every client.
# A complete graph of 1,000 clients has 999,000 edges.
MAX_EDGES = 1_000_000

Edge = tuple[int, int]


def check(topology: str, clients: int, *, islands: int = 2, degree: int = 2, directed: bool = False) -> None:
    """Refuse impossible graphs before any work is done, naming the value and what is allowed."""
    if topology not in TOPOLOGIES:
        raise ConfigError(f"unknown topology {topology!r}; allowed: {', '.join(TOPOLOGIES)}")
    if clients < 2:
        raise ConfigError(f"clients = {clients}: a communication graph needs at least 2 clients")
    if topology == "islands" and (islands < 1 or islands > clients or clients % islands):
        raise ConfigError(
            f"islands = {islands} with clients = {clients}: the islands must divide the clients into "
            f"equal cliques; allowed: a divisor of {clients} ({', '.join(map(str, _divisors(clients)))})")
    if topology == "regular":
        if not 1 <= degree < clients:
            raise ConfigError(f"degree = {degree} with clients = {clients}: a k-regular graph needs "
                              f"1 <= k < clients, i.e. k in 1..{clients - 1}")
        if not directed and (clients * degree) % 2:
            raise ConfigError(f"degree = {degree} with clients = {clients}: an undirected k-regular graph "
                              f"needs clients x degree even; use an even degree, or directed: true")
    count = edge_count(topology, clients, islands=islands, degree=degree, directed=directed)
    if count > MAX_EDGES:
        raise ConfigError(f"topology {topology} with clients = {clients}: {count:,} edges, more than the "
                          f"{MAX_EDGES:,} a graph may have (each edge is held in memory by the graph job and walked "
                          f"by the figures; a complete graph of 1,000 clients has 999,000); allowed: fewer clients "
                          f"or a sparser topology (ring, chain, star, regular, more islands)")


def edge_count(topology: str, clients: int, *, islands: int = 2, degree: int = 2, directed: bool = False) -> int:
    """How many edges (src, dst) `make` gives, known without building them; for a graph `check` accepts."""
    n = clients
    counts = {"complete": n * (n - 1), "ring": n if directed else min(2 * n, n * (n - 1)),
              "chain": (n - 1) * (1 if directed else 2), "star": (n - 1) * (1 if directed else 2),
              "islands": n * (n // islands - 1) if islands else 0, "regular": n * degree}
    return counts[topology]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def make(topology: str, clients: int, *, islands: int = 2, degree: int = 2,
         directed: bool = False, graph_seed: int = 0) -> list[Edge]:
    """Sorted, duplicate-free edge list (src, dst), no self-loops. The keywords are the run keys of
    config.graph_params, so a rule's params reach here unrenamed.

    Directed variants: ring and chain point along increasing index (i -> i+1), star points away
    from the hub (client 0), regular has in- and out-degree k; complete and islands are symmetric
    either way.
    """
    check(topology, clients, islands=islands, degree=degree, directed=directed)
    check_seed("graph_seed", graph_seed)
    n = clients
    if topology == "complete":
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    elif topology == "ring":
        pairs = [(i, (i + 1) % n) for i in range(n)]
    elif topology == "chain":
        pairs = [(i, i + 1) for i in range(n - 1)]
    elif topology == "star":
        pairs = [(0, j) for j in range(1, n)]
    elif topology == "islands":
        size = n // islands
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j and i // size == j // size]
    else:
        pairs = _random_regular(n, degree, directed, np.random.default_rng(graph_seed))
    edges = set(pairs)
    if not directed:
        edges |= {(j, i) for i, j in edges}
    return sorted(edges)


def _random_regular(n: int, k: int, directed: bool, rng: np.random.Generator) -> list[Edge]:
    for _ in range(_MAX_TRIES):
        if directed:  # k permutations without fixed points or repeated edges
            edges = set()
            for _ in range(k):
                perm = rng.permutation(n)
                new = {(int(i), int(perm[i])) for i in range(n)}
                if any(i == j for i, j in new) or edges & new:
                    break
                edges |= new
            else:
                return sorted(edges)
        else:  # pairing model: match n*k stubs, reject self-loops and multi-edges
            stubs = rng.permutation(np.repeat(np.arange(n), k)).reshape(-1, 2)
            edges = {(int(min(a, b)), int(max(a, b))) for a, b in stubs}
            if len(edges) == len(stubs) and all(a != b for a, b in edges):
                return sorted(edges)
    raise ConfigError(f"no random {k}-regular graph on {n} clients found in {_MAX_TRIES} tries; "
                      f"choose another degree or seed")


def in_neighbours(edges: list[Edge], clients: int) -> list[list[int]]:
    """N(i): the clients that send to client i, sorted."""
    senders: list[list[int]] = [[] for _ in range(clients)]
    for src, dst in sorted(edges):
        senders[dst].append(src)
    return senders


def senders_matrix(edges: list[Edge], clients: int) -> np.ndarray:
    """N x N booleans, [i, j] true when client j sends to client i (i distils from j)."""
    senders = np.zeros((clients, clients), dtype=bool)
    for src, dst in edges:
        senders[dst, src] = True
    return senders


def write(out_dir: str | Path, edges: list[Edge], params: dict) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["src", "dst"])
    writer.writerows(edges)
    out = Path(out_dir)
    files.write_text(out / "edges.csv", buf.getvalue())
    files.write_json(out / "graph.json", {"params": params, "edges": len(edges),
                                        "in_degree": [len(s) for s in in_neighbours(edges, params["clients"])]})


def read(out_dir: str | Path) -> tuple[list[Edge], dict]:
    out = Path(out_dir)
    fix = f"delete {out} and rebuild it with snakemake"
    meta = files.read_record(out / "graph.json", RECORD, fix)
    try:
        rows = list(csv.reader(io.StringIO(files.read_regular(out / "edges.csv", "a graph's edges.csv").decode())))
    except (DataError, ValueError) as exc:
        raise DataError(f"cannot read the graph artefact in {out}: {exc}; rebuild it with snakemake") from exc
    if rows[:1] != [["src", "dst"]]:
        raise DataError(f"{out / 'edges.csv'}: expected header 'src,dst', found {rows[:1]}")
    try:
        edges = [(int(a), int(b)) for a, b in rows[1:]]
        expected = make(**meta["params"])
    except (ValueError, TypeError, KeyError) as exc:
        raise DataError(f"{out}: edges.csv or graph.json cannot be read as a graph ({exc}); rebuild it with "
                        f"snakemake") from exc
    except ConfigError as exc:
        raise DataError(f"{out / 'graph.json'}: key 'params' = {meta['params']} makes no graph: {exc}; {fix}") from exc
    if edges != expected:  # the record says how the graph was made: the edges must be exactly those
        extra, missing = sorted(set(edges) - set(expected)), sorted(set(expected) - set(edges))
        raise DataError(f"{out / 'edges.csv'} does not match its record {meta['params']}: "
                        f"{len(edges)} edges where the record makes {len(expected)}"
                        f"{f', unexpected {extra[:5]}' if extra else ''}{f', missing {missing[:5]}' if missing else ''}"
                        f"{', duplicates' if len(set(edges)) != len(edges) else ''}; delete {out} and rebuild it")
    in_degree = [len(s) for s in in_neighbours(edges, meta["params"]["clients"])]
    if meta["edges"] != len(edges) or meta["in_degree"] != in_degree:
        raise DataError(f"{out / 'graph.json'}: keys 'edges' = {meta['edges']} and 'in_degree' = {meta['in_degree']} "
                        f"do not match edges.csv ({len(edges)} edges, in-degrees {in_degree}); {fix}")
    return edges, meta


# what graph.json must hold, and what each key allows (files.check_record); params are checked by make
RECORD = {("params",): files.MAPPING, ("params", "clients"): files.is_int(2),
          ("params", "topology"): (lambda v: v in TOPOLOGIES, f"one of {', '.join(TOPOLOGIES)}"),
          ("edges",): files.is_int(), ("in_degree",): files.INTS}
