"""The claims check on hand-made summaries: effects paired by seed, Student's t intervals, verdicts,
convergence, and honesty about what was not measured."""

import math

import pandas as pd
import pytest

from mhd import config as mconfig
from mhd.learning import methods, run_folder
from mhd.report import claims, summary


@pytest.fixture(scope="module")
def defaults(repo):
    return mconfig.load_layered(repo / "config" / "config.yaml")["run"]


def rows_of(run_id, run, shared, private, val=None, steps=None):
    """Summary rows of one whole run: `shared[k]`, `private[k]` per head k at the last step (earlier steps
    a little lower), every class accuracy equal to the shared one; on validation `val` = (shared,
    private) per head, the test ones where not given. Evaluated at the run's steps, every client."""
    val_shared, val_private = val or (shared, private)
    steps = steps or run_folder.evaluation_steps(int(run["steps"]), int(run["eval_every"]))
    out = []
    for step in steps:
        drop = 0.0 if step == steps[-1] else 0.002
        for client in range(int(run["clients"])):
            for head in [*map(str, range(len(shared))), "ensemble"]:
                k = int(head) if head != "ensemble" else len(shared) - 1
                out.append({"run": run_id, "step": step, "client": client, "head": head, "shared_acc": shared[k] - drop,
                            "private_acc": private[k], "val_shared_acc": val_shared[k] - drop,
                            "val_private_acc": val_private[k], **{f"class_acc_{c}": shared[k] for c in range(10)},
                            "bytes_sent": 0.0, "train_loss": 0.1, "client_architecture": "cnn", **run})
    return out


def table_of(defaults, runs, prefix="r"):
    """A summary of `runs`: (overrides of the default run, shared, private[, (val shared, val private)])."""
    rows = []
    for i, (over, shared, private, *val) in enumerate(runs):
        run = methods.effective({**defaults, **over}, explicit=over)
        rows += rows_of(f"{prefix}{i}", {k: (",".join(v) if isinstance(v, list) else v) for k, v in run.items()},
                        shared, private, *val)
    table = pd.DataFrame(rows)
    return table.merge(summary.convergence(table), on="run")


def test_interval_is_students_t_over_seeds():
    mean, low, high, n = claims.interval([0.1, 0.2, 0.3])
    assert n == 3 and mean == pytest.approx(0.2)
    assert high - mean == pytest.approx(4.303 * 0.1 / math.sqrt(3), rel=1e-3)
    assert math.isnan(claims.interval([0.5])[1]), "one seed: no interval"
    assert claims.verdict(0.01, 0.05, 0.0) == "reproduced"
    assert claims.verdict(-0.05, -0.01, 0.0) == "not reproduced"
    assert claims.verdict(-0.01, 0.05, 0.0) == "inconclusive"


def test_claims_pair_runs_by_seed_and_judge_each(defaults):
    runs = []
    for seed, noise in zip((0, 1, 2), (0.0, 0.01, -0.01)):
        h = defaults["heads"]
        runs.append(({"method": "mhd", "seed": seed}, [0.55 + noise] + [0.60 + noise] * (h - 1) + [0.75 + noise],
                     [0.965] * (h + 1)))
        runs.append(({"method": "isolated", "seed": seed}, [0.56 + noise], [0.97]))
    checked = claims.check(table_of(defaults, runs), defaults).set_index("claim")
    lift = checked.loc["1. MHD lifts shared accuracy above isolated clients"]
    assert lift.effect == pytest.approx(0.19) and lift.seeds == 3 and lift.verdict == "reproduced"
    kept = checked.loc["2. MHD keeps the main head's private accuracy"]
    assert kept.effect == pytest.approx(-0.005) and kept.verdict == "reproduced"  # within 1 point
    main = checked.loc["3. The main head's own shared accuracy is enhanced"]
    assert main.effect == pytest.approx(-0.01) and main.verdict == "not reproduced"
    assert checked.loc["1b. ... also read by the own-heads ensemble (no head selected)"].seeds == 3
    for name in checked.index[4:]:
        assert checked.loc[name].verdict == "not measured", name  # no ring, chain or mixed runs: no verdict


def curve_rows(run, shared, private, steps=(100, 200, 300, 400), head="0"):
    """A run's validation (and test) curve on one client and head: shared and private accuracy per step."""
    return [{"run": run, "step": t, "client": 0, "head": head, "shared_acc": s, "private_acc": p, "val_shared_acc": s,
             "val_private_acc": p, **{f"class_acc_{c}": s for c in range(10)}}
            for t, s, p in zip(steps, shared, private)]


def test_convergence_reads_both_readouts_on_validation_and_chance_is_not_convergence():
    rows = (curve_rows("settled", (0.3, 0.5, 0.695, 0.70), (0.9, 0.95, 0.96, 0.962))
            + curve_rows("rising", (0.3, 0.5, 0.6, 0.70), (0.9, 0.95, 0.96, 0.962))
            + curve_rows("eroding", (0.3, 0.5, 0.695, 0.70), (0.97, 0.97, 0.96, 0.94))  # shared flat, private falls
            + curve_rows("collapsed", (0.3, 0.2, 0.101, 0.10), (0.5, 0.5, 0.5, 0.5))  # flat at chance (C = 10)
            + curve_rows("annealed", (0.1, 0.1, 0.1, 0.1), (0.2, 0.2, 0.2, 0.2)))  # never left chance
    conv = summary.convergence(pd.DataFrame(rows)).set_index("run")
    assert conv.loc["settled"].converged and conv.loc["settled"].last_quarter_movement == pytest.approx(0.005)
    assert conv.loc["settled"].diverged == False  # noqa: E712
    assert not conv.loc["rising"].converged and conv.loc["rising"].shared_movement == pytest.approx(0.1)
    eroding = conv.loc["eroding"]
    assert not eroding.converged and eroding.shared_movement < 0.01 and eroding.private_movement == pytest.approx(0.02)
    for run in ("collapsed", "annealed"):  # still: they would pass on movement alone
        assert conv.loc[run].diverged and conv.loc[run].converged == False, run  # noqa: E712
        assert conv.loc[run].last_quarter_movement < 0.01
    lists = claims.convergence_lists(conv.reset_index())
    assert lists == {"unconverged": ["eroding", "rising"], "diverged": ["annealed", "collapsed"], "unjudged": []}


def test_convergence_judges_validation_not_test():
    """Test accuracy still moving, validation settled: converged (the judgement reads validation); and a
    summary without validation accuracy is not judged."""
    rows = curve_rows("a", (0.3, 0.5, 0.695, 0.70), (0.9, 0.95, 0.96, 0.962))
    for row, test in zip(rows, (0.3, 0.5, 0.6, 0.7)):
        row["shared_acc"] = test
    conv = summary.convergence(pd.DataFrame(rows)).set_index("run")
    assert conv.loc["a"].converged
    old = pd.DataFrame(rows).drop(columns=["val_shared_acc", "val_private_acc"])
    assert summary.convergence(old).converged.isna().all()


def test_a_verdict_differs_only_from_a_reference_verdict_that_was_measured():
    mine = pd.DataFrame({"claim": ["1", "2", "3", "4"], "verdict": ["reproduced", "reproduced", "inconclusive",
                                                                      "not measured"]})
    ref = pd.DataFrame({"claim": ["1", "2", "3"], "verdict": ["reproduced", "not measured", "reproduced"]})
    marked = claims.with_reference(mine, ref).set_index("claim")
    assert marked.differs.to_dict() == {"1": False, "2": False, "3": True, "4": False}
    assert marked.reference_verdict.fillna("").to_dict() == {"1": "reproduced", "2": "not measured",
                                                             "3": "reproduced", "4": ""}
