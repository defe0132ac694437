"""`mhd bench`: throughput of the lock-step trainer against a naive federated loop and plain training.

All three run in one process on the same data and backbone:
- mhd:   the trainer (tensor batches, one forward per client per step, teachers shared in the step);
- naive: the way common federated codebases do it: a torch DataLoader per client with per-sample
         torchvision transforms, clients trained one after another, and each client recomputing
         its teachers' outputs on the public batch (one forward per neighbour per client per step);
- plain: supervised training of one backbone on the same images per step as one batch
         (N x (batch_private + batch_public)) with the same tensor pipeline, without distillation:
         the limit.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import config as mconfig
from . import datasets, graphs, losses, splits
from .models import MultiHead
from .train import Trainer, lr_at


def _timed(step, n_steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step()
    return time.perf_counter() - t0


def _naive_loop(trainer: Trainer, run: dict):
    """One step of the naive reference, built from the same split, graph and models' architecture."""
    from torch.utils.data import DataLoader, Dataset

    from .vision import import_torchvision

    T = import_torchvision().transforms
    data = trainer.data
    mean, std = data.mean.flatten().tolist(), data.std.flatten().tolist()
    tf = [T.ConvertImageDtype(torch.float32), T.Normalize(mean, std)]
    if run["augment"] == "flip_crop":
        tf = [T.RandomHorizontalFlip(), T.RandomCrop(data.x.shape[-1], padding=max(1, data.x.shape[-1] // 8))] + tf
    transform = T.Compose(tf)

    class Images(Dataset):
        def __init__(self, idx):
            self.idx = idx.cpu()

        def __len__(self):
            return len(self.idx)

        def __getitem__(self, i):
            j = self.idx[i]
            return transform(data.x[j].cpu()), data.y[j].cpu()

    def forever(loader):
        while True:
            yield from loader

    private = [forever(DataLoader(Images(data.private_NxM[i]), batch_size=run["batch_private"], shuffle=True))
               for i in range(trainer.n)]
    public = forever(DataLoader(Images(data.public), batch_size=run["batch_public"], shuffle=True))
    dev = trainer.device
    models = [MultiHead(run["architecture"], data.x.shape[1], trainer.classes, run["heads"], data.x.shape[-1]).to(dev)
              for _ in range(trainer.n)]
    if run["channels_last"]:  # the same memory layout as the trainer: the comparison is about the pipeline
        for m in models:
            m.to(memory_format=torch.channels_last)
    opts = [torch.optim.SGD(m.parameters(), lr=run["lr"], momentum=run["momentum"]) for m in models]
    senders = trainer.senders_aux
    h = run["heads"]

    def step():
        u = next(public)[0].to(dev)
        for i, (model, opt) in enumerate(zip(models, opts)):
            x, y = (t.to(dev) for t in next(private[i]))
            with torch.no_grad():  # each client asks each neighbour for its outputs, every step
                teacher = torch.stack([models[j](u)[1] if senders[i, j] else
                                       torch.zeros(len(u), h + 1, trainer.classes, device=dev)
                                       for j in range(trainer.n)]).div(run["tau"]).softmax(-1)
            w = losses.teacher_weights(teacher[:, :, :h], senders[i:i + 1], run["teacher"])
            target = losses.teacher_targets(teacher[:, :, :h], w)[0]
            _, logits = model(torch.cat([x, u]))
            loss = F.cross_entropy(logits[:len(x), 0], y) + run["nu_aux"] * losses.distill_kl(logits[len(x):, 1:], target, run["tau"])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return step


def _plain_loop(trainer: Trainer, run: dict):
    """One backbone, one step per call on N x (batch_private + batch_public) images from the same
    tensor pipeline: as many images per step as the trainer, as one model and one batch."""
    data = trainer.data
    model = MultiHead(run["architecture"], data.x.shape[1], trainer.classes, 0, data.x.shape[-1]).to(trainer.device)
    if run["channels_last"]:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=run["lr"], momentum=run["momentum"], nesterov=True)
    batch = trainer.n * (run["batch_private"] + run["batch_public"])
    state = {"t": 0}

    def step():
        gen = data.generator(run["seed"] + 1, state["t"])
        x_1xB, y_1xB = data.private_batch(gen, batch, pooled=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(state["t"], run)
        with trainer.autocast():
            _, logits = model(x_1xB[0])
        loss = F.cross_entropy(logits[:, 0].float(), y_1xB[0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["t"] += 1
    return step


def prepared_inputs(ds: dict, r: dict, workdir: Path) -> tuple[Path, Path, Path]:
    """The prepared dataset (the workflow's if it exists), and run r's split and graph."""
    name = ds["name"]
    pt = Path("data/prepared") / f"{name}.pt"
    if not pt.exists():
        pt = workdir / f"{name}.pt"
        datasets.prepare(name, pt, root=ds["root"], download=ds["download"], strict=ds["verify"],
                         image_size=ds["image_size"])
    tensors, meta = datasets.load(pt)
    labels = tensors["train_y"].numpy()
    params = mconfig.split_params(r)
    split = splits.make(labels, meta["classes"], clients=r["clients"], scheme=r["scheme"], skew=r["skew"],
                        alpha=r["alpha"], public_fraction=r["public_fraction"],
                        samples_per_client=r["samples_per_client"], seed=r["split_seed"])
    splits.write(workdir / "split", split, labels, meta["classes"], params)
    edges = graphs.make(r["topology"], r["clients"], islands=r["islands"], degree=r["degree"],
                        directed=r["directed"], seed=r["graph_seed"])
    graphs.write(workdir / "graph", edges, mconfig.graph_params(r))
    return pt, workdir / "split", workdir / "graph"


def bench(config_path: str = "config/config.yaml", quick: bool = False, device: str = "auto") -> dict:
    cfg = mconfig.load_any(config_path)
    run = mconfig.validate_run({**cfg["run"], "method": "mhd", "heads": max(1, cfg["run"]["heads"])}, config_path)
    steps, warmup = (8, 2) if quick else (40, 5)
    with tempfile.TemporaryDirectory() as tmp:
        pt, split_dir, graph_dir = prepared_inputs(cfg["dataset"], run, Path(tmp))
        trainer = Trainer(run, pt, split_dir, graph_dir, device)
        per_step = trainer.n * (run["batch_private"] + run["batch_public"])
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)

        def timed(fn, n):
            def step():
                fn()
                sync()
            return n * per_step / _timed(step, n, warmup)

        mhd = timed(trainer.train_step, steps)
        plain = timed(_plain_loop(trainer, run), steps)
        naive = timed(_naive_loop(trainer, run), steps)
    result = {
        "device": str(trainer.device), "engine": trainer.engine, "channels_last": run["channels_last"], "threads": torch.get_num_threads(), "clients": trainer.n,
        "heads": run["heads"], "batch_private": run["batch_private"], "batch_public": run["batch_public"],
        "architecture": run["architecture"], "topology": run["topology"], "steps_timed": steps,
        "mhd_img_s": round(mhd, 1), "naive_img_s": round(naive, 1), "plain_img_s": round(plain, 1),
        "vs_naive": round(mhd / naive, 3), "vs_plain": round(mhd / plain, 3),
    }
    return result

