"""Claim rows for two parts of the paper that claims 1-7 leave unmeasured (docs/SPEC.md, the claims):
embedding distillation (row E: MHD with `nu_emb` on against off) and claim 6's control (small clients
among small peers, which separates the large peers' own contribution from what MHD gives any
client). Both read the shared accuracy of each run's best head on test; the head and, where several
were run, the embedding weight are chosen on validation. The helpers (evidence.Runs, row, paired)
are evidence.py's; claims.py calls these rows after claim 7."""

from __future__ import annotations

import math

import pandas as pd

from . import evidence, summary

EMB = "nu_emb"


def _missing(r, *keys: str) -> list[str]:
    """The run keys among `keys` that the summary does not tell runs apart by (no such column)."""
    return [k for k in keys if k not in r.keys]


def embedding(r) -> dict:
    """E: shared accuracy (best head) of MHD at the default run with nu_emb > 0 minus the same with
    nu_emb 0, paired by seed. With several weights above 0, the one with the largest mean paired effect
    on validation is read on test, and the note says which."""
    claim = "E. Embedding distillation lifts MHD's shared accuracy"
    measure = "shared accuracy, best head, MHD with nu_emb > 0 - nu_emb 0 (default run otherwise)"
    need = "needs MHD at the default run with nu_emb 0 and with nu_emb > 0"
    if _missing(r, EMB):
        return evidence.row(claim, measure, [], 0.0, f"{need}; the summary has no nu_emb column")
    mhd = r.of.get("mhd", pd.DataFrame(columns=[EMB]))
    off = r.select(method="mhd", nu_emb=0.0)
    weights = [w for w in sorted({float(x) for x in mhd[EMB].dropna()}) if w > 0 and len(r.select(method="mhd", nu_emb=w))]
    if off.empty or not weights:
        return evidence.row(claim, measure, [], 0.0, need)

    def effect(w: float, column: str) -> pd.Series:
        return evidence.paired(r.by_seed(column, method="mhd", nu_emb=w), r.by_seed(column, method="mhd", nu_emb=0.0))

    on_validation = {w: float(effect(w, "val_shared_best").mean()) for w in weights}
    ranked = [w for w in weights if not math.isnan(on_validation[w])]
    chosen = max(ranked, key=lambda w: on_validation[w]) if ranked else weights[0]
    note = f"nu_emb = {chosen:g}"
    if len(weights) > 1:
        note += (" (chosen on validation among " + ", ".join(f"{w:g} ({on_validation[w]:+.3f})" for w in weights)
                 + ": mean paired effect on validation shared accuracy)")
    return evidence.row(claim, measure, effect(chosen, "shared_best"), 0.0, note)


def _shared_of(r, run: pd.Series, clients: set | None = None) -> tuple[float, set]:
    """A run's shared accuracy (test) at its best head (chosen on validation), mean over its cnn_small
    clients, or over `clients` where given; and the clients read."""
    t = summary.last_step(r.table[r.table.run == run["run"]])
    t = t[t["head"] == run["best_head"]]
    pick = t.client.isin(clients) if clients is not None else t.client_architecture == evidence.SMALL
    return float(t[pick].shared_acc.mean()), set(int(c) for c in t[pick].client.unique())


def small_peers(r) -> dict:
    """6 control: MHD's cnn_small clients among cnn peers (claim 6's runs, architectures cnn_small, cnn)
    minus the same clients (same index, so the same private data) in MHD with every client cnn_small
    (architecture cnn_small, architectures null): what the large peers add beyond any peers."""
    claim = "6 control. Small clients among large peers - small clients among small peers (MHD)"
    measure = ("shared accuracy of the cnn_small clients, best head: among cnn peers (architectures cnn_small, cnn) "
               "- the same clients with every client cnn_small")
    need = "needs MHD at the default run with architectures [cnn_small, cnn] and with architecture cnn_small"
    if _missing(r, "architecture", "architectures"):
        return evidence.row(claim, measure, [], 0.0, need)
    mixed = r.select(method="mhd", architectures=list(evidence.MIXED))
    alone = r.select(method="mhd", architecture=evidence.SMALL, architectures=None)
    if mixed.empty or alone.empty:
        return evidence.row(claim, measure, [], 0.0, need)
    among_large, clients = {}, set()
    for _, run in mixed.iterrows():
        value, read = _shared_of(r, run)
        among_large.setdefault(int(run["seed"]), []).append(value)
        clients |= read
    among_small = {}
    for _, run in alone.iterrows():
        among_small.setdefault(int(run["seed"]), []).append(_shared_of(r, run, clients)[0])
    effects = evidence.paired(pd.Series({s: sum(v) / len(v) for s, v in among_large.items()}, dtype=float),
                             pd.Series({s: sum(v) / len(v) for s, v in among_small.items()}, dtype=float))
    note = f"clients {', '.join(map(str, sorted(clients)))} (cnn_small in both runs)"
    return evidence.row(claim, measure, effects, 0.0, note if len(effects) else need + " at the same seeds")
