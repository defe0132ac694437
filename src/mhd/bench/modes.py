"""`mhd bench`'s three benchmarks, each a function of this stage that takes its options as keywords
(their defaults are its own): which option belongs to which, and the call. An option of another
benchmark is refused, never ignored."""

from __future__ import annotations

import importlib
import inspect
import json
import sys

from ..errors import MHDError

BENCH = {"throughput": "throughput.bench", "scale": "scale.bench_scale", "workflow": "workflow.bench_workflow"}
# the command line's flag -> the keyword of the benchmark's function
FLAGS = {"--config": "config_path", "--quick": "quick", "--device": "device", "--threads": "threads",
         "--rounds": "rounds", "--clients": "clients", "--figure": "figure_path", "--cores": "cores",
         "--configfile": "configfiles", "--work": "work"}


def run(mode: str, given: dict, out: str | None) -> str:
    """Run the benchmark `mode` with the options `given` (flag -> value, only those given); its JSON
    text, also written to `out` (for --workflow by default benchmarks/results/workflow-<machine>.json)."""
    module, name = BENCH[mode].split(".")
    module = importlib.import_module(f"mhd.bench.{module}")  # --workflow imports torch later
    takes = [f for f, k in FLAGS.items() if k in inspect.signature(getattr(module, name)).parameters]
    if foreign := [f for f in given if f not in takes]:
        raise MHDError(f"{foreign[0]} is not an option of `mhd bench{'' if mode == 'throughput' else ' --' + mode}`; "
                       f"it takes {', '.join(takes)} and --out")
    keywords = {FLAGS[f]: v for f, v in given.items() if f != "--rounds" or v}  # --rounds 0: the default
    if mode == "workflow":
        keywords["progress"] = lambda line: print(line, file=sys.stderr)
        out = out or f"benchmarks/results/workflow-{module.machine_name()}.json"
    text = json.dumps(getattr(module, name)(**keywords), indent=2)
    if out:
        from ..data import files

        files.write_text(out, text + "\n")
    return text
