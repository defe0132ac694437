"""`mhd bench`: throughput of the lock-step trainer against a naive federated loop and plain training.

Each measurement runs in its own fresh process, the variants interleaved in rounds, on the same data
and backbone:
- mhd:   the trainer with the run's engine (tensor batches, one forward per client or one wide
         forward per architecture per step, teachers shared in the step);
- naive: the way common federated codebases do it: a torch DataLoader per client with per-sample
         torchvision transforms, clients trained one after another, and each client recomputing
         its teachers' outputs on the public batch (one forward per neighbour per client per step);
- plain: supervised training of one backbone on the same images per step as one batch
         (N x (batch_private + batch_public)) with the same tensor pipeline, without distillation:
         the limit.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import config as mconfig
from ..errors import MHDError
from ..data import datasets, graphs, splits
from ..learning import budget, sgd, teachers
from ..learning.losses import distill_kl
from ..learning.federation import Federation
from ..learning.models import MultiHead
from ..learning.precision import autocast
from ..learning.trainer import Trainer, lr_at


def _naive_loop(fed: Federation, run: dict):
    """One step of the naive reference, built from the same split, graph and models' architecture."""
    from torch.utils.data import DataLoader, Dataset

    from ..vision import import_torchvision

    T = import_torchvision().transforms
    data = fed.data
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

    private = [forever(DataLoader(Images(data.private_NxM[i, :data.sizes_N[i]]), batch_size=run["batch_private"], shuffle=True))
               for i in range(fed.clients)]
    public = forever(DataLoader(Images(data.public), batch_size=run["batch_public"], shuffle=True))
    dev = fed.device
    models = [MultiHead(run["architecture"], data.x.shape[1], fed.classes, run["heads"], data.x.shape[-1]).to(dev)
              for _ in range(fed.clients)]
    if run["channels_last"]:  # the same memory layout as the trainer: the comparison is about the pipeline
        for m in models:
            m.to(memory_format=torch.channels_last)
    opts = [sgd.make(m.parameters(), lr=run["lr"], momentum=run["momentum"]) for m in models]
    senders = fed.senders_aux_NxJ
    h = run["heads"]

    def step():
        u = next(public)[0].to(dev)
        for i, (model, opt) in enumerate(zip(models, opts)):
            x, y = (t.to(dev) for t in next(private[i]))
            with torch.no_grad(), autocast(dev, run["precision"]):  # each client asks each neighbour, every step
                teacher = torch.stack([models[j](u)[1].float() if senders[i, j] else
                                       torch.zeros(len(u), h + 1, fed.classes, device=dev)
                                       for j in range(fed.clients)]).div(run["tau"]).softmax(-1)
            w = teachers.rule(run).weights(run, teacher[:, :, :h], senders[i:i + 1])
            target = teachers.teacher_targets(teacher[:, :, :h], w)[0]
            with autocast(dev, run["precision"]):
                _, logits = model(torch.cat([x, u]))
            logits = logits.float()
            loss = F.cross_entropy(logits[:len(x), 0], y) + run["nu_aux"] * distill_kl(logits[len(x):, 1:], target, run["tau"])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return step


def _plain_loop(fed: Federation, run: dict):
    """One backbone, one step per call on N x (batch_private + batch_public) images from the same
    tensor pipeline: as many images per step as the trainer, as one model and one batch."""
    data = fed.data
    model = MultiHead(run["architecture"], data.x.shape[1], fed.classes, 0, data.x.shape[-1]).to(fed.device)
    if run["channels_last"]:
        model.to(memory_format=torch.channels_last)
    opt = sgd.make(model.parameters(), lr=run["lr"], momentum=run["momentum"], nesterov=True)
    batch = budget.images_per_step(run, fed.clients)  # the trainer's images per step, one model per client
    state = {"t": 0}

    def step():
        gen = data.generator(run["seed"] + 1, state["t"])
        x_1xB, y_1xB = data.private_batch(gen, batch, pooled=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(state["t"], run)
        with autocast(fed.device, run["precision"]):
            _, logits = model(x_1xB[0])
        loss = F.cross_entropy(logits[:, 0].float(), y_1xB[0])
        opt.zero_grad()
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
        datasets.prepare(name, pt, **mconfig.prepare_params(ds))
    tensors, meta = datasets.load(pt)
    labels = tensors["train_y"].numpy()
    split_params, graph_params = mconfig.split_params(r), mconfig.graph_params(r)
    split = splits.make(labels, meta["classes"], **split_params)
    splits.write(workdir / "split", split, labels, meta["classes"], split_params)
    graphs.write(workdir / "graph", graphs.make(**graph_params), graph_params)
    return pt, workdir / "split", workdir / "graph"


@contextlib.contextmanager
def federation_of(config: str, overrides: dict, device: str):
    """(run, Federation) of `config` with `overrides` (validated as the workflow validates a run) on
    `device`. Its split and graph are written to a temporary folder that the block ends with; the
    Federation holds everything it read in memory, so it stays usable after the block."""
    cfg = mconfig.load_any(config)
    run = mconfig.validate_run({**cfg["run"], **overrides}, config, explicit=overrides)
    with tempfile.TemporaryDirectory() as tmp:
        pt, split_dir, graph_dir = prepared_inputs(cfg["dataset"], run, Path(tmp))
        yield run, Federation.load(run, pt, split_dir, graph_dir, device)


def _rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status: peak memory needs Linux")


def measure(job: dict) -> dict:
    """One variant in this process: images per second and peak memory. job: config, overrides (run
    keys), variant ("trainer", "plain" or "naive"), device, threads, warmup, steps.

    Memory on the CPU: the resident set before the first step (data, models, torch), its peak
    during the steps, warm-up included (VmHWM, reset after set-up: Linux >= 4.0) and their
    difference, the memory the steps add. On a GPU: torch.cuda.max_memory_allocated over the
    steps, warm-up included."""
    import gc

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    if job["variant"] == "peak":
        return peak(job)
    with federation_of(job["config"], job["overrides"], job["device"]) as (run, fed):
        make = {"plain": _plain_loop, "naive": _naive_loop}.get(job["variant"])
        trainer = None if make else Trainer(run, fed)
        step = make(fed, run) if make else trainer.train_step
        cuda = fed.device.type == "cuda"
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        gc.collect()
        rss_before = _rss_mib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here: the steps' peak, not loading's
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        late_s = None
        if job.get("start_at"):  # concurrent(): every process starts its steps at the same moment
            late_s = time.time() - job["start_at"]
            time.sleep(max(0.0, -late_s))
        for _ in range(job["warmup"]):
            step()
        sync()
        t0 = time.perf_counter()
        for _ in range(job["steps"]):
            step()
        sync()
        seconds = time.perf_counter() - t0
        peak_rss = _rss_mib("VmHWM")
        flops = step_flops(step) if job.get("flops") else None
    images = job["steps"] * budget.images_per_step(run, fed.clients)
    return {"variant": job.get("label", job["variant"]), "clients": run["clients"], "heads": run["heads"],
            "engine": trainer.engine.name if trainer else "loop",
            "img_s": round(images / seconds, 1), "rss_before_steps_mib": round(rss_before, 1),
            "peak_rss_mib": round(peak_rss, 1), "step_rss_mib": round(peak_rss - rss_before, 1),
            "gpu_max_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
            "device": str(fed.device), "threads": torch.get_num_threads(), "architecture": run["architecture"],
            "channels_last": run["channels_last"], "compile": run["compile"],
            "batch_private": run["batch_private"], "batch_public": run["batch_public"], "topology": run["topology"],
            "late_s": None if late_s is None else round(max(0.0, late_s), 3), "precision": run["precision"],
            "gflop_per_step": None if flops is None else round(flops / 1e9, 4),
            "gflops": None if flops is None else round(flops * job["steps"] / seconds / 1e9, 2)}


def step_flops(step) -> int:
    """The floating-point operations of one more step (forward, backward and the distillation's matrix
    products; convolutions and matmuls, as torch.utils.flop_counter counts them: 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


PEAK_N, QUICK_PEAK_N = 2048, 1024  # the square GEMM that measures the machine's peak


def peak(job: dict) -> dict:
    """The machine's measured peak in this precision and thread count: GFLOP/s of a large square GEMM
    (fp32 x fp32, or bf16 x bf16 as bf16 autocast feeds convolutions and matmuls), the best of `steps`."""
    n = job.get("n", PEAK_N)
    dtype = torch.bfloat16 if job["precision"] == "bf16" else torch.float32
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(dtype) for _ in range(2))
    a @ b  # warm-up: the kernel chosen, the caches filled
    best = float("inf")
    for _ in range(max(1, job["steps"] // 4)):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return {"variant": "peak", "precision": job["precision"], "threads": torch.get_num_threads(), "n": n,
            "gflops": round(2 * n**3 / best / 1e9, 2)}


def isolated(jobs: list[dict], report=None, worker=None) -> list[dict]:
    """worker(job) (default measure) for every job, each in a fresh process (spawned, one task each): no
    variant inherits another's heap, caches or peak memory. `report(row)` after each."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    rows = []
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1) as pool:
        for row in pool.map(worker or measure, jobs):
            rows.append(row)
            if report:
                report(row)
    return rows


def concurrent(job: dict, processes: int, rounds: int, set_up_s: float = 20.0) -> dict:
    """The trainer's images per second with `processes` copies of `job` running side by side, as the
    workflow's train jobs run on a machine's cores: every round starts `processes` fresh processes that
    set up, wait for one common moment (`set_up_s` after the round began) and then time their steps.
    Returns the median over rounds of the summed throughput, and its spread."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    totals = []
    for _ in range(rounds):
        start_at = time.time() + set_up_s
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                 max_tasks_per_child=1) as pool:
            rows = list(pool.map(measure, [{**job, "start_at": start_at}] * processes))
        late = max(r["late_s"] for r in rows)
        if late > 0:
            raise MHDError(f"mhd bench: a process took {late:.1f} s longer than the {set_up_s:g} s of set-up "
                           f"allowed, so the {processes} did not run side by side; raise set_up_s")
        totals.append(sum(r["img_s"] for r in rows))
    return {"img_s": round(statistics.median(totals), 1), "spread": relative_spread(totals), "processes": processes,
            "rounds": rounds, "totals": [round(t, 1) for t in totals], "per_process_img_s": [r["img_s"] for r in rows]}


VARIANTS = ("trainer", "plain", "naive")
ROUNDS, QUICK_ROUNDS = 5, 2
SPREAD_WARNING = 0.10  # a spread above 10 % of the median: the machine was not still


def relative_spread(values: list[float]) -> float:
    """(max - min) / median: 0 when every round measured the same."""
    mid = statistics.median(values)
    return round((max(values) - min(values)) / mid, 3) if mid else 0.0


PRECISIONS = ("fp32", "bf16")


def _variants(rows: list[dict], rounds: int) -> dict:
    """One precision's rows: each variant's median images per second, the ratios, spreads and memory, and
    the roofline (GFLOP per step counted, GFLOP/s achieved, the GEMM peak, the fraction of it)."""
    by = {v: [r for r in rows if r["variant"] == v] for v in VARIANTS}
    speed = {v: [r["img_s"] for r in by[v]] for v in VARIANTS}
    ratios = {f"vs_{v}": [m / o for m, o in zip(speed["trainer"], speed[v])] for v in ("naive", "plain")}
    spread = {name: relative_spread(values) for name, values in {**{"mhd" if v == "trainer" else v: speed[v] for v in VARIANTS},
                                                         **ratios}.items()}
    t = by["trainer"][0]
    gpu = t["gpu_max_allocated_mib"] is not None
    memory = {v: statistics.median(r["gpu_max_allocated_mib"] if gpu else r["step_rss_mib"] for r in by[v])
              for v in VARIANTS}
    peaks = [r["gflops"] for r in rows if r["variant"] == "peak"]
    top = statistics.median(peaks) if peaks else None
    roofline = {"peak_gflops": top, "peak_spread": relative_spread(peaks) if peaks else None}
    for name, v in (("mhd", "trainer"), ("plain", "plain")):
        achieved = statistics.median(r["gflops"] for r in by[v])
        roofline[f"{name}_gflop_per_step"] = by[v][0]["gflop_per_step"]
        roofline[f"{name}_gflops"] = round(achieved, 2)
        roofline[f"{name}_fraction_of_peak"] = round(achieved / top, 3) if top else None
    return {"mhd_img_s": round(statistics.median(speed["trainer"]), 1),
            "naive_img_s": round(statistics.median(speed["naive"]), 1),
            "plain_img_s": round(statistics.median(speed["plain"]), 1),
            **{name: round(statistics.median(values), 3) for name, values in ratios.items()},
            "spread": spread, "roofline": roofline,
            # peak memory of each variant's steps: GPU max allocated, or the CPU resident memory they add
            "memory": "gpu_max_allocated_mib" if gpu else "step_rss_mib",
            **{f"{name}_memory_mib": memory[v] for name, v in (("mhd", "trainer"), ("naive", "naive"), ("plain", "plain"))}}


def bench(config_path: str = "config/config.yaml", quick: bool = False, device: str = "auto",
          threads: int = 0, rounds: int | None = None, precisions: tuple[str, ...] = PRECISIONS) -> dict:
    """The variants measured in interleaved rounds (mhd, plain, naive, mhd, ...), in each precision of
    `precisions`, each measurement in a fresh process: a machine that slows down for a while slows every
    variant alike. Throughputs are the medians over rounds, the ratios the medians of each round's ratio;
    `spread` is (max - min) / median over rounds, with a warning where it exceeds 10 %. Per precision also
    the roofline: the step's GFLOP counted, the GFLOP/s achieved, and the peak of a large GEMM in the same
    precision and threads. The top-level numbers are the config's own precision's (resolved for this
    machine), or the first measured. --quick: fewer rounds and steps, the same method."""
    from ..learning import precision

    cfg = mconfig.load_any(config_path)
    heads = max(1, cfg["run"]["heads"])
    steps, warmup = (8, 2) if quick else (30, 5)
    rounds = rounds or (QUICK_ROUNDS if quick else ROUNDS)
    base = {"config": config_path, "device": device, "threads": threads, "warmup": warmup, "steps": steps,
            "flops": True}
    jobs = []
    for _ in range(rounds):
        for p in precisions:
            jobs += [{**base, "variant": v, "overrides": {"method": "mhd", "heads": heads, "precision": p}}
                     for v in VARIANTS]
            jobs.append({**base, "variant": "peak", "precision": p, "n": QUICK_PEAK_N if quick else PEAK_N})
    rows = isolated(jobs)
    per = {p: _variants([r for r in rows if r["precision"] == p], rounds) for p in precisions}
    own = precision.resolve(cfg["run"]["precision"], cfg["run"]["device"] if device == "auto" else device)
    top = own if own in per else precisions[0]
    warnings = [f"{p} {name}: spread {value:.0%} over {rounds} rounds (> {SPREAD_WARNING:.0%}); the machine was busy, "
                f"measure again" for p in precisions for name, value in per[p]["spread"].items() if value > SPREAD_WARNING]
    out = {}
    if set(precisions) >= {"fp32", "bf16"}:  # the trainer's and plain training's speed-up, per round
        trainer = {p: [r["img_s"] for r in rows if r["precision"] == p and r["variant"] == "trainer"] for p in precisions}
        plain = {p: [r["img_s"] for r in rows if r["precision"] == p and r["variant"] == "plain"] for p in precisions}
        ups = {"mhd": [b / f for b, f in zip(trainer["bf16"], trainer["fp32"])],
               "plain": [b / f for b, f in zip(plain["bf16"], plain["fp32"])]}
        out["bf16_over_fp32"] = {**{k: round(statistics.median(v), 3) for k, v in ups.items()},
                                 "spread": {k: relative_spread(v) for k, v in ups.items()}}
    for line in warnings:
        print(f"mhd bench: warning: {line}", file=sys.stderr)
    t = next(r for r in rows if r["variant"] == "trainer" and r["precision"] == top)
    return {**{k: t[k] for k in ("device", "engine", "channels_last", "threads", "clients", "heads", "batch_private",
                                 "batch_public", "architecture", "topology")},
            "steps_timed": steps, "rounds": rounds, "precision": top, "native_bf16": precision.native_bf16(t["device"].split(":")[0]),
            **per[top], "precisions": per, **out, "warnings": warnings}
