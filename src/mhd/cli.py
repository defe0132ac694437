"""The `mhd` command: the entry point for users and for the workflow's rules. Each subcommand parses
its arguments and calls one function of the stage it belongs to; nothing here computes a result."""

from __future__ import annotations

import argparse
import sys

from .errors import MHDError


def cmd_check(args) -> None:
    """validate a config and list what it would build"""
    from . import config as mconfig

    print("\n".join(mconfig.describe(args.configs[0], args.configs[1:])))
    if args.docs:
        from . import config_docs

        print(config_docs.write(args.docs, args.configs[0]))


# each stage's parameters arrive as one JSON object (--params) with the keywords of the function they go
# to (config.prepare_params, split_params, graph_params give them): no flag is renamed on the way
def cmd_prepare(args) -> None:
    """find, verify and cache a dataset as tensors"""
    from . import config as mconfig
    from .data import datasets

    params = mconfig.json_object(args.params)
    rec, _ = mconfig.call_stage("mhd prepare", datasets.prepare, params, args.dataset, args.out, raw_dir=args.raw_dir,
                                given=("name", "out", "raw_dir"))
    print(f"prepared {rec['name']} from {rec['source']}: train {rec['shapes']['train_x']}, "
          f"test {rec['shapes']['test_x']}, {rec['classes']} classes -> {args.out}")


def cmd_split(args) -> None:
    """draw the public set and the non-iid private sets"""
    from . import config as mconfig
    from .data import datasets, splits

    tensors, meta = datasets.load(args.prepared)
    labels = tensors["train_y"].numpy()
    split, params = mconfig.call_stage("mhd split", splits.make, mconfig.json_object(args.params), labels,
                                       meta["classes"], given=("labels", "classes"))
    splits.write(args.out, split, labels, meta["classes"], {"dataset": meta["name"], **params})
    print(f"split of {meta['name']}: {params['clients']} clients x {len(split.private[0])} private samples, "
          f"{len(split.public)} public, {len(split.validation)} validation -> {args.out}")


def cmd_graph(args) -> None:
    """build a communication graph"""
    from . import config as mconfig
    from .data import graphs

    edges, params = mconfig.call_stage("mhd graph", graphs.make, mconfig.json_object(args.params))
    graphs.write(args.out, edges, params)
    print(f"{params['topology']} graph on {params['clients']} clients: {len(edges)} edges -> {args.out}")


def cmd_train(args) -> None:
    """train one run (resumes from OUT/checkpoint.pt)"""
    import torch

    from . import config as mconfig
    from .learning import run as learning_run

    run, inputs = mconfig.load_run_file(args.config)
    if args.threads:
        torch.set_num_threads(args.threads)
    rec = learning_run.train(run, inputs["prepared"], inputs["split"], inputs["graph"], args.out,
                             device=args.device or run["device"], stop_after=args.stop_after)
    if line := learning_run.outcome(run, rec, args.out):
        print(line)


def cmd_bench(args) -> None:
    """throughput: trainer vs a naive federated loop vs plain training; --scale: as N and H grow;
    --profile: where a step's time goes (JSON)"""
    from .bench import modes

    given = {f: getattr(args, k) for f, k in modes.FLAGS.items() if hasattr(args, k)}
    mode = next((m for m in modes.BENCH if getattr(args, m, False)), "throughput")
    print(modes.run(mode, given, args.out))


def cmd_figure(args) -> None:
    """draw the figure of an experiment spec (PNG and PDF)"""
    from .report import kinds

    spec = kinds.read_spec(args.spec)  # before matplotlib's import: a wrong spec is refused at once
    from .report import figures

    figures.draw(spec, args.out)
    print(f"{spec['figure']} figure of experiment {spec['name']} -> {args.out}.png, {args.out}.pdf")


def cmd_table(args) -> None:
    """last-step shared / private accuracy per method and head (markdown)"""
    from .report import kinds, summary

    print(summary.headline_of([r["dir"] for r in kinds.read_spec(args.spec, trained=True)["runs"]], args.where))


def cmd_claims(args) -> None:
    """check the paper's claims on a summary (results/claims.csv and .md)"""
    from . import config as mconfig
    from .report import claims

    checked, text = claims.write(args.summary, mconfig.json_object(args.defaults, "--defaults"), args.out, args.runs,
                                 args.reference, args.metrics, args.curves, args.budget_summary)
    print(f"{text}\n{len(checked)} claims -> {args.out}.csv, {args.out}.md")


def cmd_numbers(args) -> None:
    """write the docs' tables of a study (docs/results.md) from its claims.csv and per-run readouts"""
    from . import config as mconfig
    from .report import numbers

    defaults = mconfig.load_layered(args.base, args.configfile)["run"] if args.summary else None
    for line in numbers.write(args.claims, args.readouts, args.docs, args.check, args.summary, defaults,
                              args.budget_summary):
        print(line)


def cmd_teacher_scores(args) -> None:
    """how well each teacher score of a trained MHD run tells a client's own classes from others' (markdown)"""
    from .report import teacher_scores

    print(teacher_scores.markdown(teacher_scores.measure(args.run, args.samples), args.run))


def cmd_summarize(args) -> None:
    """gather runs into one table (a row per run, client, head, step)"""
    from .report import kinds, summary

    runs = args.runs or sorted({r["dir"] for spec in args.specs for r in kinds.read_spec(spec, trained=True)["runs"]})
    table = summary.collect(runs)
    summary.write(table, runs, args.out)
    print(f"{len(runs)} runs, {len(table)} rows -> {args.out} (and its record {summary.record_path(args.out)})")
    if note := summary.code_note(args.out):
        print(f"warning: {note}", file=sys.stderr)


def _count(zero: str, what: str, least: int = 0):
    """An argparse type: a whole number of `what`, at least `least` (0 means `zero`)."""
    def parse(text: str) -> int:
        if text.strip().lstrip("+").isdecimal() and int(text) >= least:
            return int(text)
        raise argparse.ArgumentTypeError(f"{text!r}: allowed: " + (f"0 ({zero}) or " if least == 0 else "")
                                         + f"a positive number of {what}")
    return parse


def _version() -> str:
    """The package's version and the hash of its training code (what a checkpoint records)."""
    from . import __version__
    from .data import provenance

    return f"{__version__} (training code {provenance.code_sha256()[:12]})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mhd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mhd {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(func) -> argparse.ArgumentParser:  # cmd_teacher_scores: `mhd teacher-scores`, its docstring the help
        p = sub.add_parser(func.__name__[4:].replace("_", "-"), help=" ".join(func.__doc__.split()))
        p.set_defaults(func=func)
        return p

    p = command(cmd_check)
    p.add_argument("configs", nargs="*", default=["config/config.yaml"],
                   help="the base config, then overlays merged over it (as snakemake --configfile)")
    p.add_argument("--docs", metavar="README", help="also write README's key tables (config/README.md) from the schema")
    p = command(cmd_prepare)
    p.add_argument("--dataset", required=True)
    p.add_argument("--params", default="{}", help="JSON keywords of data.datasets.prepare (config.prepare_params)")
    p.add_argument("--raw-dir", default="data/raw", help="where downloads go")
    p.add_argument("--out", required=True, help="the .pt file to write (a .json record goes beside it)")
    p = command(cmd_split)
    p.add_argument("--prepared", required=True)
    p.add_argument("--params", required=True, help="JSON keywords of data.splits.make (config.split_params)")
    p.add_argument("--out", required=True)
    p = command(cmd_graph)
    p.add_argument("--params", required=True, help="JSON keywords of data.graphs.make (config.graph_params)")
    p.add_argument("--out", required=True)
    p = command(cmd_train)
    p.add_argument("--config", required=True, help="RUN.yaml: {run: {...every run key}, inputs: {prepared, split, graph}}")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=_count("torch's default", "threads"), default=0, help="torch CPU threads")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="overrides run.device")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    from .bench import modes

    modes.add_options(command(cmd_bench), _count)
    p = command(cmd_figure)
    p.add_argument("--spec", required=True, help="results/experiments/<experiment>.json")
    p.add_argument("--out", required=True, help="path without suffix: .png and .pdf are written")
    p = command(cmd_table)
    p.add_argument("--spec", required=True, help="results/experiments/<experiment>.json")
    p.add_argument("--where", action="append", default=[], help="KEY=VALUE on the summary's columns")
    p = command(cmd_claims)
    p.add_argument("--summary", required=True, nargs="+", help="results/summary.csv, or a study's parts read as one "
                   "(a run in two parts must have the same rows in both)")
    p.add_argument("--defaults", required=True, help="JSON: the config's `run` (the default run the claims compare)")
    p.add_argument("--reference", default=None, help="a claims.csv of the reference run: mark verdicts that differ")
    p.add_argument("--runs", nargs="+", default=None, help="the run folders the summary must hold as they are now, "
                   "no more, no fewer (the workflow passes its config's runs); claim 5 reads their graphs and splits")
    p.add_argument("--out", required=True, help="path without suffix: .csv and .md are written")
    p.add_argument("--metrics", default=None, help="also write the default run's readouts per method here (JSON, for DVC)")
    p.add_argument("--curves", default=None, help="also write their curves over training here, a CSV per method (DVC plots)")
    p.add_argument("--budget-summary", nargs="+", default=None, help="the same study at a second budget (e.g. 2/3 of "
                   "the steps, separate runs): each claim's verdict there beside it, marked where it changes")
    p = command(cmd_numbers)
    p.add_argument("--claims", default="docs/reference/claims.csv", help="the study's claims (and .md beside it): "
                   "checked from --summary when given, else read")
    p.add_argument("--readouts", default="docs/reference/readouts.csv", help="one row per run: written from --summary "
                   "when given, else read")
    p.add_argument("--summary", nargs="+", default=None, help="the study's summaries (its parts, read as one; their "
                   "runs under results/runs/)")
    p.add_argument("--budget-summary", nargs="+", default=None, help="the same study at a second budget (mhd claims)")
    p.add_argument("--base", default="config/config.yaml", help="the base config (its run is the default run)")
    p.add_argument("--configfile", nargs="*", default=["config/reference.yaml"], help="overlays over --base, as for "
                   "snakemake (default config/reference.yaml)")
    p.add_argument("--docs", nargs="*", default=["docs/results.md"],
                   help="the files whose `<!-- numbers: NAME -->` sections are written")
    p.add_argument("--check", action="store_true", help="write nothing; fail when a section differs")
    p = command(cmd_teacher_scores)
    p.add_argument("run", help="a trained run folder, e.g. results/runs/mhd-h3-complete-n5-2c17f421bc")
    p.add_argument("--samples", type=_count("every public sample", "public samples"), default=4000, help="default 4000")
    p = command(cmd_summarize)
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--runs", nargs="+", help="run folders")
    given.add_argument("--specs", nargs="+", help="experiment specs (results/experiments/<experiment>.json): their runs")
    p.add_argument("--out", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except MHDError as exc:
        print(f"mhd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
