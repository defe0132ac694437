"""A slice of the workflow, timed on one device: the training jobs of the RUN.yaml files given (the
files the workflow's run_config rule writes), each trained from step 0 into a fresh folder, one after
another in this process. Per run: wall time and images per second (from the run's own run.json), the
last-step accuracies, and on a GPU the peak memory torch allocated during the run. Prints JSON.

Run the same files with --device cpu and --device cuda to compare the two devices on identical jobs:

    PYTHONPATH=src python benchmarks/run_slice.py --device cuda --out benchmarks/results/slice-h200.json \
        results/runs/*/run.yaml
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from mhd import config as mconfig
from mhd.data import files
from mhd.learning import gpu_slots
from mhd.learning import run as learning_run
from mhd.learning import run_folder


def one(spec: Path, run: dict, inputs: dict, device: str, out: Path) -> dict:
    out.mkdir(parents=True)
    shutil.copy(spec, out / "run.yaml")  # a run folder holds its RUN.yaml, as the workflow's do
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    rec = learning_run.train(run, inputs["prepared"], inputs["split"], inputs["graph"], out, device=device,
                             progress=False)
    total = time.perf_counter() - start
    _, long = run_folder.load_metrics(out)
    last = long[(long["step"] == long["step"].max()) & long["head"].str.isdigit()]  # the model's own heads
    acc = last.groupby(["metric", "head"])["value"].mean()  # mean over clients
    row = {"run": spec.parent.name, "steps": run["steps"], "precision": run["precision"], "engine": rec["engine"],
           "device": rec["device"], "wall_time_s": rec["wall_time_s"], "call_s": round(total, 3),
           "images_per_s": rec["images_per_s"], "eval_s": rec["eval_s"],
           "gpu_max_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None}
    # the last evaluation, means over clients: the main head's private accuracy, the best head's shared
    row["private_acc_main_head"] = round(float(acc["private_acc"]["0"]), 4)
    row["shared_acc_best_head"] = round(float(acc["shared_acc"].max()), 4)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("specs", nargs="+", type=Path, help="RUN.yaml files (results/runs/<run id>/run.yaml)")
    p.add_argument("--device", choices=("cpu", "cuda"), required=True)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("run_slice.py --device cuda: torch sees no CUDA device here")
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = []
    for spec in dict.fromkeys(args.specs):  # every file read before anything trains; each once
        if not spec.is_file():
            raise SystemExit(f"run_slice.py: no RUN.yaml at {spec} (allowed: files the workflow's run_config "
                             f"rule writes, results/runs/<run id>/run.yaml)")
        specs.append((spec, *mconfig.load_run_file(str(spec))))
    if args.device == "cuda":
        gpu_slots.claim_cuda()  # this process's GPU, before any CUDA memory is touched; every run trains on it
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (spec, run, inputs) in enumerate(specs):
            rows.append(one(spec, run, inputs, args.device, Path(tmp) / f"{i:03d}-{spec.parent.name}"))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            text = report(args, rows)  # after every run, so a slice cut short keeps the runs it finished
    print(text)


def report(args, rows: list[dict]) -> str:
    """The JSON of the runs done so far, also written (atomically) to --out."""
    result = {"device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "runs_asked": len(dict.fromkeys(args.specs)), "runs": rows,
              "total_wall_time_s": round(sum(r["wall_time_s"] for r in rows), 3)}
    text = json.dumps(result, indent=2)
    if args.out:
        files.write_text(args.out, text + "\n")
    return text


if __name__ == "__main__":
    main()
