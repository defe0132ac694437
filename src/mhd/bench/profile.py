"""`mhd bench --profile`: where the time of one trainer step goes, in each precision.

torch.profiler records the operators of a number of steps of the default config's trainer; each
operator's own time (its self CPU time: a parent's time without its children's, so no time counts
twice) is added to the family it belongs to (FAMILIES). Per precision: the step's time without the
profiler, each family's milliseconds per step and share, and per family the bf16 speed-up over fp32.
The families add up to the profiled time, longer than the step's own by the profiler's cost per
operator. Rounds alternate the precisions, each round a fresh process per precision; the numbers are
the medians over rounds."""

from __future__ import annotations

import statistics
import time

import torch

from .. import config as mconfig

# (family, how an aten operator's name, without "aten::" and a trailing "_", belongs to it): the first
# family that takes the name wins. An operator that none takes (an allocation, a clamp, a reduction) counts
# for its nearest enclosing operator that one takes (clamp_min under relu: relu), else for OTHER, as do
# the autograd engine's own events (node dispatch, gradient accumulation).
FAMILIES = (
    ("convolution", lambda n: "convolution" in n or n == "conv2d"),
    ("batch norm", lambda n: "batch_norm" in n),
    ("max-pool", lambda n: "max_pool" in n),
    ("relu", lambda n: n in ("relu", "threshold_backward")),
    ("matrix products", lambda n: n in ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "einsum",
                                        "_addmm_activation")),
    ("casts and copies", lambda n: n in ("_to_copy", "copy", "to", "clone", "contiguous")),
    ("softmax and losses", lambda n: any(k in n for k in ("softmax", "nll_loss", "cross_entropy", "kl_div", "xlogy"))),
    ("element-wise arithmetic",  # the optimiser's, the losses' and the teachers' weights
     lambda n: n.startswith("_foreach_") or n in ("add", "sub", "rsub", "mul", "div", "neg", "addcmul", "addcdiv",
                                                  "lerp", "sqrt", "exp", "log", "pow", "fill", "zero", "where")),
)
OTHER = "other"  # allocation, views, indexing, reductions, the teacher selection, the autograd engine


def family(name: str) -> str | None:
    """The family of the operator `name` (aten::convolution_backward -> convolution); None for one that no
    family takes by name."""
    if not name.startswith("aten::"):
        return None
    base = name.removeprefix("aten::").removesuffix("_")
    return next((fam for fam, takes in FAMILIES if takes(base)), None)


def by_family(events) -> dict[str, float]:
    """Self CPU microseconds per family over torch.profiler's `events` (each with name, cpu_parent and
    self_cpu_time_total): an event's family is its own, else its nearest enclosing event's, else OTHER."""
    out = {fam: 0.0 for fam, _ in FAMILIES} | {OTHER: 0.0}
    for event in events:
        node, fam = event, None
        while node is not None and fam is None:
            fam, node = family(node.name), node.cpu_parent
        out[fam or OTHER] += event.self_cpu_time_total
    return out


def profile_job(job: dict) -> dict:
    """In this process: the trainer of job["config"] with job["overrides"], `warmup` steps, `steps` steps
    timed without the profiler, then `steps` profiled; milliseconds per step, whole and per family."""
    from torch.profiler import ProfilerActivity, profile

    from ..learning.trainer import Trainer
    from .throughput import federation_of

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    with federation_of(job["config"], job["overrides"], job["device"]) as (run, fed):
        trainer = Trainer(run, fed)
        for _ in range(job["warmup"]):
            trainer.train_step()
        t0 = time.perf_counter()
        for _ in range(job["steps"]):
            trainer.train_step()
        step_ms = (time.perf_counter() - t0) / job["steps"] * 1e3
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(job["steps"]):
                trainer.train_step()
    ms = {fam: us / 1e3 / job["steps"] for fam, us in by_family(prof.events()).items()}
    return {"precision": run["precision"], "step_ms": step_ms, "profiled_ms": sum(ms.values()), "families": ms,
            "device": str(trainer.device), "threads": torch.get_num_threads()}


def _median(rows: list[dict], key) -> float:
    return round(statistics.median(key(r) for r in rows), 3)


def bench_profile(config_path: str = "config/config.yaml", quick: bool = False, threads: int = 1,
                  rounds: int | None = None) -> dict:
    """The profile of the config's trainer step (method mhd, the config's heads) on the CPU in fp32 and
    bf16, one thread by default, as the workflow's train jobs run. --quick: 2 rounds of 5 steps (else 3
    of 20)."""
    from .throughput import isolated

    steps, warmup = (5, 2) if quick else (20, 5)
    rounds = rounds or (2 if quick else 3)
    heads = max(1, mconfig.load_any(config_path)["run"]["heads"])
    jobs = [{"config": config_path, "device": "cpu", "threads": threads, "warmup": warmup, "steps": steps,
             "overrides": {"method": "mhd", "heads": heads, "precision": p}}
            for _ in range(rounds) for p in ("fp32", "bf16")]
    rows = isolated(jobs, worker=profile_job)
    per = {}
    for p in ("fp32", "bf16"):
        mine = [r for r in rows if r["precision"] == p]
        fams = {fam: _median(mine, lambda r, f=fam: r["families"][f]) for fam in mine[0]["families"]}
        total = sum(fams.values())
        per[p] = {"step_ms": _median(mine, lambda r: r["step_ms"]), "profiled_ms": round(total, 3),
                  "families": {fam: {"ms_per_step": v, "share": round(v / total, 3)} for fam, v in fams.items()}}
    speed_up = {fam: round(per["fp32"]["families"][fam]["ms_per_step"] / v["ms_per_step"], 2)
                for fam, v in per["bf16"]["families"].items() if v["ms_per_step"] > 0}
    return {"device": rows[0]["device"], "threads": rows[0]["threads"], "config": config_path, "heads": heads,
            "steps_profiled": steps, "rounds": rounds, "precisions": per,
            "bf16_over_fp32": {"step": round(per["fp32"]["step_ms"] / per["bf16"]["step_ms"], 2), **speed_up},
            "best_mix_over_fp32": best_mix(per)}


def best_mix(per: dict) -> float | None:
    """The bound on mixing precisions by operator family: the fp32 step's profiled time over a step whose
    every family ran in whichever precision was faster for it (casts between them free). No mix of
    precisions per family beats it, with these kernels."""
    fastest = sum(min(per["fp32"]["families"][f]["ms_per_step"], v["ms_per_step"])
                  for f, v in per["bf16"]["families"].items())
    return round(per["fp32"]["profiled_ms"] / fastest, 3) if fastest > 0 else None
