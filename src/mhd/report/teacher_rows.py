"""Claim rows T: the teacher rules that choose the sender most likely in distribution (`energy`,
`density`; ours, the paper's suggested direction) against the paper's most-confident sender
(teachers.PAPER), on the complete graph and on the ring: shared accuracy of the best head (chosen on
validation, read on test) of MHD with the rule minus MHD with the paper's, the default run otherwise,
paired by seed. No claim of the paper is at stake, so the verdict reads better / worse /
inconclusive (evidence.OURS_WORDS) rather than reproduced; inconclusive rather than "no difference": an
interval that straddles 0 does not show the rules equal."""

from __future__ import annotations

from ..learning import teachers
from . import evidence

RULES = ("energy", "density")          # the rules set against the paper's, in the rows' order
TOPOLOGIES = ("complete", "ring")


def rules(r) -> list[dict]:
    """T1.. : each of RULES against teachers.PAPER on each of TOPOLOGIES (r: evidence.Runs)."""
    rows = []
    for topology in TOPOLOGIES:
        for rule in RULES:
            claim = f"T{len(rows) + 1}. {rule} vs most confident ({topology})"
            measure = f"shared accuracy, best head, MHD teacher {rule} - {teachers.PAPER} ({topology})"
            need = f"needs MHD with teacher {rule} and with teacher {teachers.PAPER} on the {topology}, default run otherwise"
            if "teacher" not in r.keys:
                rows.append(evidence.row(claim, measure, [], 0.0, f"{need}; the summary has no teacher column",
                                        evidence.OURS_WORDS))
                continue
            effects = evidence.paired(r.by_seed("shared_best", method="mhd", topology=topology, teacher=rule),
                                     r.by_seed("shared_best", method="mhd", topology=topology, teacher=teachers.PAPER))
            rows.append(evidence.row(claim, measure, effects, 0.0, "" if len(effects) else need, evidence.OURS_WORDS))
    return rows
