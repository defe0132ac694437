"""Teachers: the teacher rules, which turn what the senders sent on the current public batch into each
receiver's target (which sender's prediction a receiver distils from, per public sample and head),
and `Teachers`, what the senders sent.

Each rule is a `Rule` registered by its name (the config's `teacher`), as the methods are in
methods.py: how it weights the senders, what the senders send beside their predictions and how many
values that is, what it keeps of each client's private data, and which config keys it reads. It takes
its keys from the run by their config names (`teacher_threshold`, `score_temperature`,
`density_refit_every`). Adding a rule touches this file and the schema's `teacher` enum
(tests/test_teachers.py keeps the two equal).

torch is imported inside the functions that compute, not at module level: the config's checks
(methods.effective, when a config is read) and the report (rule names, the paper's rule) read this
registry, and they run without paying for torch's start-up.

Shapes: N receiving clients, J sending clients, B public samples, K heads, C classes, D embedding dims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch


class Rule:
    """One teacher rule; a rule overrides only where it differs.

    paper: the rule of the paper (the report names the others in a front's name).
    reads: the config keys this rule reads beside `teacher` and `teacher_threshold` (which every rule
    reads), each with the value that means "not used" (None: no such value; such a key is refused only
    when an experiment gives it). A rule that does not list a key refuses it (`check`)."""

    paper = False
    reads: dict = {}

    def __init__(self, name: str):
        self.name = name

    def weights(self, run: dict, probs_JxBxKxC: torch.Tensor, senders_NxJ: torch.Tensor,
                scores_JxBxK: torch.Tensor | None = None) -> torch.Tensor:
        """Weight of sender j in receiver n's target, per sample and head: N x J x B x K, rows sum to 1
        where n has a sender, 0 where it has none. teacher_threshold p > 0 [ours, IDKD-like]: only
        senders whose max_c p_j(c|u) reaches p count, for every rule; a sample no sender passes gets no
        target (weights 0: it adds no loss)."""
        conf_JxBxK = probs_JxBxKxC.amax(dim=-1)
        mask_NxJxBxK = senders_NxJ[:, :, None, None]  # broadcast over samples and heads
        if run["teacher_threshold"] > 0:  # senders that pass, per sample and head
            mask_NxJxBxK = mask_NxJxBxK & (conf_JxBxK >= run["teacher_threshold"])[None]
        return self.choose(run, mask_NxJxBxK, conf_JxBxK, scores_JxBxK)

    def choose(self, run: dict, mask_NxJxBxK: torch.Tensor, conf_JxBxK: torch.Tensor,
               scores_JxBxK: torch.Tensor | None) -> torch.Tensor:
        """The weights among the senders that count (mask), from their confidence max_c p_j(c|u)."""
        raise NotImplementedError

    def values_sent(self, heads: int) -> int:
        """Values a sender sends per public sample beside the predictions of the `heads` heads it sends."""
        return 0

    def private_models(self, run: dict, models, classes: int, device) -> list:
        """Per client, what the rule keeps of its private data; checkpointed with the trainer, so each
        has `state()` and `load(state, device)` (density.PrivateDensity)."""
        return []

    def scores(self, run: dict, logits_pub_NxBxKxC: torch.Tensor, embs_pub: list[torch.Tensor],
               private_models: list) -> torch.Tensor | None:
        """What the senders send beside their predictions, J x B x K, on a refresh; None: nothing."""
        return None

    def observe(self, run: dict, private_models: list, embs_priv: list[torch.Tensor], y_priv_NxB: torch.Tensor,
                steps_done: int) -> None:
        """After every step's loss, with the step's private embeddings and labels per client."""


class MaxConfidence(Rule):
    """[paper] one-hot on j* = argmax_j max_c p_j(c|u) (ties: the lowest j)."""

    paper = True

    def choose(self, run, mask_NxJxBxK, conf_JxBxK, scores_JxBxK):
        return _one_hot(conf_JxBxK, mask_NxJxBxK, -1.0)


class Mean(Rule):
    """Uniform over the senders (the paper's suggested direction; FedMD / DS-FL-like)."""

    def choose(self, run, mask_NxJxBxK, conf_JxBxK, scores_JxBxK):
        return _normalised(mask_NxJxBxK.to(conf_JxBxK.dtype).expand(-1, -1, *conf_JxBxK.shape[1:]))


class ConfidenceWeighted(Rule):
    """Proportional to max_c p_j(c|u) (the paper's suggested direction)."""

    def choose(self, run, mask_NxJxBxK, conf_JxBxK, scores_JxBxK):
        return _normalised(mask_NxJxBxK * conf_JxBxK[None])


class Scored(Rule):
    """[ours: the paper's suggested direction] one-hot on the sender with the highest in-distribution
    score, or with score_temperature T > 0 a softmax of the scores over the senders. Without scores
    (the density rule before its first fit) it chooses by confidence, as max_confidence."""

    reads = {"score_temperature": 0.0}

    def choose(self, run, mask_NxJxBxK, conf_JxBxK, scores_JxBxK):
        if scores_JxBxK is None:
            return _one_hot(conf_JxBxK, mask_NxJxBxK, -1.0)
        temperature = run["score_temperature"]
        if temperature > 0:
            logits = _torch().where(mask_NxJxBxK, scores_JxBxK[None] / temperature, float("-inf"))
            weights = logits.softmax(dim=1).nan_to_num(0.0)  # a sample no sender passes: all -inf, weights 0
            return weights.to(conf_JxBxK.dtype)
        return _one_hot(scores_JxBxK, mask_NxJxBxK, float("-inf"), conf_JxBxK.dtype)


class Energy(Scored):
    """The score: logsumexp of each head's logits (the negative free energy), one value per head sent."""

    def values_sent(self, heads: int) -> int:
        return heads

    def scores(self, run, logits_pub_NxBxKxC, embs_pub, private_models):
        return logits_pub_NxBxKxC.detach().float().logsumexp(dim=-1)


class Density(Scored):
    """The score: the Mahalanobis score of the sender's Gaussians of its own private embeddings
    (density.py), one value per sample, the same for all its heads. Each step adds the client's private
    embeddings to its sums; every `density_refit_every` steps the Gaussians are refitted from them."""

    reads = {**Scored.reads, "density_refit_every": None}

    def values_sent(self, heads: int) -> int:
        return 1

    def private_models(self, run, models, classes, device):
        from .density import PrivateDensity

        return [PrivateDensity(m.dim, classes, device) for m in models]

    def scores(self, run, logits_pub_NxBxKxC, embs_pub, private_models):
        from .density import scores

        return scores(private_models, embs_pub, logits_pub_NxBxKxC.shape[2])

    def observe(self, run, private_models, embs_priv, y_priv_NxB, steps_done):
        for density, emb, y in zip(private_models, embs_priv, y_priv_NxB):
            density.add(emb, y)
            if steps_done % run["density_refit_every"] == 0:
                density.refit()


def _torch():
    import torch

    return torch


def _one_hot(score_JxBxK: torch.Tensor, mask_NxJxBxK: torch.Tensor, lowest: float, dtype=None) -> torch.Tensor:
    """One-hot on the highest score among the senders that count (ties: the lowest j); 0 where none
    counts. No host round trip: a scalar fill and a comparison."""
    torch = _torch()
    scores = torch.where(mask_NxJxBxK, score_JxBxK[None], lowest)
    chosen_Nx1xBxK = scores.argmax(dim=1, keepdim=True)
    senders_1xJx1x1 = torch.arange(mask_NxJxBxK.shape[1], device=score_JxBxK.device)[None, :, None, None]
    weights = (chosen_Nx1xBxK == senders_1xJx1x1).to(dtype or score_JxBxK.dtype)
    return weights * mask_NxJxBxK.any(dim=1, keepdim=True)


def _normalised(weights_NxJxBxK: torch.Tensor) -> torch.Tensor:
    return weights_NxJxBxK / weights_NxJxBxK.sum(dim=1, keepdim=True).clamp_min(1e-12)


_ALL = (MaxConfidence("max_confidence"), Mean("mean"), ConfidenceWeighted("confidence_weighted"),
        Energy("energy"), Density("density"))
BY_NAME = {r.name: r for r in _ALL}
RULES = tuple(BY_NAME)  # the order of legends and tables
PAPER = next(r.name for r in _ALL if r.paper)


def rule(run: dict) -> Rule:
    """The run's teacher rule (its `teacher`)."""
    name = run["teacher"]
    if name not in BY_NAME:
        raise ConfigError(f"unknown teacher rule {name!r}; allowed: {', '.join(RULES)}")
    return BY_NAME[name]


def check(run: dict, explicit: dict | None = None) -> None:
    """Refuse a key that only other rules read: set to anything but its "not used" value, or, for a key
    without one, given by an experiment (`explicit`)."""
    own = rule(run)
    for key in dict.fromkeys(k for r in _ALL for k in r.reads):
        if key in own.reads:
            continue
        users = " / ".join(r.name for r in _ALL if key in r.reads)
        unused = next(r.reads[key] for r in _ALL if key in r.reads)
        if unused is not None and run[key] != unused:
            raise ConfigError(f"{key} = {run[key]!r}, but only teacher: {users} reads it; teacher is {own.name!r}: "
                              f"set {key}: {unused!r} or teacher: {users}")
        if unused is None and explicit and key in explicit:
            raise ConfigError(f"{key} = {explicit[key]!r} is given, but only teacher: {users} reads it; teacher "
                              f"is {own.name!r}")


def precision_counts(weights_NxJxBxK: torch.Tensor, right_JxB: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per receiver and head (N x K): the weight its targets put on a right sender (one that has the
    sample's true class among its primary classes: right_JxB), and the weight in all. Their ratio
    over an evaluation interval is the teacher precision."""
    w = weights_NxJxBxK.float()
    return _torch().einsum("njbk,jb->nk", w, right_JxB.float()), w.sum(dim=(1, 2))


def teacher_targets(probs_JxBxKxC: torch.Tensor, weights_NxJxBxK: torch.Tensor) -> torch.Tensor:
    """N x B x K x C: each receiver's target distribution per public sample and head."""
    return _torch().einsum("njbk,jbkc->nbkc", weights_NxJxBxK, probs_JxBxKxC)


@dataclass
class Teachers:
    """The clients' detached outputs on one public batch: their neighbours' teachers until the next
    refresh (every `refresh_every` steps the public batch is redrawn and the outputs recomputed)."""
    public_x: torch.Tensor | None = None           # B x C x H x W: the public batch, normalised
    probs_JxBxKxC: torch.Tensor | None = None      # softmax(logits / tau) of every sender's heads
    embeddings: list[torch.Tensor] = field(default_factory=list)  # per sender: B x D_j (widths may differ)
    scores_JxBxK: torch.Tensor | None = None       # what a scored rule's senders send (Rule.scores)
    public_y: torch.Tensor | None = None           # B: the public batch's labels, never trained on (teacher precision)

    def state(self) -> dict:
        """Checkpoint form, on the CPU; None where nothing was sent yet."""
        return {"public_x": _cpu(self.public_x), "probs_JxBxKxC": _cpu(self.probs_JxBxKxC),
                "embeddings": [e.cpu() for e in self.embeddings], "scores_JxBxK": _cpu(self.scores_JxBxK),
                "public_y": _cpu(self.public_y)}

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> "Teachers":
        def to(t):
            return None if t is None else t.to(device)
        return cls(to(state["public_x"]), to(state["probs_JxBxKxC"]), [e.to(device) for e in state["embeddings"]],
                   to(state["scores_JxBxK"]), to(state["public_y"]))


def _cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.cpu()
