"""The out-of-distribution-aware teacher rules (energy, density), the confidence threshold and the
teacher precision metric, on hand-made tensors and on the tiny dataset."""

import pandas as pd
import pytest
import torch

from conftest import make_trainer
from mhd.errors import ConfigError
from mhd.learning import losses, teachers
from mhd.learning.density import PrivateDensity, scores as density_scores
from mhd.learning.evaluation import evaluate
from test_train import make_run

# two senders, two public samples, one head, two classes: J x B x K x C
P = torch.tensor([[[[0.6, 0.4]], [[0.55, 0.45]]],    # sender 0: unsure on both
                  [[[0.95, 0.05]], [[0.9, 0.1]]]])   # sender 1: confident on both
BOTH = torch.tensor([[True, True]])


def weights(probs_JxBxKxC, senders_NxJ, teacher, scores_JxBxK=None, **keys):
    """The teacher weights of `teacher` with the run's other teacher keys at their defaults, or `keys`."""
    run = {"teacher": teacher, "teacher_threshold": 0.0, "score_temperature": 0.0, **keys}
    return teachers.rule(run).weights(run, probs_JxBxKxC, senders_NxJ, scores_JxBxK)


def test_scored_rules_choose_the_best_score_not_the_most_confident():
    scores = torch.tensor([[[3.0], [0.5]], [[1.0], [2.0]]])  # J x B x K: sender 0 wins sample 0, sender 1 sample 1
    assert weights(P, BOTH, "max_confidence")[0, :, :, 0].tolist() == [[0, 0], [1, 1]]
    for rule in ("energy", "density"):
        w = weights(P, BOTH, rule, scores)
        assert w[0, :, :, 0].tolist() == [[1, 0], [0, 1]], rule
    # a softmax of the scores with a temperature: weights exp(s_j / T) / sum
    soft = weights(P, BOTH, "energy", scores, score_temperature=2.0)
    expected = torch.tensor([3.0, 1.0]).div(2.0).softmax(0)
    torch.testing.assert_close(soft[0, :, 0, 0], expected)
    # no scores yet (the density rule before its first fit): by confidence
    assert torch.equal(weights(P, BOTH, "density"), weights(P, BOTH, "max_confidence"))


def test_threshold_drops_unsure_senders_and_samples_nobody_passes():
    p = torch.tensor([[[[0.6, 0.4]], [[0.7, 0.3]]],
                      [[[0.55, 0.45]], [[0.9, 0.1]]]])
    for rule in ("max_confidence", "mean", "confidence_weighted", "energy"):
        w = weights(p, BOTH, rule, torch.zeros(2, 2, 1) if rule == "energy" else None, teacher_threshold=0.65)
        assert w[0, :, 0, 0].tolist() == [0, 0], rule        # sample 0: nobody reaches 0.65, no target
        assert w[0, :, 1, 0].sum() == pytest.approx(1.0), rule
    assert weights(p, BOTH, "mean", teacher_threshold=0.65)[0, :, 1, 0].tolist() == [0.5, 0.5]
    # a sample without a target adds no loss: its KL term is 0
    w = weights(p, BOTH, "max_confidence", teacher_threshold=0.95)
    target = teachers.teacher_targets(p, w)
    assert target.abs().sum() == 0
    assert losses.distill_kl(torch.randn(1, 2, 1, 2), target, 1.0).item() == 0


def _fitted(mean: float, dim: int = 4, n: int = 400, seed: int = 0) -> PrivateDensity:
    gen = torch.Generator().manual_seed(seed)
    density = PrivateDensity(dim, classes=2, device=torch.device("cpu"))
    emb = mean + 0.3 * torch.randn(n, dim, generator=gen)
    density.add(emb, torch.arange(n) % 2)
    density.refit()
    return density


def test_density_prefers_the_in_distribution_sender_over_a_confident_stranger():
    """Sender 0's private embeddings lie around 0, sender 1's around 5; the public sample lies among
    sender 0's data, and sender 1 is confidently wrong about it."""
    densities = [_fitted(0.0), _fitted(5.0, seed=1)]
    sample = torch.zeros(1, 4) + 0.1
    s = density_scores(densities, [sample, sample], heads=1)
    assert s.shape == (2, 1, 1) and s[0, 0, 0] > s[1, 0, 0]
    # the squared distance is about D in distribution: the score of sender 0's own data is near -1
    own = _fitted(0.0).score(0.3 * torch.randn(2000, 4, generator=torch.Generator().manual_seed(5)))
    assert own.mean().item() == pytest.approx(-1.0, abs=0.2)
    p = P[:, :1]  # sender 1 is the more confident
    assert weights(p, BOTH, "max_confidence")[0, :, 0, 0].tolist() == [0, 1]
    assert weights(p, BOTH, "density", s)[0, :, 0, 0].tolist() == [1, 0]


def test_density_refits_from_the_window_since_the_last_fit():
    density = _fitted(0.0)
    first = density.means_CxD.clone()
    assert density.counts_C.sum() == 0  # the sums start again after a fit
    density.add(torch.full((10, 4), 2.0), torch.arange(10) % 2)
    density.refit()
    assert torch.allclose(density.means_CxD, torch.full((2, 4), 2.0)) and not torch.allclose(first, density.means_CxD)
    unfitted = PrivateDensity(4, 2, torch.device("cpu"))
    assert unfitted.score(torch.zeros(3, 4)) is None
    assert density_scores([density, unfitted], [torch.zeros(3, 4)] * 2, heads=2) is None


def test_no_gradient_reaches_a_teacher():
    """The scores and predictions a receiver distils from are detached: the loss's gradient reaches the
    student's logits and nothing on the teachers' side."""
    teacher_logits = torch.randn(2, 3, 2, 4, requires_grad=True)  # J x B x K x C (K = heads + 1 with heads = 1)
    teacher_embs = [torch.randn(3, 4, requires_grad=True) for _ in range(2)]
    run = {"teacher": "energy", "heads": 1}
    energy = teachers.rule(run).scores(run, teacher_logits, teacher_embs, [])
    densities = [_fitted(0.0), _fitted(1.0)]
    density = teachers.BY_NAME["density"].scores(run, teacher_logits, teacher_embs, densities)
    assert not energy.requires_grad and not density.requires_grad
    torch.testing.assert_close(energy, teacher_logits.detach().logsumexp(-1))
    state = teachers.Teachers(probs_JxBxKxC=teacher_logits.detach().softmax(-1), scores_JxBxK=energy)
    student = torch.randn(2, 3, 2, 4, requires_grad=True)
    r = {"heads": 1, "nu_rampup": 0, "teacher": "energy", "teacher_threshold": 0.0, "score_temperature": 1.0,
         "nu_aux": 1.0, "nu_emb": 0.0, "nu_main": 0.0, "tau": 1.0}
    loss, used = losses.distillation(r, 0, state, BOTH.expand(2, 2), torch.ones(2, 2, dtype=torch.bool), [], student, None)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher_logits.grad is None and all(e.grad is None for e in teacher_embs)
    assert used["aux"].shape == (2, 2, 3, 1)


def test_precision_counts_the_weight_on_senders_that_own_the_class():
    w = torch.tensor([[[[1.0], [0.0]], [[0.0], [1.0]]]])   # N=1 x J=2 x B=2 x K=1: sample 0 from 0, sample 1 from 1
    right = torch.tensor([[True, True], [False, False]])  # sender 0 owns both samples' classes
    hits, total = teachers.precision_counts(w, right)
    assert hits.tolist() == [[1.0]] and total.tolist() == [[2.0]]


@pytest.mark.parametrize("rule", ["max_confidence", "mean", "energy", "density"])
def test_teacher_precision_is_reported_per_head_for_every_rule(repo, inputs, rule):
    run = make_run(repo, method="mhd", heads=2, teacher=rule,
                   **({"density_refit_every": 2} if rule == "density" else {}))
    trainer = make_trainer(run, inputs)
    for _ in range(6):
        trainer.train_step()
    rows = pd.DataFrame(evaluate(trainer), columns=["step", "client", "head", "metric", "value"])
    prec = rows[rows.metric == "teacher_precision"]
    assert sorted(prec["head"].unique()) == ["1", "2"]  # the heads that distil; the main head does not (nu_main 0)
    assert len(prec) == 4 * 2 and prec.value.between(0, 1).all()
    if rule == "density":
        assert all(d.chol_DxD is not None for d in trainer.densities)
    single = make_trainer(make_run(repo, method="single_head"), inputs)
    single.train_step()
    got = pd.DataFrame(evaluate(single), columns=["step", "client", "head", "metric", "value"])
    assert got[got.metric == "teacher_precision"]["head"].unique().tolist() == ["0"]


def test_teacher_settings_a_rule_cannot_use_are_refused(repo):
    with pytest.raises(ConfigError, match="score_temperature = 0.5, but only teacher: energy / density reads it; "
                                          "teacher is 'max_confidence'"):
        make_run(repo, score_temperature=0.5)
    with pytest.raises(ConfigError, match="density_refit_every = 10 is given, but only teacher: density"):
        make_run(repo, teacher="energy", density_refit_every=10)
    assert make_run(repo, teacher="density", density_refit_every=10)["density_refit_every"] == 10
    assert make_run(repo, teacher="energy", score_temperature=0.5)["score_temperature"] == 0.5
    with pytest.raises(ConfigError, match="unknown teacher rule 'vote'; allowed: max_confidence, mean, "
                                          "confidence_weighted, energy, density"):
        teachers.rule({"teacher": "vote"})


def test_the_registry_is_the_schemas_list_of_rules(repo):
    """The schema's `teacher` enum lists the registry's rules in its order; its default is the paper's
    rule, the one the report leaves out of a front's name."""
    from mhd import config as mconfig
    from mhd.report import readouts

    spec = mconfig.schema()["$defs"]["run"]["properties"]["teacher"]
    assert tuple(spec["enum"]) == teachers.RULES and spec["default"] == teachers.PAPER
    assert [r.name for r in teachers.BY_NAME.values() if r.paper] == [teachers.PAPER]
    assert readouts.family("mhd", 1, True, teachers.PAPER) == "MHD (with include_self)"
    assert readouts.family("mhd", 1, True, "energy") == "MHD (with include_self, teacher energy)"


def test_a_rule_sends_its_scores_values():
    """energy: one value per head sent; density: one per sample; the others: nothing beside predictions."""
    assert {name: r.values_sent(3) for name, r in teachers.BY_NAME.items()} == {
        "max_confidence": 0, "mean": 0, "confidence_weighted": 0, "energy": 3, "density": 1}


def test_teacher_scores_of_a_trained_run(repo, inputs, tmp_path):
    """`mhd teacher-scores`: every score's precision and AUROC on a trained density run; AUROC is the
    rank statistic (hand-made case), and a run folder without a checkpoint is a message."""
    from mhd import config as mconfig
    from mhd.errors import DataError
    from mhd.learning import run as train
    from mhd.report import teacher_scores

    assert teacher_scores._auroc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert teacher_scores._auroc(torch.tensor([1.0, 4.0]), torch.tensor([2.0, 3.0])) == 0.5
    run = make_run(repo, method="mhd", heads=2, teacher="density", density_refit_every=2)
    train.train(run, inputs["prepared"], inputs["split_dir"], inputs["graph_dir"], tmp_path, device="cpu", progress=False)
    mconfig.write_run_file(tmp_path / "run.yaml", {"inputs": {"prepared": str(inputs["prepared"]),
                                                              "split": str(inputs["split_dir"]),
                                                              "graph": str(inputs["graph_dir"])}, "run": run})
    rows = teacher_scores.measure(tmp_path, samples=0)
    assert [r["score"] for r in rows][0] == "density as trained (window fit)" and len(rows) == 6
    assert all(0 <= r["precision"] <= 1 and 0 <= r["auroc"] <= 1 for r in rows)
    assert "| main head top softmax (max_confidence) |" in teacher_scores.markdown(rows, tmp_path)
    with pytest.raises(DataError, match="needs run.yaml and checkpoint.pt"):
        teacher_scores.measure(tmp_path / "missing")
