"""The trainer's step with SmallCNN's blocks in its order (max-pool, then ReLU) against the textbook
order (ReLU, then max-pool), which compute the same values and gradients (tests/test_models.py): the
default config's trainer, one thread, both orders in one process, interleaved rounds of steps, in fp32
and bf16. Prints JSON (milliseconds per step, medians over rounds; the speed-up of each round, its median).

    PYTHONPATH=src python benchmarks/pool_order.py --out benchmarks/results/pool-order-cpu-1thread.json
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from mhd.bench.throughput import federation_of
from mhd.learning.models import relu_before_pool
from mhd.learning.trainer import Trainer


def trainers(config: str, precision: str) -> dict:
    """Two trainers of the config's MHD run, the same seed: one as built, one in the textbook order."""
    over = {"method": "mhd", "precision": precision}
    out = {}
    for order in ("pool then relu", "relu then pool"):
        with federation_of(config, over, "cpu") as (run, fed):
            t = Trainer(run, fed)
        if t.engine.name != "loop":  # a wide model holds copies of the backbones, which the swap would miss
            raise SystemExit(f"pool_order.py measures the loop engine; {config} runs the {t.engine.name} engine")
        if order == "relu then pool":
            for m in t.models:
                relu_before_pool(m.backbone)
        out[order] = t
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="steps per round and order")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"config": args.config, "threads": 1, "rounds": args.rounds, "steps_per_round": args.steps}
    for precision in ("fp32", "bf16"):
        pair = trainers(args.config, precision)
        times = {order: [] for order in pair}
        for t in pair.values():
            for _ in range(5):  # warm-up
                t.train_step()
        for _ in range(args.rounds):
            for order, t in pair.items():
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    t.train_step()
                times[order].append((time.perf_counter() - t0) / args.steps * 1e3)
        ups = [b / a for a, b in zip(times["pool then relu"], times["relu then pool"])]
        result[precision] = {**{f"{o} ms": round(statistics.median(v), 2) for o, v in times.items()},
                             "speed_up": round(statistics.median(ups), 3),
                             "speed_up_range": [round(min(ups), 3), round(max(ups), 3)]}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
