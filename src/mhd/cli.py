"""The `mhd` command: the entry point for users and for the workflow's rules."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import contextmanager
import sys
from pathlib import Path

from .errors import MHDError


def cmd_check(args) -> None:
    """Validate a config and list the splits and graphs its experiments use."""
    from . import config as mconfig

    config = mconfig.merge_layered(args.configs[0], args.configs[1:])
    cfg, planned = mconfig.plan(config, source=" + ".join(args.configs))
    for name, runs in planned.items():
        splits = sorted({mconfig.split_id(cfg["dataset"]["name"], r) for r in runs})
        graphs = sorted({mconfig.graph_id(r) for r in runs})
        print(f"{name}: {len(runs)} runs, splits: {', '.join(splits)}; graphs: {', '.join(graphs)}")
    print(f"{' + '.join(args.configs)}: valid")
    if args.docs:
        from . import config_docs
        from .data import files

        config_docs.check_defaults(mconfig.schema(), mconfig.read_yaml(args.configs[0]), args.configs[0])
        doc = Path(args.docs)
        allowed = "an existing markdown file with <!-- keys: SECTION GROUP --> markers, as config/README.md"
        try:
            old = files.read_regular(doc, allowed).decode()
        except UnicodeDecodeError as exc:
            raise MHDError(f"--docs {doc}: not UTF-8 text ({exc.reason}); allowed: {allowed}") from None
        except MHDError as exc:
            raise MHDError(f"--docs {exc}") from None
        text = config_docs.render(old, mconfig.schema())
        if text != old:
            files.write_text(doc, text)
            print(f"{doc}: key tables rewritten from {mconfig.SCHEMA_PATH.name}")
        else:
            print(f"{doc}: key tables already match {mconfig.SCHEMA_PATH.name}")


def _params(text: str, flag: str = "--params") -> dict:
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise MHDError(f"{flag} {text!r}: not JSON ({exc})") from exc
    if not isinstance(params, dict):
        raise MHDError(f"{flag} {text!r}: expected a JSON object of keyword arguments")
    return params


def cmd_prepare(args) -> None:
    from .data import datasets

    params = _keywords(datasets.prepare, _params(args.params), "prepare", given=("name", "out", "raw_dir"))
    with _typed("prepare", params):
        rec = datasets.prepare(args.dataset, args.out, raw_dir=args.raw_dir, **params)
    print(f"prepared {rec['name']} from {rec['source']}: train {rec['shapes']['train_x']}, "
          f"test {rec['shapes']['test_x']}, {rec['classes']} classes -> {args.out}")


def _keywords(fn, params: dict, command: str, given: tuple = ()) -> dict:
    """`params` checked against the keywords of `fn` (those in `given` the command passes itself):
    a wrong or missing key is the user's error, named, not a traceback."""
    import inspect

    signature = inspect.signature(fn).parameters
    allowed = [k for k in signature if k not in given]
    unknown = sorted(set(params) - set(allowed))
    missing = [k for k in allowed if signature[k].default is inspect.Parameter.empty and k not in params]
    if unknown or missing:
        raise MHDError(f"mhd {command} --params: " + "; ".join(
            ([f"unknown key {', '.join(map(repr, unknown))}"] if unknown else [])
            + ([f"missing key {', '.join(map(repr, missing))}"] if missing else [])) + f"; allowed: {', '.join(allowed)}")
    return params


@contextmanager
def _typed(command: str, params: dict):
    """A value of the wrong type in --params is the user's error, named, not a traceback."""
    try:
        yield
    except TypeError as exc:
        raise MHDError(f"mhd {command} --params {json.dumps(params)}: a value has the wrong type ({exc})") from exc


def cmd_split(args) -> None:
    from .data import datasets, splits

    tensors, meta = datasets.load(args.prepared)
    labels = tensors["train_y"].numpy()
    params = _keywords(splits.make, _params(args.params), "split", given=("labels", "classes"))
    with _typed("split", params):
        split = splits.make(labels, meta["classes"], **params)
    splits.write(args.out, split, labels, meta["classes"], {"dataset": meta["name"], **params})
    print(f"split of {meta['name']}: {params['clients']} clients x {len(split.private[0])} private samples, "
          f"{len(split.public)} public -> {args.out}")


def cmd_graph(args) -> None:
    from .data import graphs

    params = _keywords(graphs.make, _params(args.params), "graph")
    with _typed("graph", params):
        edges = graphs.make(**params)
    graphs.write(args.out, edges, params)
    print(f"{params['topology']} graph on {params['clients']} clients: {len(edges)} edges -> {args.out}")


def _read_spec(path: str, trained: bool = False) -> dict:
    """An experiment spec (results/experiments/<name>.json) with what its figure kind needs (and runs, when
    `trained`), or the user's error."""
    from .data import files
    from .report import kinds

    try:  # a regular file: a FIFO given as --spec is refused, not waited on
        spec = json.loads(files.read_regular(path, "an experiment spec, written by the workflow "
                                             "(results/experiments/<experiment>.json, rule experiment_spec)"))
    except MHDError as exc:
        raise MHDError(f"--spec {exc}") from None
    except ValueError as exc:  # not UTF-8, not JSON
        raise MHDError(f"--spec {path}: not JSON ({exc})") from exc
    kinds.check_spec(spec, f"--spec {path}", trained)
    return spec


def cmd_figure(args) -> None:
    spec = _read_spec(args.spec)  # before matplotlib's import: a wrong spec is refused at once
    from .report import figures

    figures.draw(spec, args.out)
    print(f"{spec['figure']} figure of experiment {spec['name']} -> {args.out}.png, {args.out}.pdf")


def cmd_summarize(args) -> None:
    from .data import files
    from .report import summary

    table = summary.collect(args.runs)
    summary.write(table, args.runs, args.out)
    print(f"{len(args.runs)} runs, {len(table)} rows -> {args.out} (and its record {summary.record_path(args.out)})")


def cmd_train(args) -> None:
    import torch

    from . import config as mconfig
    from .learning import run_folder
    from .learning.run import train

    run, inputs = run_folder.read_run_file(args.config)
    run = mconfig.validate_run(run, args.config)
    if args.threads:
        torch.set_num_threads(args.threads)
    rec = train(run, inputs["prepared"], inputs["split"], inputs["graph"], args.out,
                device=args.device or run["device"], stop_after=args.stop_after)
    if "stopped_at" in rec:
        print(f"stopped at step {rec['stopped_at']} as asked; rerun the same command to resume")
    elif not rec.get("nothing_to_train"):
        print(f"{run['method']} H={run['heads']}: {run['steps']} steps in {rec['wall_time_s']:.1f} s "
              f"({rec['images_per_s']} images/s) on {rec['device']['device']} -> {args.out}")


def cmd_bench(args) -> None:
    if args.workflow:  # torch is imported once the work folder is checked
        from .bench.workflow import bench_workflow, machine_name

        result = bench_workflow(cores=args.cores, configfiles=args.configfile, work=args.work,
                                rounds=args.rounds or 3, progress=lambda line: print(line, file=sys.stderr))
        args.out = args.out or f"benchmarks/results/workflow-{machine_name()}.json"
    elif args.scale:
        from .bench.scale import figure, scale

        result = scale(args.config, quick=args.quick, device=args.device, threads=args.threads,
                       clients=tuple(args.clients))
        figure(result, args.figure)
        print(f"figure: {args.figure}", file=sys.stderr)
    else:
        from .bench.throughput import bench

        result = bench(args.config, quick=args.quick, device=args.device, threads=args.threads, rounds=args.rounds)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from .data import files

        files.write_text(args.out, text + "\n")


def cmd_claims(args) -> None:
    """Check the paper's claims on a summary: results/claims.csv and .md."""
    import pandas as pd

    from .data import files
    from .report import claims, readouts, summary

    table = summary.read(args.summary, f"--summary {args.summary}", args.runs)
    summary.check(table, f"--summary {args.summary}", [Path(d).name for d in args.runs] if args.runs else None)
    defaults = _params(args.defaults, "--defaults")
    if isinstance(defaults.get("precision"), str) and isinstance(defaults.get("device"), str):
        from .learning import precision  # `auto` as the runs carry it, resolved on this machine as when planned

        defaults["precision"] = precision.resolve(defaults["precision"], defaults["device"])
    try:
        checked = claims.check(table, defaults)
    except KeyError as exc:
        raise MHDError(f"--defaults lacks the run key {exc}; give the config's whole `run`") from exc
    if args.reference:
        try:
            text = files.read_regular(args.reference, "a claims.csv (docs/claims-reference.csv)")
            checked = claims.with_reference(checked, pd.read_csv(io.BytesIO(text)))
        except (OSError, ValueError, KeyError) as exc:
            raise MHDError(f"--reference {args.reference}: not a claims table ({exc})") from exc
    runs = readouts.per_run(table)
    judged = runs.converged.notna()
    unconverged = sorted(runs[judged & (runs.converged != True)].run)  # noqa: E712 (True, False or NaN)
    unmeasurable = sorted(runs[~judged].run)
    text = claims.markdown(checked, unconverged, unmeasurable)
    files.write_text(f"{args.out}.csv", checked.to_csv(index=False))
    files.write_text(f"{args.out}.md", text)
    if args.metrics or args.curves:  # what DVC shows: dvc metrics show, dvc plots show
        from .report import headline

        r = claims.Runs(table, defaults)
        if args.metrics:
            files.write_json(args.metrics, headline.metrics(r))
        if args.curves:  # the folder exists even when no run is at the default setting (no curve to draw)
            for kind in ("shared", "private"):
                (Path(args.curves) / kind).mkdir(parents=True, exist_ok=True)
            for (kind, label), curve in headline.curves(table, r).items():
                files.write_text(Path(args.curves) / kind / f"{_file_name(label)}.csv", curve.to_csv(index=False))
    print(text)
    print(f"{len(checked)} claims -> {args.out}.csv, {args.out}.md")


def _file_name(label: str) -> str:
    """A method's legend label as a file name: "MHD (H=3)" -> "MHD_H3"."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label.replace("=", "")).strip("_").replace("__", "_")


def cmd_table(args) -> None:
    """Print the last-step accuracies of an experiment's runs as a markdown table."""
    from .report import summary

    spec = _read_spec(args.spec, trained=True)
    table = summary.collect([r["dir"] for r in spec["runs"]])
    for cond in args.where:
        key, _, value = cond.partition("=")
        if key not in table.columns:
            raise MHDError(f"--where {cond}: no column {key!r}; columns: {', '.join(table.columns)}")
        table = table[table[key].astype(str) == value]
    if table.empty:
        raise MHDError(f"no rows match {' and '.join(args.where)}")
    print(summary.headline_table(table))


def cmd_teacher_scores(args) -> None:
    """Print how well each sender score separates a client's own classes on a trained run."""
    from .report import teacher_scores

    print(teacher_scores.markdown(teacher_scores.measure(args.run, args.samples), args.run))


def _count(zero: str, what: str):
    """An argparse type: 0 (meaning `zero`) or a positive number of `what`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text!r}: allowed: 0 ({zero}) or a positive number of {what}")
        return value
    return parse


_threads = _count("torch's default", "threads")


def _cores(text: str) -> int:
    """An argparse type: a positive number of cores."""
    value = _count("", "cores")(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: allowed: a positive number of cores")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mhd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="validate a config and list what it would build")
    p.add_argument("configs", nargs="*", default=["config/config.yaml"],
                   help="the base config, then overlays merged over it (as snakemake --configfile)")
    p.add_argument("--docs", metavar="README", help="also write README's key tables from the schema's descriptions "
                   "(config/README.md), after checking that the schema's defaults are the base config's values")
    p.set_defaults(func=cmd_check)

    # each stage's parameters arrive as one JSON object with the keywords of the function they go to
    # (config.prepare_params, split_params, graph_params give them): no flag is renamed on the way
    p = sub.add_parser("prepare", help="find, verify and cache a dataset as tensors")
    p.add_argument("--dataset", required=True)
    p.add_argument("--params", default="{}",
                   help='JSON keywords of data.datasets.prepare: {"root": null, "download": true, "verify": true, '
                        '"image_size": 64}')
    p.add_argument("--raw-dir", default="data/raw", help="where downloads go")
    p.add_argument("--out", required=True, help="the .pt file to write (a .json record goes beside it)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("split", help="draw the public set and the non-iid private sets")
    p.add_argument("--prepared", required=True)
    p.add_argument("--params", required=True,
                   help='JSON keywords of data.splits.make, e.g. {"clients": 5, "scheme": "skew", "skew": 100, '
                        '"public_fraction": 0.2, "samples_per_client": 3000, "split_seed": 0}')
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("graph", help="build a communication graph")
    p.add_argument("--params", required=True,
                   help='JSON keywords of data.graphs.make, e.g. {"topology": "ring", "clients": 5, "directed": false}')
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("train", help="train one run (resumes from OUT/checkpoint.pt)")
    p.add_argument("--config", required=True, help="RUN.yaml: {run: {...every run key}, inputs: {prepared, split, graph}}")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=_threads, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="overrides run.device")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="throughput: trainer vs a naive federated loop vs plain training (JSON)")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--quick", action="store_true", help="fewer rounds and steps, the same method: about a minute on 2 CPU cores")
    p.add_argument("--rounds", type=_count("5, or 2 with --quick", "rounds"), default=0, help="interleaved rounds of every variant (0: 5, or 2 with --quick)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: the config's run.device (cuda in config/bench-gpu.yaml)")
    p.add_argument("--threads", type=_threads, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--scale", action="store_true",
                   help="throughput and peak memory of vectorised vs loop vs plain as N and H grow (JSON + figure)")
    p.add_argument("--clients", type=int, nargs="+", default=[2, 4, 8, 16, 32], help="--scale: the values of N")
    p.add_argument("--figure", default="figures/bench_scale.png", help="--scale: where the figure goes")
    p.add_argument("--workflow", action="store_true",
                   help="time `snakemake all_figures` from an empty results/ against the trainer's bench throughput "
                        "(JSON, default --out benchmarks/results/workflow-<machine>.json)")
    p.add_argument("--cores", type=_cores, default=8, help="--workflow: snakemake --cores (as make all_figures)")
    p.add_argument("--configfile", nargs="*", default=[], help="--workflow: overlays, as for snakemake")
    p.add_argument("--work", default="benchmarks/work", help="--workflow: the work folder (its results/, figures/, logs/, .snakemake/ are emptied); "
                   "a new or empty folder, or one the bench made (marked with .mhd-bench-work)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("figure", help="draw the figure of an experiment spec (PNG and PDF)")
    p.add_argument("--spec", required=True, help="results/experiments/<experiment>.json")
    p.add_argument("--out", required=True, help="path without suffix: .png and .pdf are written")
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("table", help="last-step shared / private accuracy per method and head (markdown)")
    p.add_argument("--spec", required=True, help="results/experiments/<experiment>.json")
    p.add_argument("--where", action="append", default=[], help="KEY=VALUE on the summary's columns")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("claims", help="check the paper's claims on a summary (results/claims.csv and .md)")
    p.add_argument("--summary", required=True, help="results/summary.csv")
    p.add_argument("--defaults", required=True, help="JSON: the config's `run` (the default run the claims compare)")
    p.add_argument("--reference", default=None, help="a claims.csv of the reference run: mark verdicts that differ")
    p.add_argument("--runs", nargs="+", default=None, help="the run folders the summary must hold as they are now, "
                   "no more, no fewer (the workflow passes its config's runs)")
    p.add_argument("--out", required=True, help="path without suffix: .csv and .md are written")
    p.add_argument("--metrics", default=None, help="also write the default run's readouts per method here (JSON, for DVC)")
    p.add_argument("--curves", default=None, help="also write their curves over training here, a CSV per method (DVC plots)")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("teacher-scores", help="on a trained MHD run: how well each teacher score (density, "
                       "confidence, energy) tells a client's own classes from the others' (markdown)")
    p.add_argument("run", help="a trained run folder, e.g. results/runs/mhd-h3-complete-n5-2c17f421bc")
    p.add_argument("--samples", type=_count("every public sample", "public samples"), default=4000,
                   help="public samples scored (default 4000)")
    p.set_defaults(func=cmd_teacher_scores)

    p = sub.add_parser("summarize", help="gather runs into one table (a row per run, client, head, step)")
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_summarize)
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
