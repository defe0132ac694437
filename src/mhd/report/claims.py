"""The paper's claims (docs/SPEC.md), checked on the runs of results/summary.csv: per claim the measured
effect, its 95 % interval over seeds (paired by seed, Student's t) and a verdict. reproduced: the
whole interval is on the claimed side of the bar; not reproduced: the whole interval is on the other
side; inconclusive: it straddles the bar, or there are fewer than two seeds. A claim whose runs are
not in the summary says so, and no verdict is made up for it. Every selection (the best head, the
settings that claims 7 and 7b read along their fronts: fronts.py) reads the validation split, every
effect the test split. The rows after claim 7 measure the paper's parts that claims 1-7 leave out:
embedding distillation and claim 6's control (components.py), the theory of information diffusion
(hops.py), and the teacher rules, choices of ours judged better / worse / inconclusive against the
paper's rule rather than reproduced (teacher_rows.py).

"The default run" is the config's `run` (its defaults) under a method: claims compare runs that are
equal in every setting but the ones named. `write` is `mhd claims`: the summary (or a study's parts)
read back checked, the claims, each beside its verdict at a second budget where one is given
(budgets.py), results/claims.csv and .md, and what DVC shows (headline.py)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import files
from ..errors import MHDError
from ..learning import methods, precision, run_folder
from . import budgets, components, diffusion, fronts, headline, hops, readouts, summary, teacher_rows, tuning
from .evidence import MIXED, PAPER_WORDS, PRIVATE_KEPT, SMALL, Runs, interval, norm, verdict  # noqa: F401 (the API)
from .evidence import paired as _paired, row as _row

def shared_lift(r: Runs) -> dict:
    return _row("1. MHD lifts shared accuracy above isolated clients",
                "shared accuracy, MHD best head - isolated (default run)",
                _paired(r.by_seed("shared_best", method="mhd"), r.by_seed("shared_best", method="isolated")), 0.0)


def shared_lift_ensemble(r: Runs) -> dict:
    return _row("1b. ... also read by the own-heads ensemble (no head selected)",
                "shared accuracy, MHD ensemble - isolated (default run)",
                _paired(r.by_seed("shared_ensemble", method="mhd"), r.by_seed("shared_ensemble", method="isolated")), 0.0)


def private_kept(r: Runs) -> dict:
    effects = _paired(r.by_seed("private_main", method="mhd"), r.by_seed("private_main", method="isolated"))
    row = _row("2. MHD keeps the main head's private accuracy", "private accuracy, MHD main head - isolated "
               "(kept: above -1 point)", effects, PRIVATE_KEPT)
    if row["seeds"] and not math.isnan(row["ci_low"]):
        row["note"] = "enhanced (interval above 0)" if row["ci_low"] > 0 else "not enhanced (interval reaches 0 or below)"
    return row


def main_head_shared(r: Runs) -> dict:
    return _row("3. The main head's own shared accuracy is enhanced", "shared accuracy, MHD main head - isolated",
                _paired(r.by_seed("shared_main", method="mhd"), r.by_seed("shared_main", method="isolated")), 0.0)


def _gain_of_heads(r: Runs, topology: str) -> pd.Series:
    """Per seed: shared accuracy (best head) of MHD with the default H minus MHD with H = 1."""
    return _paired(r.by_seed("shared_best", method="mhd", topology=topology),
                   r.by_seed("shared_best", method="mhd", topology=topology, heads=1))


def more_heads(r: Runs) -> list[dict]:
    h = int(r.defaults["heads"])
    ring, complete = _gain_of_heads(r, "ring"), _gain_of_heads(r, "complete")
    return [_row(f"4a. More heads help (ring, H = {h} against H = 1)", "shared accuracy, best head, H - (H = 1)",
                 list(ring), 0.0),
            _row("4b. ... most on sparse graphs", "gain of H over H = 1: ring - complete", _paired(ring, complete),
                 0.0, "" if len(complete) else "needs MHD with H = 1 and with the default H on the complete graph too")]


def transitive(r: Runs) -> dict:
    """On the ring, skew splits: accuracy on the classes owned by clients 2 hops away and by none
    closer, head 2 - head 1 (chained heads carry one hop further per head). The hop distances and
    the owned classes (primary classes) are read from each run's own graph and split."""
    effects, unread = {}, []
    for _, run in r.select(method="mhd", topology="ring").iterrows():
        if run["scheme"] != "skew" or int(run["heads"]) < 2:
            continue
        if run["run"] not in r.inputs:
            unread.append(run["run"])
            continue
        t = summary.last_step(r.table[r.table.run == run["run"]])
        reach = diffusion.reach(r.inputs[run["run"]]["split"], r.inputs[run["run"]]["graph"])
        per_client = []
        for i in range(reach.clients):
            cls = sorted(reach.classes_at(i, 2))
            if not cls:
                continue
            acc = {k: t[(t.client == i) & (t["head"] == str(k))][[f"class_acc_{c}" for c in cls]].to_numpy().mean()
                   for k in (1, 2)}
            per_client.append(acc[2] - acc[1])
        if per_client:
            effects[int(run["seed"])] = float(np.mean(per_client))
    note = (f"runs whose folder was not given (mhd claims --runs), so whose graph and split were not read: "
            f"{', '.join(sorted(unread))}") if unread else ""
    return _row("5. Transitive learning: head k learns the classes of clients k hops away",
                "ring: accuracy on the classes 2 hops away, head 2 - head 1", list(effects.values()), 0.0, note)




def small_models(r: Runs) -> dict:
    def small(over) -> pd.Series:
        rows = r.select(**over)
        out = {}
        for _, run in rows.iterrows():
            t = summary.last_step(r.table[r.table.run == run["run"]])
            t = t[(t.client_architecture == SMALL) & (t["head"] == run["best_head"])]
            out[int(run["seed"])] = t.shared_acc.mean()
        return pd.Series(out, dtype=float)

    mixed = list(MIXED)
    return _row("6. Small models gain from large ones", "shared accuracy of the cnn_small clients among cnn clients, "
                "MHD best head - isolated", _paired(small({"method": "mhd", "architectures": mixed}),
                                                   small({"method": "isolated", "architectures": mixed})), 0.0)


NAIVE_FRONTS = {  # claim 7's rivals: MHD's front against each naive-distillation family's (fronts.py)
    "single_head": ("7", "naive"),
    "mean_target": ("7b", "mean-target"),
}


def _ci(values) -> str:
    mean, low, high, n = interval(list(values))
    return f"{mean:+.3f}" + ("" if math.isnan(low) else f" [{low:+.3f}, {high:+.3f}]")


def ahead_of(r: Runs, other: str) -> list[dict]:
    """Claim 7 (or 7b) by fronts.py's rule: a row per level of fronts.LEVELS (MHD's front - `other`'s,
    shared accuracy at that private accuracy) and the Pareto check's row."""
    cid, name = NAIVE_FRONTS[other]
    mhd, rival = fronts.front_of(r, "mhd", "MHD"), fronts.front_of(r, other, name)
    no_isolated = r.select(method="isolated").empty
    lacking = [f"{f.name} runs at the default run (nu_main swept)" for f in (mhd, rival) if not f.settings]
    rows = []
    for drop in fronts.LEVELS:
        claim = f"{cid} @ -{drop * 100:g}. MHD ahead of {name} distillation at private accuracy {fronts.level_name(drop)}"
        measure = (f"shared accuracy (best head, test) of each front where its private accuracy (validation) is "
                   f"{fronts.level_name(drop)}: MHD front - {name} front")
        if no_isolated or lacking:
            rows.append(_row(claim, measure, [], 0.0, "needs " + " and ".join(
                lacking + ["isolated runs: they set the levels"] * no_isolated)))
            continue
        cmp = fronts.at_level(mhd, rival, r.by_seed("val_private_main", method="isolated"), drop)
        rows.append(_row(claim, measure, cmp.effects, 0.0, cmp.note))
    claim = f"{cid} Pareto. An MHD setting ahead of a {name} setting on both axes"
    measure = ("the smaller of MHD's two leads (private accuracy, main head; shared accuracy, best head; test), "
               "the pair chosen on validation")
    pair = fronts.pareto(fronts.points_of(r, "mhd"), list(rival.settings))
    if pair is None:
        return rows + [_row(claim, measure, [], 0.0, "needs " + " and ".join(lacking) if lacking else
                            "no MHD and no " + name + " setting share a seed with validation accuracy")]
    note = (f"MHD at {pair.mhd} against {name} at {pair.rival} (validation: smaller lead {pair.validation_lead:+.3f}"
            f"{'' if pair.validation_lead > 0 else ', no pair ahead on both axes: the closest'}); on test, private "
            f"{_ci(pair.axes['private'])}, shared {_ci(pair.axes['shared'])}")
    return rows + [_row(claim, measure, pair.leads, 0.0, note)]


def check(table: pd.DataFrame, defaults: dict, inputs: dict[str, dict] | None = None) -> pd.DataFrame:
    """Every claim on the summary `table` at the default run `defaults` (see Runs for `inputs`)."""
    return _checked(Runs(table, defaults, inputs))


def _checked(r: Runs) -> pd.DataFrame:
    rows = [shared_lift(r), shared_lift_ensemble(r), private_kept(r), main_head_shared(r), *more_heads(r), transitive(r),
            small_models(r), *(row for other in NAIVE_FRONTS for row in ahead_of(r, other)),
            components.embedding(r), components.small_peers(r), *hops.theory(r), *teacher_rows.rules(r),
            *tuning.defaults(r)]
    return pd.DataFrame(rows)


def with_reference(claims: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Mark every verdict that differs from the reference run's (config/reference.yaml). A KeyError or
    ValueError names what is wrong with `reference` (a column missing, a claim given twice)."""
    for column in ("claim", "verdict"):
        if column not in reference.columns:
            raise KeyError(f"no column {column!r}")
    twice = sorted(set(reference.claim[reference.claim.duplicated()].astype(str)))
    if twice:
        raise ValueError(f"claims given more than once: {twice}")
    ref = reference.set_index("claim").verdict
    out = claims.assign(reference_verdict=claims.claim.map(ref))
    measured = out.reference_verdict.notna() & (out.reference_verdict != "not measured")  # else: nothing to differ from
    return out.assign(differs=measured & (out.verdict != out.reference_verdict))


SELECTION = ("Every selection reads the validation split and every effect the test split: the best head (the shared "
             "readout; run_folder.best_heads), in claims 7 and 7b the settings that bracket each level on a front and "
             "their interpolation weights, and the Pareto pair; in row E the embedding weight nu_emb where several were run; "
             "claim 1b reads the ensemble, which selects nothing, and rows D (the theory) read every head and hop. "
             "Intervals are over training seeds (split and graph fixed), paired by seed.")


def table_lines(claims: pd.DataFrame, columns: tuple[str, ...] = ("measure", "note")) -> list[str]:
    """claims.csv as a markdown table: each claim, its effect, interval, seeds and verdict, the `columns`
    asked for among measure and note, the reference's verdict where claims.csv has it, and, where it has
    a second budget (budgets.side_by_side), the verdict there and whether it is the same."""
    cols = ["claim", *[c for c in columns if c == "measure"], "effect", "95 % interval", "seeds", "verdict"]
    if "reference_verdict" in claims:
        cols.append("reference verdict")
    if "budget_robust" in claims:
        cols += [f"at {int(claims.steps_at_budget.iloc[0])} steps", "same verdict"]
    cols += [c for c in columns if c == "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, c in claims.iterrows():
        ci = "" if math.isnan(c.ci_low) else f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
        cells = [c.claim, *([c.measure] if "measure" in columns else []),
                 "" if math.isnan(c.effect) else f"{c.effect:+.3f}", ci, str(c.seeds), c.verdict]
        if "reference_verdict" in claims:
            ref = c.reference_verdict if isinstance(c.reference_verdict, str) else ""
            cells.append(f"**{ref}** (differs)" if c.differs else ref)
        if "budget_robust" in claims:
            effect = "" if math.isnan(c.effect_at_budget) else f"{c.effect_at_budget:+.3f}, "
            n = c.get("seeds_at_budget", c.seeds)
            if effect and not math.isnan(n) and n != c.seeds:  # a budget run in part: say on how many seeds
                effect = f"{effect[:-2]} ({int(n)} seed{'s' if n != 1 else ''}), "
            at_budget = c.verdict_at_budget if isinstance(c.verdict_at_budget, str) else "not measured"
            cells += [f"{effect}{at_budget}", f"**{c.budget_robust}**" if c.budget_robust == "no" else
                      c.budget_robust]
        if "note" in columns:
            cells.append(c.note if isinstance(c.note, str) else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(claims: pd.DataFrame, convergence: dict, budget: budgets.Budget | None = None) -> str:
    """The claims table (claims.csv as markdown) and what it rests on: what is selected where, the runs that
    have not converged or diverged (`convergence`: convergence_lists) and, given the `budget`, each
    verdict at the second budget and its runs' convergence."""
    lines = [*table_lines(claims), "", SELECTION, "", *_convergence_lines(convergence, "")]
    if budget is not None:
        lines += ["", f"Each verdict at two budgets: these runs and the same study's runs at {budget.steps} steps "
                      f"(--budget-summary: separate runs, each with its own schedule); a verdict that changes with "
                      f"the budget is marked **no** under \"same verdict\".",
                  *_convergence_lines(budget.convergence, f" at {budget.steps} steps"),
                  f"Runs whose validation readouts differ from their twin's at {budget.steps} steps by 1 point or more "
                  f"(still learning, whatever their last quarter says): {', '.join(budget.moved) or 'none'}."]
    return "\n".join(lines) + "\n"


def _convergence_lines(lists: dict, where: str) -> list[str]:
    lines = [f"Runs{where} that have not converged (on validation, the best head's shared accuracy or the main head's "
             f"private accuracy moved by 1 point or more over the last quarter): {', '.join(lists['unconverged']) or 'none'}.",
             f"Runs{where} that diverged (the best head's shared accuracy on validation ends below chance, 1/C, plus "
             f"{summary.NEAR_CHANCE:g}; not counted as converged): {', '.join(lists['diverged']) or 'none'}."]
    if lists["unjudged"]:
        lines.append(f"Runs{where} whose convergence cannot be judged (fewer than two evaluations in the last quarter, "
                     f"or no validation accuracy): {', '.join(lists['unjudged'])}.")
    return lines


def resolved(defaults: dict) -> dict:
    """The default run with `precision: auto` resolved for its device on this machine, as the runs carry
    it (config resolves it when it plans them), so that the default runs are found."""
    if isinstance(defaults.get("precision"), str) and isinstance(defaults.get("device"), str):
        return {**defaults, "precision": precision.resolve(defaults["precision"], defaults["device"])}
    return defaults


def convergence_lists(runs: pd.DataFrame) -> dict[str, list[str]]:
    """Of the per-run readouts: the runs that have not converged (diverged ones apart), those that
    diverged, and those whose convergence cannot be judged, each sorted by name."""
    diverged = runs.diverged == True  # noqa: E712 (True, False or NaN)
    judged = runs.converged.notna()
    return {"unconverged": sorted(runs[judged & ~diverged & (runs.converged != True)].run),  # noqa: E712
            "diverged": sorted(runs[diverged].run), "unjudged": sorted(runs[~judged & ~diverged].run)}


def _at_budget(r: Runs, paths: list[str | Path]) -> budgets.Budget:
    """The claims at the second budget: the budget summaries read as one (unchecked against run folders:
    they are separate runs), at the budget's default run; claim 5 reads each budget run's graph and split
    from its twin's run.yaml (the two differ only in budget keys, which neither artefact depends on)."""
    table = summary.read_many(paths, option="--budget-summary")
    rb = Runs(table, budgets.defaults_at(table, r.defaults, f"--budget-summary {' '.join(map(str, paths))}"))
    pairs = budgets.twins(r, rb)
    rb.inputs = {short: r.inputs[long] for short, long in pairs.items() if long in r.inputs}
    return budgets.Budget(int(rb.defaults["steps"]), _checked(rb), convergence_lists(rb.runs),
                          budgets.moved(r.runs, rb.runs, pairs))


def write(summary_paths: str | Path | list[str | Path], defaults: dict, out: str | Path,
          run_dirs: list[str | Path] | None = None, reference: str | Path | None = None,
          metrics_path: str | Path | None = None, curves_dir: str | Path | None = None,
          budget_paths: list[str | Path] | None = None) -> tuple[pd.DataFrame, str]:
    """`mhd claims`: the summary (or the study's parts, `summary_paths`, read as one: summary.read_many)
    read back and checked (against its record and, given `run_dirs`, exactly those runs as they are now,
    whose run.yaml also says where each run's graph and split are), the claims at the default run
    `defaults` (the config's `run`), the verdicts that differ from a `reference` claims.csv marked, and,
    given `budget_paths` (the same study at a second budget, e.g. 2/3 of the steps), each claim's verdict
    there beside it (budgets.py); written to `out`.csv and `out`.md; and, where asked, what DVC shows
    (headline.write). Returns the claims and their markdown."""
    paths = [summary_paths] if isinstance(summary_paths, (str, Path)) else list(summary_paths)
    table = summary.read_many(paths, run_dirs)
    inputs = {Path(d).name: run_folder.read_run_file(Path(d) / "run.yaml")[1] for d in run_dirs or ()}
    try:
        r = Runs(table, resolved(defaults), inputs)
        checked = _checked(r)
        budget = _at_budget(r, budget_paths) if budget_paths else None
    except KeyError as exc:
        raise MHDError(f"--defaults lacks the run key {exc}; give the config's whole `run`") from exc
    if reference:
        try:
            text = files.read_regular(reference, "a claims.csv (docs/reference/claims.csv)")
            checked = with_reference(checked, pd.read_csv(io.BytesIO(text)))
        except (OSError, ValueError, KeyError) as exc:
            raise MHDError(f"--reference {reference}: not a claims table ({exc})") from exc
    if budget is not None:
        checked = budgets.side_by_side(checked, budget)
    text = markdown(checked, convergence_lists(r.runs), budget)
    notes = [summary.code_note(p) for p in paths]
    if any(notes):  # a study whose runs come from other training code than this checkout's says so on top
        text = "".join(f"**Warning:** {n}\n\n" for n in notes if n) + text
    files.write_text(f"{out}.csv", checked.to_csv(index=False))
    files.write_text(f"{out}.md", text)
    headline.write(table, r, metrics_path, curves_dir)
    return checked, text
