"""Claim rows D: the theory of information diffusion (docs/SPEC.md, Theory) as a number. Per MHD run on
the ring and on the chain (the default run otherwise, H = the default), per client i, auxiliary head
k (1..H) and hop d (the hop distances of i's senders, d >= 1, where some class is owned at d and at no
nearer hop): the predicted coverage of the hop-d classes by head k (diffusion.carried: the classes
walks of k edges bring, at most k with include_self) against the measured accuracy of head k on
those classes (test, last step: the mean class accuracy over them, as the transitive figure reads
it). A run's number is the Spearman rank correlation of the two over all its (i, k, d) cells; the
row is its mean over seeds with the 95 % interval; reproduced when the interval is above 0.

Why one correlation over the cells of all clients rather than the mean of per-client ones: a client
of the 5-client ring at H = 3 has 6 cells (2 hops x 3 heads) on which the prediction takes two
values, so a per-client rank correlation rests on one or two cells and is undefined for a client
whose prediction is constant (a chain's end client at H >= its farthest hop); pooled, the run's 30
cells are ranked at once. The ranks make it indifferent to the accuracy scale; client-to-client
differences in class difficulty stay in it as noise. Nothing is selected: every head and hop is
read."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import evidence, diffusion, summary

TOPOLOGIES = ("ring", "chain")


def spearman(a, b) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    ra, rb = pd.Series(a, dtype=float).rank().to_numpy(), pd.Series(b, dtype=float).rank().to_numpy()
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def cells(last: pd.DataFrame, reach: diffusion.Reach, heads: int, include_self: bool) -> pd.DataFrame:
    """client, head, hop, predicted, measured: one row per (i, k, d) cell of a run (`last`: its summary
    rows at the last step)."""
    carried = diffusion.carried(reach, heads, include_self)
    rows = []
    for i in range(reach.clients):
        hops = sorted({int(x) for x in reach.hops_NxN[i] if np.isfinite(x) and x > 0})
        for k in range(1, heads + 1):
            at = last[(last.client == i) & (last["head"] == str(k))]
            for d in hops:
                cls = sorted(reach.classes_at(i, d))
                if cls and len(at):
                    rows.append({"client": i, "head": k, "hop": d,
                                 "predicted": diffusion.predicted_at_hop(reach, carried[i][k], i, d),
                                 "measured": float(at[[f"class_acc_{c}" for c in cls]].to_numpy().mean())})
    return pd.DataFrame(rows, columns=["client", "head", "hop", "predicted", "measured"])


def _topology(r, topology: str) -> dict:
    effects, unread, flat = {}, [], []
    for _, run in r.select(method="mhd", topology=topology).iterrows():
        if run["run"] not in r.inputs:
            unread.append(run["run"])
            continue
        inputs = r.inputs[run["run"]]
        cell = cells(summary.last_step(r.table[r.table.run == run["run"]]),
                     diffusion.reach(inputs["split"], inputs["graph"]), int(run["heads"]), bool(run["include_self"]))
        rho = spearman(cell.predicted, cell.measured)
        if math.isnan(rho):
            flat.append(run["run"])
        else:
            effects.setdefault(int(run["seed"]), []).append(rho)
    notes = []
    if unread:
        notes.append(f"runs whose folder was not given (mhd claims --runs), so whose graph and split were not read: "
                     f"{', '.join(sorted(unread))}")
    if flat:
        notes.append(f"runs whose prediction or measurement is the same in every cell (no correlation): "
                     f"{', '.join(sorted(flat))}")
    if not effects and not notes:
        notes.append(f"needs MHD at the default run on the {topology}")
    return evidence.row(f"D ({topology}). Head k learns the classes the diffusion theory says reach it",
                       f"{topology}: Spearman correlation over (client, head k, hop d) of head k's predicted coverage "
                       f"of the hop-d classes and its accuracy on them", [float(np.mean(v)) for v in effects.values()],
                       0.0, "; ".join(notes))


def theory(r) -> list[dict]:
    """Rows D (ring) and D (chain) (r: evidence.Runs, with `inputs` from the run folders)."""
    return [_topology(r, t) for t in TOPOLOGIES]
