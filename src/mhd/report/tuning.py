"""Claim rows V: the defaults this project chose by measurement (config/README.md: `lr`, `nu_rampup`,
`tau`, `include_self`), re-checked on the validation split. For each key, among MHD's runs at the
default run that differ in that key alone, the value with the highest mean validation shared accuracy
(best head), on the seeds every value has, is the one validation prefers; the row reports, on test and paired by seed, that value's
shared accuracy minus the default's. When validation prefers the default the effect is 0 by
construction and the row says so; otherwise the verdict reads better / worse / inconclusive
(evidence.OURS_WORDS): a default chosen earlier on the test split that validation would not choose
is shown, not hidden."""

from __future__ import annotations

import math

from . import evidence

KEYS = ("lr", "nu_rampup", "tau", "include_self")  # the run keys chosen by measurement


def _values(r, key: str) -> list:
    """The values of `key` among MHD's runs equal to the default run in every other setting."""
    mhd = r.of.get("mhd")
    if mhd is None or key not in r.keys:
        return []
    found = []
    for value in sorted(set(mhd[key]), key=str):
        if len(r.select(method="mhd", **{key: value})):
            found.append(value)
    return found


def defaults(r) -> list[dict]:
    """V1.. : one row per key of KEYS (r: evidence.Runs)."""
    rows = []
    for key in KEYS:
        default = r.defaults[key]
        claim = f"V{len(rows) + 1}. {key} = {default:g} (the default) against the value validation prefers" \
            if not isinstance(default, bool) else \
            f"V{len(rows) + 1}. {key} = {default} (the default) against the value validation prefers"
        measure = f"shared accuracy, best head, MHD at the value of {key} with the best validation accuracy - at the default"
        values = _values(r, key)
        others = [v for v in values if evidence.norm(v) != evidence.norm(default)]
        if not others or evidence.norm(default) not in map(evidence.norm, values):
            rows.append(evidence.row(claim, measure, [], 0.0, f"needs MHD at the default run with {key} at its default "
                                                               f"and at another value", evidence.OURS_WORDS))
            continue
        # every value read on the seeds all of them have: a value with more seeds is not favoured by its extra ones
        by_value = {v: r.by_seed("val_shared_best", method="mhd", **{key: v}) for v in values}
        common = sorted(set.intersection(*(set(s.index) for s in by_value.values())))
        if not common:
            rows.append(evidence.row(claim, measure, [], 0.0, f"needs MHD at the default run with {key} at its "
                                                               f"default and at another value, at the same seeds",
                                     evidence.OURS_WORDS))
            continue
        val = {v: by_value[v].loc[common].mean() for v in values}
        chosen = max(values, key=lambda v: (val[v], evidence.norm(v) == evidence.norm(default)))
        note = f"validation (mean best-head shared accuracy, seeds {', '.join(map(str, common))}): " + ", ".join(
            f"{evidence.norm(v)}: {val[v]:.3f}" for v in values if not math.isnan(val[v]))
        if evidence.norm(chosen) == evidence.norm(default):
            row = evidence.row(claim, measure, [], 0.0, note, evidence.OURS_WORDS)
            rows.append({**row, "effect": 0.0, "seeds": len(common), "verdict": "default kept",
                         "note": f"validation prefers the default; {note}"})
            continue
        effects = evidence.paired(r.by_seed("shared_best", method="mhd", **{key: chosen}),
                                  r.by_seed("shared_best", method="mhd", **{key: default})).loc[common]
        rows.append(evidence.row(claim, measure, effects, 0.0, f"validation prefers {key} = {evidence.norm(chosen)}; {note}",
                                 evidence.OURS_WORDS))
    return rows
