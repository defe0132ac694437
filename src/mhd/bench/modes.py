"""`mhd bench`'s three benchmarks, each a function of this stage that takes its options as keywords
(their defaults are its own): which option belongs to which, and the call. An option of another
benchmark is refused, never ignored."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys

from ..errors import MHDError

BENCH = {"throughput": "throughput.bench", "scale": "scale.bench_scale", "workflow": "workflow.bench_workflow",
         "profile": "profile.bench_profile"}
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


def add_options(p: argparse.ArgumentParser, count) -> None:
    """`mhd bench`'s options on the argparse parser `p` (count: the command line's type of a whole number,
    cli._count); an option not given is absent from the parsed arguments, so run() sees which were given."""
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--scale", action="store_true", help="vectorised vs loop vs plain as N and H grow (and a figure)")
    mode.add_argument("--workflow", action="store_true", help="time `snakemake all_figures` from an empty results/ "
                      "against the trainer's throughput (default --out benchmarks/results/workflow-<machine>.json)")
    mode.add_argument("--profile", action="store_true", help="where a trainer step's time goes (operator families), "
                      "fp32 and bf16, on the CPU")
    p.add_argument("--out", default=None, help="also write the JSON here")

    def option(group, flag, **kw):
        named = {} if kw.get("action") == "store_true" else {"metavar": flag[2:].upper()}
        group.add_argument(flag, dest=FLAGS[flag], default=argparse.SUPPRESS, **named, **kw)

    g = p.add_argument_group("the throughput bench, --scale and --profile")
    option(g, "--config", help="default config/config.yaml")
    option(g, "--quick", action="store_true", help="fewer rounds and steps, the same method")
    option(g, "--threads", type=count("torch's default", "threads"),
           help="torch CPU threads (default 0: torch's; --profile: 1)")
    option(g, "--rounds", type=count("the default", "rounds"),
           help="rounds of every variant (default 5, 2 with --quick; --workflow: 3; --profile: 3, 2 with --quick)")
    g = p.add_argument_group("the throughput bench and --scale")
    option(g, "--device", choices=["auto", "cpu", "cuda"], help="auto (default): the config's run.device")
    g = p.add_argument_group("--scale")
    option(g, "--clients", type=int, nargs="+", help="the values of N (default 2 4 8 16 32)")
    option(g, "--figure", help="where the figure goes (default figures/bench_scale.png)")
    g = p.add_argument_group("--workflow")
    option(g, "--cores", type=count("", "cores", least=1), help="snakemake --cores (default 8, as make all_figures)")
    option(g, "--configfile", nargs="*", help="overlays, as for snakemake")
    option(g, "--work", help="default benchmarks/work: a new or empty folder, or one the bench made (its results/, "
           "figures/, logs/, .snakemake/ are emptied)")
