"""The `mhd` command: the entry point for users and for the workflow's rules."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import MHDError


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def cmd_check(args) -> None:
    """Validate a config and list the splits and graphs its experiments use."""
    from . import config as mconfig

    cfg = mconfig.load_layered(args.configs[0], args.configs[1:])
    for name, runs in mconfig.expand(cfg).items():
        splits = sorted({mconfig.split_id(cfg["dataset"]["name"], r) for r in runs})
        graphs = sorted({mconfig.graph_id(r) for r in runs})
        print(f"{name}: {len(runs)} runs, splits: {', '.join(splits)}; graphs: {', '.join(graphs)}")
    print(f"{' + '.join(args.configs)}: valid")


def cmd_prepare(args) -> None:
    from . import datasets

    rec = datasets.prepare(args.dataset, args.out, root=args.root, download=args.download,
                           strict=args.verify, image_size=args.image_size, raw_dir=args.raw_dir)
    print(f"prepared {rec['name']} from {rec['source']}: train {rec['shapes']['train_x']}, "
          f"test {rec['shapes']['test_x']}, {rec['classes']} classes -> {args.out}")


def cmd_split(args) -> None:
    from . import config as mconfig
    from . import datasets, splits

    tensors, meta = datasets.load(args.prepared)
    labels = tensors["train_y"].numpy()
    params = mconfig.split_params({"clients": args.clients, "scheme": args.scheme, "skew": args.skew,
                                   "alpha": args.alpha, "public_fraction": args.public_fraction,
                                   "samples_per_client": args.samples_per_client, "split_seed": args.seed})
    split = splits.make(labels, meta["classes"], clients=args.clients, scheme=args.scheme, skew=args.skew,
                        alpha=args.alpha, public_fraction=args.public_fraction,
                        samples_per_client=args.samples_per_client, seed=args.seed)
    splits.write(args.out, split, labels, meta["classes"], {"dataset": meta["name"], **params})
    print(f"split of {meta['name']}: {args.clients} clients x {args.samples_per_client} private samples, "
          f"{len(split.public)} public -> {args.out}")


def cmd_graph(args) -> None:
    from . import config as mconfig
    from . import graphs

    edges = graphs.make(args.topology, args.clients, islands=args.islands, degree=args.degree,
                        directed=args.directed, seed=args.seed)
    params = mconfig.graph_params({"topology": args.topology, "clients": args.clients, "islands": args.islands,
                                   "degree": args.degree, "directed": args.directed, "graph_seed": args.seed})
    graphs.write(args.out, edges, params)
    print(f"{args.topology} graph on {args.clients} clients: {len(edges)} edges -> {args.out}")


def cmd_figure(args) -> None:
    from . import figures

    spec = json.loads(Path(args.spec).read_text())
    figures.draw(spec, args.out)
    print(f"{spec['figure']} figure of experiment {spec['name']} -> {args.out}.png, {args.out}.pdf")


def cmd_write(args) -> None:
    """What a workflow rule hands to a later one: a run's RUN.yaml or an experiment's spec."""
    from . import config as mconfig
    from . import io as mio

    spec = json.loads(args.json)
    if args.kind == "run":
        mconfig.write_run_spec(args.out, spec)
    else:
        mio.write_json(args.out, spec)
    print(f"wrote {args.out}")


def cmd_summarize(args) -> None:
    from . import io as mio
    from . import summary

    table = summary.collect(args.runs)
    mio.write_text(args.out, table.to_csv(index=False))
    print(f"{len(args.runs)} runs, {len(table)} rows -> {args.out}")


def cmd_train(args) -> None:
    import torch
    import yaml

    from . import config as mconfig
    from .errors import ConfigError
    from .train import train

    try:
        spec = yaml.safe_load(Path(args.config).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read run config {args.config}: {exc}") from exc
    if not isinstance(spec, dict) or set(spec) != {"run", "inputs"}:
        raise ConfigError(f"run config {args.config} must have exactly the keys 'run' and 'inputs' "
                          f"(prepared, split, graph); found {sorted(spec) if isinstance(spec, dict) else spec!r}")
    run = mconfig.validate_run(spec["run"], args.config)
    missing = {"prepared", "split", "graph"} - set(spec["inputs"])
    if missing:
        raise ConfigError(f"run config {args.config}: inputs lacks {', '.join(sorted(missing))}")
    if args.threads:
        torch.set_num_threads(args.threads)
    rec = train(run, spec["inputs"]["prepared"], spec["inputs"]["split"], spec["inputs"]["graph"], args.out,
                device=args.device or run["device"], stop_after=args.stop_after)
    if "stopped_at" in rec:
        print(f"stopped at step {rec['stopped_at']} as asked; rerun the same command to resume")
    else:
        print(f"{run['method']} H={run['heads']}: {run['steps']} steps in {rec['wall_time_s']:.1f} s "
              f"({rec['images_per_s']} images/s) on {rec['device']['device']} -> {args.out}")


def cmd_bench(args) -> None:
    from .bench import bench

    if args.scale:
        from .bench_scale import figure, scale

        result = scale(args.config, quick=args.quick, device=args.device, threads=args.threads,
                       clients=tuple(args.clients))
        figure(result, args.figure)
        print(f"figure: {args.figure}", file=sys.stderr)
    else:
        result = bench(args.config, quick=args.quick, device=args.device, threads=args.threads)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from . import io as mio

        mio.write_text(args.out, text + "\n")


def cmd_table(args) -> None:
    """Print the last-step accuracies of an experiment's runs as a markdown table."""
    from . import summary

    spec = json.loads(Path(args.spec).read_text())
    table = summary.collect([r["dir"] for r in spec["runs"]])
    for cond in args.where:
        key, _, value = cond.partition("=")
        if key not in table.columns:
            raise MHDError(f"--where {cond}: no column {key!r}; columns: {', '.join(table.columns)}")
        table = table[table[key].astype(str) == value]
    if table.empty:
        raise MHDError(f"no rows match {' and '.join(args.where)}")
    print(summary.headline_table(table))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mhd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="validate a config and list what it would build")
    p.add_argument("configs", nargs="*", default=["config/config.yaml"],
                   help="the base config, then overlays merged over it (as snakemake --configfile)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("prepare", help="find, verify and cache a dataset as tensors")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", default=None, help="folder with the raw files (default: the usual places)")
    p.add_argument("--download", type=_bool, default=True)
    p.add_argument("--verify", type=_bool, default=True)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--raw-dir", default="data/raw", help="where downloads go")
    p.add_argument("--out", required=True, help="the .pt file to write (a .json record goes beside it)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("split", help="draw the public set and the non-iid private sets")
    p.add_argument("--prepared", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--scheme", choices=["skew", "dirichlet"], default="skew")
    p.add_argument("--skew", type=float, default=100.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--public-fraction", type=float, default=0.2)
    p.add_argument("--samples-per-client", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("graph", help="build a communication graph")
    p.add_argument("--topology", required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--islands", type=int, default=2)
    p.add_argument("--degree", type=int, default=2)
    p.add_argument("--directed", type=_bool, default=False)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("train", help="train one run (resumes from OUT/checkpoint.pt)")
    p.add_argument("--config", required=True, help="RUN.yaml: {run: {...every run key}, inputs: {prepared, split, graph}}")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="overrides run.device")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="throughput: trainer vs a naive federated loop vs plain training (JSON)")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--quick", action="store_true", help="a few steps each: under a minute on 2 CPU cores")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: the config's run.device (cuda in config/bench-gpu.yaml)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--scale", action="store_true",
                   help="throughput and peak memory of vectorised vs loop vs plain as N and H grow (JSON + figure)")
    p.add_argument("--clients", type=int, nargs="+", default=[2, 4, 8, 16, 32], help="--scale: the values of N")
    p.add_argument("--figure", default="figures/bench_scale.png", help="--scale: where the figure goes")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("figure", help="draw the figure of an experiment spec (PNG and PDF)")
    p.add_argument("--spec", required=True, help="results/experiments/<experiment>.json")
    p.add_argument("--out", required=True, help="path without suffix: .png and .pdf are written")
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("table", help="last-step shared / private accuracy per method and head (markdown)")
    p.add_argument("--spec", required=True, help="results/experiments/<experiment>.json")
    p.add_argument("--where", action="append", default=[], help="KEY=VALUE on the summary's columns")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("write", help="write a run's RUN.yaml or an experiment's spec (used by the workflow)")
    p.add_argument("--kind", choices=["run", "experiment"], required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_write)

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
