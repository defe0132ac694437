"""The theory of information diffusion over the graph: how far each client is from each sender, which
classes a client owns, and which classes chained distillation can carry to head k (walks of k edges)."""

from __future__ import annotations

from collections import deque

import numpy as np

from ..data import graphs


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


def owned_classes(distribution: np.ndarray) -> list[set]:
    """A client owns the classes it draws more often than uniform (its primary classes under `skew`)."""
    c = distribution.shape[1]
    return [set(np.flatnonzero(row > 1.0 / c).tolist()) for row in distribution]


def predicted_coverage(edges: list, n: int, owned: list[set], classes: int, heads: int, include_self: bool) -> np.ndarray:
    """[client, head k]: share of classes owned by clients that reach the client by a walk of exactly
    k edges (at most k with include_self): what chained distillation can carry to head k."""
    a = graphs.senders_matrix(edges, n).astype(int)
    if include_self:
        a |= np.eye(n, dtype=int)
    walk = np.eye(n, dtype=int)
    out = np.zeros((n, heads + 1))
    for k in range(heads + 1):
        for i in range(n):
            reach = set().union(*(owned[j] for j in np.flatnonzero(walk[i])))
            out[i, k] = len(reach) / classes
        walk = (a @ walk > 0).astype(int)
    return out
