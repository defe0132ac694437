"""The lock-step trainer: all clients advance together, one step at a time.

Each step every client draws its own private batch and all share one public batch. A client's
forward pass on [private; public] gives its main-head logits for the supervised loss and all its
heads' public outputs at once; those outputs, detached, are its neighbours' teachers in the same
step (or, with refresh_every R > 1, for the next R steps on the same public batch). One backward
pass over the sum of the clients' losses: their parameters are disjoint and teachers detached, so
each client's gradient is its own loss's.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import datasets, evaluate, graphs, losses, methods, provenance, splits
from . import io as mio
from .errors import ConfigError, DataError
from .models import MultiHead
from .vectorised import from_client_layout, to_client_layout, unsupported_layers

BYTES_PER_VALUE = 4  # predictions and embeddings are sent as float32


# how a run executes, not what it computes (equal within float tolerance): a checkpoint resumes
# across them, e.g. a run begun vectorised on a GPU goes on with the loop on a CPU
EXECUTION_KEYS = ("engine", "compile")


def config_hash(run: dict) -> str:
    what = {k: v for k, v in run.items() if k not in EXECUTION_KEYS}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def lr_at(step: int, run: dict) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to 0 at `steps`."""
    base, warm, total = run["lr"], run["warmup_steps"], run["steps"]
    if step < warm:
        return base * (step + 1) / warm
    return base * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda' but no CUDA device is available; use device: auto or cpu")
    return torch.device(name)


def resolve_engine(run: dict, device: torch.device, models: nn.ModuleList) -> str:
    """`engine` of the run -> "loop" or "vectorised". auto: vectorised on CUDA, the loop on the CPU,
    where the loop measured faster (README, Performance). One model (centralized): the loop."""
    if run["engine"] == "loop" or run["method"] == "centralized" or (run["engine"] == "auto" and device.type != "cuda"):
        return "loop"
    one_each = {arch: m for arch, m in zip(methods.architectures(run), models)}  # one model per architecture
    bad = sorted({f"{arch}: {b}" for arch, m in one_each.items() for b in unsupported_layers(m)})
    if run["engine"] == "vectorised":
        if bad:
            raise ConfigError(f"engine = 'vectorised', but these layers cannot run side by side: {'; '.join(bad[:5])}; "
                              f"allowed: engine auto or loop")
        return "vectorised"
    return "loop" if bad else "vectorised"


class Trainer:
    def __init__(self, run: dict, prepared: str | Path, split_dir: str | Path, graph_dir: str | Path,
                 device: str = "auto"):
        self.run = methods.effective(run)
        r = self.run
        self.device = pick_device(device if device != "auto" else r.get("device", "auto"))
        self.amp = self.device.type == "cuda"  # bf16 autocast (tests switch it on for the CPU too)
        tensors, self.data_meta = datasets.load(prepared)
        split, self.split_meta = splits.read(split_dir)
        edges, self.graph_meta = graphs.read(graph_dir)
        self.n, self.classes = r["clients"], self.data_meta["classes"]
        if split.distribution.shape[0] != self.n or self.graph_meta["params"]["clients"] != self.n:
            raise DataError(f"run has clients = {self.n}, but split {split_dir} has {split.distribution.shape[0]} "
                            f"and graph {graph_dir} has {self.graph_meta['params']['clients']}")
        from .batches import TensorData

        self.data = TensorData(tensors["train_x"], tensors["train_y"], split.private, split.public, self.device,
                               r["augment"])
        test_idx = torch.arange(len(tensors["test_y"]))
        if r["eval_samples"]:  # the first eval_samples / C test images of every class
            per_class = max(1, r["eval_samples"] // self.classes)
            test_idx = torch.cat([torch.nonzero(tensors["test_y"] == c)[:per_class, 0] for c in range(self.classes)]).sort().values
        self.test_x = tensors["test_x"][test_idx].to(self.device)
        self.test_y = tensors["test_y"][test_idx].to(self.device)
        labels = tensors["train_y"].numpy()
        counts = np.stack([np.bincount(labels[p], minlength=self.classes) for p in split.private])
        self.private_dist = torch.as_tensor(counts / counts.sum(1, keepdims=True), dtype=torch.float32,
                                            device=self.device)
        senders = torch.zeros(self.n, self.n, dtype=torch.bool)
        for src, dst in edges:
            senders[dst, src] = True
        self.senders_main = senders.to(self.device)
        self.senders_aux = (senders | torch.eye(self.n, dtype=torch.bool) if r["include_self"] else senders).to(self.device)
        self.out_degree = [sum(1 for s, _ in edges if s == i) for i in range(self.n)]
        self.centralized = r["method"] == "centralized"
        self.public = methods.uses_public(r)

        torch.manual_seed(r["seed"])
        archs = methods.architectures(r)[:1] if self.centralized else methods.architectures(r)
        in_ch, size = tensors["train_x"].shape[1], tensors["train_x"].shape[-1]
        self.models = nn.ModuleList(MultiHead(a, in_ch, self.classes, r["heads"], size) for a in archs).to(self.device)
        if r["channels_last"]:
            self.models.to(memory_format=torch.channels_last)
        self.engine = resolve_engine(r, self.device, self.models)
        self.groups = self.build_groups(archs)
        dims = [m.dim for m in self.models]
        self.projections = nn.ModuleList()
        for i, m in enumerate(self.models):
            widths = {dims[j] for j in range(len(dims)) if self.senders_aux[i, j].item() and
                      (dims[j] != m.dim or r["emb_proj"])} if r["nu_emb"] > 0 else set()
            self.projections.append(nn.ModuleDict({str(w): nn.Linear(m.dim, w, bias=False) for w in sorted(widths)}))
        self.projections.to(self.device)
        trained = list(self.models.parameters()) if self.engine == "loop" else \
            [p for _, wide in self.groups for p in wide.parameters()]
        params = trained + list(self.projections.parameters())
        self.layout = self.optimizer_layout()
        if r["optimizer"] == "sgd":
            self.opt = torch.optim.SGD(params, lr=r["lr"], momentum=r["momentum"], weight_decay=r["weight_decay"],
                                       nesterov=r["momentum"] > 0)
        else:
            self.opt = torch.optim.AdamW(params, lr=r["lr"], weight_decay=r["weight_decay"])
        self.step = 0
        self.metrics: list[list] = []
        self.loss_sum = torch.zeros(len(self.models), device=self.device)
        self.loss_steps = 0
        self.cache: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ one step
    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def train_step(self) -> None:
        r, t = self.run, self.step
        gen = self.data.generator(r["seed"], t)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(t, r)
        refresh = self.public and t % r["refresh_every"] == 0
        if refresh:  # the public batch is drawn first, so a resumed run can redraw it
            self.cache["pub_x"] = self.data.public_batch(gen, r["batch_public"])
        if self.centralized:
            x_priv, y_priv = self.data.private_batch(gen, r["batch_private"] * self.n, pooled=True)
        else:
            x_priv, y_priv = self.data.private_batch(gen, r["batch_private"])
        bp = x_priv.shape[1]
        embs, logits_NxBxKxC = self.forward(x_priv)
        n, c = logits_NxBxKxC.shape[0], logits_NxBxKxC.shape[-1]
        ce = F.cross_entropy(logits_NxBxKxC[:, :bp, 0].reshape(-1, c).float(), y_priv.reshape(-1),
                             reduction="none").view(n, bp).mean(dim=1)  # per client, as the loss of each alone
        total = ce.sum()
        if self.public:
            if refresh:
                self.cache["probs"] = logits_NxBxKxC[:, bp:].detach().float().div(r["tau"]).softmax(-1)
                for j, emb in enumerate(embs):
                    self.cache[f"emb{j}"] = emb[bp:].detach()
            total = total + self.distillation([e[bp:] for e in embs], logits_NxBxKxC[:, bp:])
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        if r["method"] == "fedavg" and (t + 1) % r["fedavg_every"] == 0:
            self.average_weights()
        self.loss_sum += ce.detach()
        self.loss_steps += 1
        self.step += 1

    def forward(self, x_priv_NxB: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every client's embeddings (a list: widths may differ) and logits (N x B x K x C, stacked:
        the losses of all clients are computed at once) on [its private batch; the public batch]."""
        pub = self.cache["pub_x"] if self.public else None
        with self.autocast():
            if self.engine == "loop":
                outs = [fn(torch.cat([x_priv_NxB[i], pub]) if pub is not None else x_priv_NxB[i])
                        for i, fn in enumerate(self.forward_fns)]
                return [e for e, _ in outs], torch.stack([lg for _, lg in outs])
            embs, logits = [None] * len(self.models), [None] * len(self.models)
            for (idx, _), idx_t, fn in zip(self.groups, self.group_index, self.forward_fns):
                x = x_priv_NxB[idx_t] if len(idx) < len(x_priv_NxB) else x_priv_NxB
                if pub is not None:
                    x = torch.cat([x, pub.expand(len(idx), *pub.shape)], dim=1)
                emb_NxBxD, logits_NxBxKxC = fn(x)
                if len(self.groups) == 1:  # one architecture: already stacked in client order
                    return list(emb_NxBxD), logits_NxBxKxC
                for k, i in enumerate(idx):
                    embs[i], logits[i] = emb_NxBxD[k], logits_NxBxKxC[k]
            return embs, torch.stack(logits)

    def build_groups(self, archs: list[str]) -> list[tuple[list[int], nn.Module]]:
        """vectorised: one wide model per architecture (clients in order); loop: none. Sets the
        callables the step runs (compiled when `compile` is on)."""
        groups = []
        if self.engine == "vectorised":
            from .vectorised import WideClients

            for arch in dict.fromkeys(archs):
                idx = [i for i, a in enumerate(archs) if a == arch]
                groups.append((idx, WideClients([self.models[i] for i in idx], self.run["channels_last"])))
        # each group's clients as an index tensor on the device (a list index would be copied every step)
        self.group_index = [torch.tensor(idx, device=self.device) for idx, _ in groups]
        modules = [wide for _, wide in groups] if groups else list(self.models)
        self.forward_fns = [torch.compile(m) if self.run["compile"] else m for m in modules]
        return groups

    def optimizer_layout(self) -> list[tuple[str, list[int]]]:
        """How each optimiser parameter maps to the per-client parameters (see vectorised.py)."""
        index = {id(p): i for i, p in enumerate(self.models.parameters())}
        layout = [(how, [index[id(c)] for c in clients]) for _, wide in self.groups
                  for _, how, clients in wide.pieces]
        if not layout:
            layout = [("same", [i]) for i in range(len(index))]
        return layout + [("same", [len(index) + k]) for k, _ in enumerate(self.projections.parameters())]

    def distillation(self, embs_pub: list[torch.Tensor], logits_pub_NxBxKxC: torch.Tensor) -> torch.Tensor:
        r, h = self.run, self.run["heads"]
        ramp = min(1.0, (self.step + 1) / r["nu_rampup"]) if r["nu_rampup"] else 1.0
        probs_JxBxKxC = self.cache["probs"]
        total = probs_JxBxKxC.new_zeros(())
        if h >= 1 and (r["nu_aux"] > 0 or r["nu_emb"] > 0):
            # chained heads: head k of the receiver from head k-1 of its senders
            w_aux = losses.teacher_weights(probs_JxBxKxC[:, :, :h], self.senders_aux, r["teacher"])
            if r["nu_aux"] > 0:
                t_aux = losses.teacher_targets(probs_JxBxKxC[:, :, :h], w_aux)
                total = total + r["nu_aux"] * losses.distill_kl(logits_pub_NxBxKxC[:, :, 1:], t_aux, r["tau"]).sum()
        if r["nu_main"] > 0:
            w_main = losses.teacher_weights(probs_JxBxKxC[:, :, :1], self.senders_main, r["teacher"])
            t_main = losses.teacher_targets(probs_JxBxKxC[:, :, :1], w_main)
            total = total + r["nu_main"] * losses.distill_kl(logits_pub_NxBxKxC[:, :, :1], t_main, r["tau"]).sum()
        if r["nu_emb"] > 0:
            embs = [self.cache[f"emb{j}"] for j in range(self.n)]
            for i, emb in enumerate(embs_pub):
                w_emb = w_aux[i, :, :, 0] if h >= 1 else w_main[i, :, :, 0]
                total = total + r["nu_emb"] * losses.embedding_loss(emb, embs, w_emb, self.projections[i])
        return ramp * total

    @torch.no_grad()
    def average_weights(self) -> None:
        """FedAvg: every client takes the mean of all clients' parameters and BatchNorm statistics."""
        states = [m.state_dict() for m in self.models]
        for key, value in states[0].items():
            if value.is_floating_point():
                mean = torch.stack([s[key] for s in states]).mean(0)
                for s in states:
                    s[key].copy_(mean)

    # ------------------------------------------------------------------ accounting and evaluation
    def bytes_sent(self, i: int) -> int:
        r, t = self.run, self.step
        if r["method"] == "fedavg":
            return (t // r["fedavg_every"]) * sum(p.numel() for p in self.models[i].parameters()) * BYTES_PER_VALUE
        if not self.public or self.centralized:
            return 0
        heads = set(range(r["heads"])) if r["nu_aux"] > 0 else set()
        heads |= {0} if r["nu_main"] > 0 else set()
        values = len(heads) * self.classes + (self.models[i].dim if r["nu_emb"] > 0 else 0)
        exchanges = math.ceil(t / r["refresh_every"])
        return exchanges * self.out_degree[i] * r["batch_public"] * values * BYTES_PER_VALUE

    def evaluate(self) -> list[list]:
        out = []
        losses_now = (self.loss_sum / max(1, self.loss_steps)).tolist()
        for i in range(self.n):
            m = 0 if self.centralized else i
            if i == 0 or not self.centralized:
                logits = evaluate.predict(self.models[m], self.test_x, self.data.normalise, autocast=self.autocast)
            out += evaluate.rows(self.step, i, logits, self.test_y, self.private_dist[i], self.classes)
            out.append([self.step, i, "-", "bytes_sent", float(self.bytes_sent(i))])
            out.append([self.step, i, "-", "train_loss", losses_now[m]])
        self.loss_sum.zero_()
        self.loss_steps = 0
        return out

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {"step": self.step, "config_hash": config_hash(self.run),
                "models": self.models.state_dict(), "projections": self.projections.state_dict(),
                "optimizer": to_client_layout(self.opt.state_dict(), self.layout), "rng": torch.get_rng_state(),
                "metrics": self.metrics, "cache": {k: v.cpu() for k, v in self.cache.items()},
                "loss_sum": self.loss_sum.cpu(), "loss_steps": self.loss_steps}

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        torch.save(self.state(), buf)
        mio.write_bytes(path, buf.getvalue())

    def load(self, path: Path) -> None:
        try:
            state = torch.load(io.BytesIO(path.read_bytes()), weights_only=True, map_location=self.device)
        except Exception as exc:  # truncated zip, tampered pickle, ...: never executed, always refused
            raise DataError(f"checkpoint {path} cannot be loaded ({type(exc).__name__}: {str(exc)[:200]}); "
                            f"it is truncated or not a checkpoint of this project. Delete it to start the "
                            f"run from step 0.") from exc
        if state.get("config_hash") != config_hash(self.run):
            raise DataError(f"checkpoint {path} belongs to a different run config (hash {state.get('config_hash')}, "
                            f"this run {config_hash(self.run)}); delete it or choose another --out")
        self.models.load_state_dict(state["models"])
        self.projections.load_state_dict(state["projections"])
        self.opt.load_state_dict(from_client_layout(state["optimizer"], self.layout))
        torch.set_rng_state(state["rng"].cpu())
        self.step, self.metrics = state["step"], [list(row) for row in state["metrics"]]
        self.cache = {k: v.to(self.device) for k, v in state["cache"].items()}
        self.loss_sum, self.loss_steps = state["loss_sum"].to(self.device), state["loss_steps"]


def write_metrics(path: Path, rows: list[list]) -> None:
    lines = ["step,client,head,metric,value"] + [f"{s},{c},{h},{m},{v!r}" for s, c, h, m, v in rows]
    mio.write_text(path, "\n".join(lines) + "\n")


def train(run: dict, prepared, split_dir, graph_dir, out_dir, *, device: str = "auto", progress: bool | None = None,
          stop_after: int | None = None) -> dict:
    """Train one run into `out_dir` (metrics.csv, checkpoint.pt, run.json), resuming from
    `out_dir/checkpoint.pt` when it exists. `stop_after`: stop after that many steps of this call
    (tests use it to interrupt a run)."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"output folder {out} cannot be written: {exc.strerror}") from exc
    trainer = Trainer(run, prepared, split_dir, graph_dir, device)
    r = trainer.run
    ckpt = out / "checkpoint.pt"
    resumed_from = 0
    if ckpt.exists():
        trainer.load(ckpt)
        resumed_from = trainer.step
    start, t0 = trainer.step, time.perf_counter()
    images_per_step = len(trainer.models) * r["batch_private"] * (trainer.n if trainer.centralized else 1) \
        + (len(trainer.models) * r["batch_public"] if trainer.public else 0)
    bar = tqdm(total=r["steps"], initial=start, disable=None if progress is None else not progress,
               desc=f"{r['method']} H={r['heads']}", unit="step", dynamic_ncols=True)
    while trainer.step < r["steps"]:
        trainer.train_step()
        bar.update(1)
        if trainer.step % r["eval_every"] == 0 or trainer.step == r["steps"]:
            rows = trainer.evaluate()
            trainer.metrics += rows
            write_metrics(out / "metrics.csv", trainer.metrics)
            trainer.save(ckpt)
            shared = [v for s, c, h, m, v in rows if m == "shared_acc" and h != "ensemble"]
            private = [v for s, c, h, m, v in rows if m == "private_acc" and h == "0"]
            best = max(np.mean(shared[k::r["heads"] + 1]) for k in range(r["heads"] + 1))
            bar.set_postfix(shared_best_head=f"{best:.3f}", private_main=f"{np.mean(private):.3f}")
            if bar.disable:  # logs get one line per evaluation instead of a bar
                print(f"step {trainer.step}/{r['steps']}: shared accuracy of the best head {best:.3f}, "
                      f"private accuracy of the main head {np.mean(private):.3f}", flush=True)
        if stop_after is not None and trainer.step - start >= stop_after:
            break
    bar.close()
    wall = time.perf_counter() - t0
    if trainer.step < r["steps"]:
        return {"stopped_at": trainer.step}
    if not (out / "metrics.csv").exists():
        write_metrics(out / "metrics.csv", trainer.metrics)
    steps_done = trainer.step - start
    record = {
        "run": r, "seed": r["seed"], "config_hash": config_hash(r),
        "inputs": {"prepared_sha256": trainer.data_meta["sha256"], "split": trainer.split_meta["sha256"],
                   "split_params": trainer.split_meta["params"], "graph": trainer.graph_meta["params"],
                   "paths": {"prepared": str(prepared), "split": str(split_dir), "graph": str(graph_dir)}},
        "versions": provenance.versions(), "code": provenance.code_version(),
        "device": provenance.device_info(trainer.device), "engine": trainer.engine,
        "wall_time_s": round(wall, 3), "steps_this_call": steps_done, "resumed_from_step": resumed_from,
        "images_per_s": round(steps_done * images_per_step / wall, 1) if wall > 0 and steps_done else None,
    }
    mio.write_json(out / "run.json", record)
    return record
