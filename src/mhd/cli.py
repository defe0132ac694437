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
    from . import datasets, splits

    tensors, meta = datasets.load(args.prepared)
    labels = tensors["train_y"].numpy()
    params = {"clients": args.clients, "scheme": args.scheme, "public_fraction": args.public_fraction,
              "samples_per_client": args.samples_per_client, "split_seed": args.seed}
    params.update({"skew": args.skew} if args.scheme == "skew" else {"alpha": args.alpha})
    split = splits.make(labels, meta["classes"], clients=args.clients, scheme=args.scheme, skew=args.skew,
                        alpha=args.alpha, public_fraction=args.public_fraction,
                        samples_per_client=args.samples_per_client, seed=args.seed)
    splits.write(args.out, split, labels, meta["classes"], {"dataset": meta["name"], **params})
    print(f"split of {meta['name']}: {args.clients} clients x {args.samples_per_client} private samples, "
          f"{len(split.public)} public -> {args.out}")


def cmd_graph(args) -> None:
    from . import graphs

    edges = graphs.make(args.topology, args.clients, islands=args.islands, degree=args.degree,
                        directed=args.directed, seed=args.seed)
    params = {"topology": args.topology, "clients": args.clients, "directed": args.directed}
    if args.topology == "islands":
        params["islands"] = args.islands
    if args.topology == "regular":
        params.update(degree=args.degree, graph_seed=args.seed)
    graphs.write(args.out, edges, params)
    print(f"{args.topology} graph on {args.clients} clients: {len(edges)} edges -> {args.out}")


def cmd_plot(args) -> None:
    from . import graphs, plots

    if args.what == "labels":
        names = json.loads(Path(args.dataset_meta).read_text())["class_names"] if args.dataset_meta else None
        plots.label_distribution(Path(args.input) / "stats.csv", args.out, args.title, names)
    else:
        edges, meta = graphs.read(args.input)
        plots.graph(edges, meta["params"]["clients"], args.out, args.title)
    print(f"wrote {args.out}")


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

    p = sub.add_parser("plot", help="draw a split's label distribution or a graph")
    p.add_argument("what", choices=["labels", "graph"])
    p.add_argument("--input", required=True, help="the split or graph folder")
    p.add_argument("--dataset-meta", default=None, help="prepared dataset .json, for class names")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_plot)
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
