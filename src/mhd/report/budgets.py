"""A study at two budgets (`mhd claims --budget-summary`): the same study's runs at fewer steps, run
as separate runs with their own schedule, give every claim a second verdict. This module finds the
budget's default run, pairs each budget run with its twin at the full budget (equal in every setting
but the budget's), puts the two verdicts side by side and lists the runs whose readouts still moved
between the budgets. A verdict that holds at both budgets is not an artefact of where the learning
rate's annealing stopped; a run that moves between them had not converged, whatever its last
quarter says."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import MHDError
from . import summary

# what a second budget of a study changes: its length and the schedule set in steps
BUDGET_KEYS = ("steps", "eval_every", "warmup_steps", "nu_rampup")


@dataclass(frozen=True)
class Budget:
    """The claims at the second budget (`steps`), its runs' convergence lists (claims.convergence_lists)
    and `moved`: the full-budget runs whose validation readouts differ from their twin's by 1 point or
    more, each with the two differences."""
    steps: int
    claims: pd.DataFrame
    convergence: dict
    moved: list[str]


def defaults_at(table: pd.DataFrame, defaults: dict, source: str) -> dict:
    """The default run at the budget: `defaults` with each of BUDGET_KEYS as the budget's runs have it. A key
    the budget's runs hold several values of is an experiment's sweep of that key (a ramp-up ablation):
    the default run keeps the full budget's value where the budget's runs have it. A budget whose runs
    differ in steps, or in a key without the full budget's value among them, or whose steps are the
    default run's, is refused."""
    out = dict(defaults)
    for key in BUDGET_KEYS:
        values = sorted(set(table[key].dropna())) if key in table else []
        if len(values) > 1 and (key == "steps" or defaults.get(key) not in values):
            raise MHDError(f"{source}: its runs do not share one {key} ({', '.join(map(str, values))}); a budget "
                           f"summary is one study at one budget")
        if len(values) == 1:
            out[key] = values[0].item() if hasattr(values[0], "item") else values[0]
    if out.get("steps") == defaults.get("steps"):
        raise MHDError(f"{source}: its runs have the default run's steps ({defaults.get('steps')}): not a second "
                       f"budget")
    return out


def twins(full, budget) -> dict[str, str]:
    """budget run -> its twin among the full budget's runs (full, budget: evidence.Runs): the run equal in
    every setting of the default run but the BUDGET_KEYS the budget changes, and in seed. A budget run
    with no such twin, or with more than one, has none."""
    changed = {k for k in BUDGET_KEYS if full.defaults.get(k) != budget.defaults.get(k)}
    keys = [k for k in full.keys if k in budget.keys and k not in changed]

    def index(r) -> dict:
        out: dict = {}
        seeds = r.runs.seed.map(lambda x: format(float(x), "g"))
        for name, key in zip(r.runs.run, map(tuple, r.normed[keys].assign(seed=seeds).to_numpy())):
            out.setdefault(key, []).append(name)
        return out

    of_full = index(full)
    return {names[0]: of_full[key][0] for key, names in index(budget).items()
            if len(names) == 1 and len(of_full.get(key, ())) == 1}


def moved(full: pd.DataFrame, budget: pd.DataFrame, pairs: dict[str, str]) -> list[str]:
    """The full-budget runs (`full`, `budget`: readouts.per_run) whose validation readouts (best head's
    shared, main head's private accuracy) differ from their budget twin's by summary.CONVERGED_WITHIN
    or more, sorted, each as "run (shared +d, private +d)": full minus budget."""
    f, b = full.set_index("run"), budget.set_index("run")
    out = []
    for short, long in sorted(pairs.items(), key=lambda p: p[1]):
        d = [float(f.at[long, c] - b.at[short, c]) for c in ("val_shared_best", "val_private_main")]
        if not any(np.isnan(d)) and max(map(abs, d)) >= summary.CONVERGED_WITHIN:
            out.append(f"{long} (shared {d[0]:+.3f}, private {d[1]:+.3f})")
    return out


def side_by_side(claims: pd.DataFrame, budget: Budget) -> pd.DataFrame:
    """`claims` with the same claims' effect, interval, seeds and verdict at the `budget` (and its
    `steps_at_budget`), and `budget_robust`: yes (the same verdict), no (it changes with the budget), not
    measured (at one budget or both, or on fewer seeds there than here: a budget run in part)."""
    b = budget.claims.set_index("claim")
    out = claims.assign(**{f"{c}_at_budget": claims.claim.map(b[c])
                           for c in ("effect", "ci_low", "ci_high", "seeds", "verdict")}, steps_at_budget=budget.steps)
    measured = out.verdict.ne("not measured") & out.verdict_at_budget.notna() & out.verdict_at_budget.ne("not measured")
    measured &= out.seeds_at_budget.fillna(0).ge(out.seeds.clip(lower=2))  # fewer seeds there: not yet comparable
    same = out.verdict == out.verdict_at_budget
    return out.assign(budget_robust=np.where(measured, np.where(same, "yes", "no"), "not measured"))
