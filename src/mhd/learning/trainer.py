"""The lock-step trainer: all clients advance together, one step at a time. It holds the models, the
optimiser and the teachers, and takes steps; loading, evaluation and checkpoints live elsewhere.

Each step every client draws its own private batch and all share one public batch. A client's
forward pass on [private; public] gives its main-head logits for the supervised loss and all its
heads' public outputs at once; those outputs, detached, are its neighbours' teachers in the same
step (or, with refresh_every R > 1, for the next R steps on the same public batch). One backward
pass over the sum of the clients' losses: their parameters are disjoint and teachers detached, so
each client's gradient is its own loss's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TrainingError
from . import budget, losses, methods, precision, sgd, teachers
from .engine import Engine
from .federation import Federation
from .models import MultiHead
from .teachers import Teachers, precision_counts


def lr_at(step: int, run: dict) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to 0 at `steps`."""
    base, warm, total = run["lr"], run["warmup_steps"], run["steps"]
    if step < warm:
        return base * (step + 1) / warm
    return base * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def build_projections(run: dict, models: nn.ModuleList, senders_aux_NxJ: torch.Tensor) -> nn.ModuleList:
    """Per client, a learned map from its embedding to each width of the senders it distils embeddings
    from (only where widths differ, or every width with emb_proj); none when nu_emb = 0."""
    dims = [m.dim for m in models]
    projections = nn.ModuleList()
    for i, m in enumerate(models):
        widths = {dims[j] for j in range(len(dims)) if senders_aux_NxJ[i, j].item() and
                  (dims[j] != m.dim or run["emb_proj"])} if run["nu_emb"] > 0 else set()
        projections.append(nn.ModuleDict({str(w): nn.Linear(m.dim, w, bias=False) for w in sorted(widths)}))
    return projections


def build_optimizer(run: dict, params: list[nn.Parameter]):
    """SGD (Nesterov momentum) or AdamW. SGD on the CPU is sgd.SGD, torch.optim.SGD's update without
    torch.optim's import of torch._dynamo at every job's start; elsewhere torch.optim.SGD."""
    if run["optimizer"] == "sgd":
        return sgd.make(params, lr=run["lr"], momentum=run["momentum"], weight_decay=run["weight_decay"],
                        nesterov=run["momentum"] > 0)
    return torch.optim.AdamW(params, lr=run["lr"], weight_decay=run["weight_decay"])


class Trainer:
    """State (models, optimiser, teachers, step) and the step. `run` is the effective run
    (methods.effective applied, as config.validate_run returns it)."""

    def __init__(self, run: dict, federation: Federation):
        self.run, self.fed = run, federation
        self.method = methods.get(run["method"])
        self.uses_public = methods.uses_public(run)
        self.device = federation.device
        self.precision_name = run["precision"]  # fp32 or bf16 (resolved when planned: learning/precision.py)
        archs = self.method.client_models(methods.architectures(run))
        in_ch, size = federation.image_shape
        budget.check(run, archs, in_ch, size, federation.classes, self.device)  # before the seed: draws nothing after it
        torch.manual_seed(run["seed"])  # model initialisation: models, wide models, then projections
        self.models = nn.ModuleList(MultiHead(a, in_ch, federation.classes, run["heads"], size)
                                    for a in archs).to(self.device)
        if run["channels_last"]:
            self.models.to(memory_format=torch.channels_last)
        self.engine = Engine(run, self.device, self.models, archs)
        self.projections = build_projections(run, self.models, federation.senders_aux_NxJ).to(self.device)
        self.opt = build_optimizer(run, self.engine.parameters() + list(self.projections.parameters()))
        self.layout = self.engine.optimizer_layout(self.projections)
        self.step = 0
        self.metrics: list[list] = []
        self.loss_sum = torch.zeros(len(self.models), device=self.device)
        self.loss_steps = 0
        self.teachers = Teachers()
        self.rule = teachers.rule(run)
        # what the rule keeps of each client's private data (the density rule's Gaussians; else nothing)
        self.densities = self.rule.private_models(run, self.models, federation.classes, self.device) \
            if self.uses_public else []
        # teacher precision since the last evaluation, per model and head: right weight, all weight
        self.precision = torch.zeros(2, len(self.models), run["heads"] + 1, device=self.device)
        # the first step whose loss was not finite (-1: none), kept on the device: no sync per step
        self.nonfinite_step = torch.tensor(-1, device=self.device)

    def autocast(self):
        return precision.autocast(self.device, self.precision_name)

    def train_step(self) -> None:
        r, t, fed = self.run, self.step, self.fed
        gen = fed.data.generator(r["seed"], t)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(t, r)
        refresh = self.uses_public and t % r["refresh_every"] == 0
        if refresh:  # the public batch is drawn first, so a resumed run can redraw it
            self.teachers.public_x, self.teachers.public_y = fed.data.public_batch(gen, r["batch_public"], with_labels=True)
        x_priv, y_priv = self.method.private_batch(fed.data, gen, r, fed.clients)
        bp = x_priv.shape[1]
        with self.autocast():
            embs, logits_NxBxKxC = self.engine.forward(x_priv, self.teachers.public_x if self.uses_public else None)
        n, c = logits_NxBxKxC.shape[0], logits_NxBxKxC.shape[-1]
        ce = F.cross_entropy(logits_NxBxKxC[:, :bp, 0].reshape(-1, c).float(), y_priv.reshape(-1),
                             reduction="none").view(n, bp).mean(dim=1)  # per client, as the loss of each alone
        total = ce.sum()
        if self.uses_public:
            embs_pub = [e[bp:] for e in embs]
            if refresh:
                self.teachers.probs_JxBxKxC = logits_NxBxKxC[:, bp:].detach().float().div(r["tau"]).softmax(-1)
                self.teachers.embeddings = [emb.detach() for emb in embs_pub]
                self.teachers.scores_JxBxK = self.rule.scores(r, logits_NxBxKxC[:, bp:], embs_pub, self.densities)
            distill, used = losses.distillation(r, t, self.teachers, fed.senders_main_NxJ, fed.senders_aux_NxJ,
                                                embs_pub, logits_NxBxKxC[:, bp:], self.projections)
            total = total + distill
            self.count_precision(used)
            self.rule.observe(r, self.densities, [e[:bp] for e in embs], y_priv, t + 1)
        bad = (self.nonfinite_step < 0) & ~torch.isfinite(total.detach())
        self.nonfinite_step = torch.where(bad, t, self.nonfinite_step)
        self.opt.zero_grad()
        total.backward()
        self.opt.step()
        self.method.after_step(self.models, r, t + 1)
        self.loss_sum += ce.detach()
        self.loss_steps += 1
        self.step += 1

    def check_finite(self) -> None:
        """Stop a diverged run, naming the first step whose loss was NaN or infinite (checked at each
        evaluation, before metrics or a checkpoint are written)."""
        step = int(self.nonfinite_step)
        if step >= 0:
            raise TrainingError(f"the training loss became NaN or infinite at step {step} (lr = {self.run['lr']}, "
                                f"optimizer {self.run['optimizer']}); no metrics or checkpoint after it were written. "
                                f"Lower lr, or raise warmup_steps or nu_rampup")

    def count_precision(self, used: dict) -> None:
        """Add this step's teacher weights to the precision counts (head k >= 1: "aux" column k-1; head 0: "main")."""
        right_JxB = self.fed.primary_NxC[:, self.teachers.public_y]
        for key, heads in (("aux", slice(1, None)), ("main", slice(0, 1))):
            if key in used:
                hits, total = precision_counts(used[key], right_JxB)
                self.precision[0, :, heads] += hits
                self.precision[1, :, heads] += total

    def teacher_precision(self) -> list[dict[int, float]]:
        """Per model, head -> the share of its targets' weight on right senders since the last call (then
        reset); heads without a target are left out, and every head when no client has primary classes (iid)."""
        counts = self.precision.tolist()
        self.precision.zero_()
        if not bool(self.fed.primary_NxC.any()):
            return [{} for _ in counts[0]]
        return [{k: hit / tot for k, (hit, tot) in enumerate(zip(hits, tots)) if tot > 0}
                for hits, tots in zip(*counts)]

    def mean_loss(self) -> list[float]:
        """Each model's mean training loss since the last call (then reset)."""
        out = (self.loss_sum / max(1, self.loss_steps)).tolist()
        self.loss_sum.zero_()
        self.loss_steps = 0
        return out
