"""Exact checks of teacher selection and the distillation losses on hand-made tensors."""

import math

import pytest
import torch

from mhd.errors import ConfigError
from mhd.learning import losses, teachers


def weights(probs_JxBxKxC, senders_NxJ, teacher, scores_JxBxK=None, **keys):
    """The teacher weights of `teacher` with the run's other teacher keys at their defaults, or `keys`."""
    run = {"teacher": teacher, "teacher_threshold": 0.0, "score_temperature": 0.0, **keys}
    return teachers.rule(run).weights(run, probs_JxBxKxC, senders_NxJ, scores_JxBxK)


def probs(*rows):
    return torch.tensor(rows, dtype=torch.float32)


# three senders, two public samples, one head, two classes: J x B x K x C
P = torch.stack([
    probs([[0.6, 0.4]], [[0.1, 0.9]]),   # sender 0: confident on sample 1
    probs([[0.8, 0.2]], [[0.5, 0.5]]),   # sender 1: confident on sample 0
    probs([[0.3, 0.7]], [[0.2, 0.8]]),   # sender 2
])


def test_max_confidence_picks_the_most_confident_sender_per_sample():
    senders = torch.tensor([[False, True, True],    # receiver 0 hears 1 and 2
                            [True, True, True],     # receiver 1 hears everyone
                            [False, False, False]])  # receiver 2 hears nobody
    w = weights(P, senders, "max_confidence")
    assert w.shape == (3, 3, 2, 1)
    assert w[0, :, 0, 0].tolist() == [0, 1, 0]     # sample 0: sender 1 (0.8) beats sender 2 (0.7)
    assert w[0, :, 1, 0].tolist() == [0, 0, 1]     # sample 1: sender 2 (0.8) beats sender 1 (0.5)
    assert w[1, :, 1, 0].tolist() == [1, 0, 0]     # sample 1: sender 0 (0.9) when it is heard
    assert w[2].abs().sum() == 0                   # no sender: no target
    t = teachers.teacher_targets(P, w)
    assert torch.equal(t[0, 0, 0], P[1, 0, 0]) and torch.equal(t[0, 1, 0], P[2, 1, 0])


def test_mean_and_confidence_weighted_rules():
    senders = torch.tensor([[True, True, False]])
    mean = teachers.teacher_targets(P, weights(P, senders, "mean"))
    assert torch.allclose(mean[0, 0, 0], torch.tensor([0.7, 0.3]))
    cw = teachers.teacher_targets(P, weights(P, senders, "confidence_weighted"))
    # sample 0: confidences 0.6 and 0.8 -> weights 3/7 and 4/7
    expected = (0.6 * P[0, 0, 0] + 0.8 * P[1, 0, 0]) / 1.4
    assert torch.allclose(cw[0, 0, 0], expected)
    with pytest.raises(ConfigError, match="unknown teacher rule 'vote'; allowed: max_confidence, mean"):
        weights(P, senders, "vote")


def test_chained_heads_use_the_previous_head():
    # one sender, one sample, heads 0 and 1 give different predictions; head k of the receiver
    # is taught by head k-1 of the sender, so the targets are the sender's heads 0..H-1.
    p = torch.tensor([[[[0.9, 0.1], [0.2, 0.8]]]])   # J=1, B=1, K=2, C=2
    w = weights(p[:, :, :1], torch.tensor([[True]]), "max_confidence")
    assert torch.equal(teachers.teacher_targets(p[:, :, :1], w)[0, 0, 0], p[0, 0, 0])


def test_kl_is_zero_when_student_equals_teacher_and_exact_otherwise():
    logits = torch.tensor([[[2.0, -1.0, 0.5]]])
    for tau in (1.0, 2.0):
        target = (logits / tau).softmax(-1)
        assert losses.distill_kl(logits, target, tau).abs() < 1e-6
    target = torch.tensor([[[0.5, 0.25, 0.25]]])
    q = logits.softmax(-1)[0, 0]
    expected = sum(t * math.log(t / qq) for t, qq in zip(target[0, 0].tolist(), q.tolist()))
    assert losses.distill_kl(logits, target, 1.0).item() == pytest.approx(expected, rel=1e-5)
    assert losses.distill_kl(logits, target, 2.0).item() == pytest.approx(
        4 * sum(t * math.log(t / qq) for t, qq in zip(target[0, 0].tolist(), (logits / 2).softmax(-1)[0, 0].tolist())),
        rel=1e-5)


def test_kl_sums_over_heads_and_ignores_zero_targets():
    logits = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])
    assert losses.distill_kl(logits, target, 1.0).item() == pytest.approx(math.log(2), rel=1e-6)


def test_kl_of_all_clients_at_once_is_each_clients_own():
    torch.manual_seed(0)
    student, target = torch.randn(3, 5, 2, 4), torch.randn(3, 5, 2, 4).softmax(-1)
    per_client = losses.distill_kl(student, target, 2.0)
    assert per_client.shape == (3,)
    for i in range(3):
        assert per_client[i].item() == pytest.approx(losses.distill_kl(student[i], target[i], 2.0).item(), rel=1e-6)


def test_no_gradient_reaches_a_teacher():
    teacher_logits = torch.randn(4, 2, 3, requires_grad=True)
    student = torch.randn(4, 2, 3, requires_grad=True)
    target = (teacher_logits / 1.0).softmax(-1)
    losses.distill_kl(student, target, 1.0).backward()
    assert teacher_logits.grad is None and student.grad is not None
    t_emb = torch.randn(4, 5, requires_grad=True)
    s_emb = torch.randn(4, 5, requires_grad=True)
    losses.embedding_loss(s_emb, [t_emb], torch.ones(1, 4), {}).backward()
    assert t_emb.grad is None and s_emb.grad is not None


def test_embedding_loss_is_zero_for_parallel_embeddings_and_uses_projections():
    e = torch.randn(3, 4)
    assert losses.embedding_loss(2 * e, [e], torch.ones(1, 3), {}).abs() < 1e-6
    # opposite directions: squared distance of unit vectors = 4
    assert losses.embedding_loss(-e, [e], torch.ones(1, 3), {}).item() == pytest.approx(4.0, rel=1e-5)
    proj = torch.nn.Linear(4, 6, bias=False)
    wide = torch.randn(3, 6)
    loss = losses.embedding_loss(e, [wide], torch.ones(1, 3), {"6": proj})
    loss.backward()
    assert proj.weight.grad is not None
    # weight 0 on every sample: nothing to learn
    assert losses.embedding_loss(e, [e * -1], torch.zeros(1, 3), {}).item() == 0


def test_a_loss_term_is_one_entry_of_terms(monkeypatch):
    """The distillation loss, the bytes sent and the methods' presets follow losses.TERMS: a term added
    there is summed with its weight, and every method without distillation turns it off."""
    from mhd.learning import methods

    gen = torch.Generator().manual_seed(0)
    student = torch.randn(2, 3, 2, 4, generator=gen)  # N x B x K x C with heads = 1
    state = teachers.Teachers(probs_JxBxKxC=torch.randn(2, 3, 2, 4, generator=gen).softmax(-1))
    both = torch.ones(2, 2, dtype=torch.bool)
    run = {"heads": 1, "nu_rampup": 0, "teacher": "energy", "teacher_threshold": 0.0, "score_temperature": 0.0,
           "nu_aux": 1.0, "nu_emb": 0.0, "nu_main": 0.0, "tau": 1.0, "nu_norm": 0.5}
    before, used = losses.distillation(run, 0, state, both, both, [], student, None)
    assert list(used) == ["aux"] and losses.values_sent(run, 8, 4) == 1 * 4 + 1  # head 0's predictions, its energy
    norm = losses.Term("nu_norm", lambda run: set(), True, lambda p: [p.logits_pub_NxBxKxC.square().mean()])
    monkeypatch.setattr(losses, "TERMS", (*losses.TERMS, norm))
    after, _ = losses.distillation(run, 0, state, both, both, [], student, None)
    assert after.item() == pytest.approx(before.item() + 0.5 * student.square().mean().item(), rel=1e-6)
    assert losses.values_sent(run, 8, 4) == 1 * 4 + 1 + 8  # and now its embedding
    every, naive = set(losses.WEIGHTS), set(losses.WEIGHTS) - {"nu_main"}
    expected = {"mhd": set(), "isolated": every, "single_head": naive, "mean_target": naive, "fedavg": every,
                "centralized": every}
    assert {name: {w for w in every if preset.get(w) == 0.0} for name, preset in methods.PRESETS.items()} == expected


def test_embedding_loss_mixes_senders_of_two_widths_each_by_its_own_weights():
    """Senders of two widths: each width's target mixes only its senders' embeddings, by their rows of
    the weights (picked by Python ints, so a CUDA step never copies an index list to the GPU)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    student = torch.randn(3, 4)
    senders = [torch.randn(3, 4), torch.randn(3, 6), torch.randn(3, 4)]
    w = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 0.0]])  # J x B
    proj = torch.nn.Linear(4, 6, bias=False)

    def by_hand(s, idx):
        share = w[idx[0]] + (w[idx[1]] if len(idx) > 1 else 0)
        target = sum(w[j][:, None] * F.normalize(senders[j], dim=-1) for j in idx) / share.clamp_min(1e-12)[:, None]
        return (share * (F.normalize(s, dim=-1) - target).pow(2).sum(dim=-1)).mean()

    got = losses.embedding_loss(student, senders, w, {"6": proj})
    torch.testing.assert_close(got, by_hand(student, [0, 2]) + by_hand(proj(student), [1]))
