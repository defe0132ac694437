"""The theory of information diffusion over the graph: how far each client is from each sender, which
classes a client owns, and which classes chained distillation can carry to head k (walks of k edges).
Read from a run's own artefacts (its graph and its split), never rebuilt from its settings."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import graphs, splits


def hops_to(edges: list, n: int) -> np.ndarray:
    """d[i, j]: fewest edges from sender j to receiver i (inf when unreachable)."""
    senders = graphs.in_neighbours(edges, n)
    d = np.full((n, n), np.inf)
    for i in range(n):
        d[i, i], queue = 0, deque([i])
        while queue:
            v = queue.popleft()
            for u in senders[v]:
                if d[i, u] == np.inf:
                    d[i, u] = d[i, v] + 1
                    queue.append(u)
    return d


@dataclass
class Reach:
    """A run's graph and split as the theory reads them: who is how many hops from whom, and which
    classes each client owns (its primary classes, splits.primary_classes)."""
    edges: list
    hops_NxN: np.ndarray   # d[i, j]: fewest edges from sender j to receiver i (hops_to)
    owned: list[set]       # per client, its primary classes
    classes: int

    @property
    def clients(self) -> int:
        return len(self.owned)

    def classes_at(self, i: int, hop: int) -> set:
        """The classes owned by the clients `hop` hops from client i and by none closer: what head
        `hop` of client i can learn that no earlier head could."""
        d, n = self.hops_NxN[i], self.clients
        closer = set().union(*(self.owned[j] for j in range(n) if d[j] < hop))
        return set().union(*(self.owned[j] for j in range(n) if d[j] == hop)) - closer


def reach(split_dir: str | Path, graph_dir: str | Path) -> Reach:
    """The Reach of a run, read from its split and graph artefacts (each checked as it is read)."""
    edges, _ = graphs.read(graph_dir)
    split, _ = splits.read(split_dir)
    primary = splits.primary_classes(split.distribution)
    n, classes = primary.shape
    return Reach(edges, hops_to(edges, n), [set(np.flatnonzero(row).tolist()) for row in primary], classes)


def carried(r: Reach, heads: int, include_self: bool) -> list[list[set]]:
    """[client][head k]: the classes owned by clients that reach the client by a walk of exactly k
    edges (at most k with include_self): what chained distillation can carry to head k."""
    n = r.clients
    a = graphs.senders_matrix(r.edges, n).astype(int)
    if include_self:
        a |= np.eye(n, dtype=int)
    walk = np.eye(n, dtype=int)
    out: list[list[set]] = [[] for _ in range(n)]
    for _ in range(heads + 1):
        for i in range(n):
            out[i].append(set().union(*(r.owned[j] for j in np.flatnonzero(walk[i]))))
        walk = (a @ walk > 0).astype(int)
    return out


def predicted_coverage(r: Reach, heads: int, include_self: bool) -> np.ndarray:
    """[client, head k]: share of classes carried to head k (`carried`)."""
    return np.array([[len(c) / r.classes for c in row] for row in carried(r, heads, include_self)])


def predicted_at_hop(r: Reach, carried_k: set, i: int, hop: int) -> float:
    """The share of the classes `hop` hops from client i (Reach.classes_at) that a head carrying
    `carried_k` (one of `carried`'s) is predicted to cover; NaN where there are no such classes."""
    cls = r.classes_at(i, hop)
    return len(cls & carried_k) / len(cls) if cls else float("nan")
