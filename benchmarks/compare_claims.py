"""Two claims tables of one config side by side (e.g. fp32 against bf16): each claim's effect, interval
and verdict in both, whether the verdicts agree, and whether each effect lies in the other's interval.

    python benchmarks/compare_claims.py A/results/claims.csv B/results/claims.csv --names fp32 bf16
"""

import argparse

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--names", nargs=2, default=["a", "b"])
    args = parser.parse_args()
    na, nb = args.names
    m = pd.read_csv(args.a).merge(pd.read_csv(args.b), on="claim", suffixes=(f"_{na}", f"_{nb}"))

    def cell(r, n):
        return f"{r[f'effect_{n}']:+.3f} [{r[f'ci_low_{n}']:+.3f}, {r[f'ci_high_{n}']:+.3f}], {r[f'verdict_{n}']}"

    def inside(r, x, n):
        return "yes" if r[f"ci_low_{n}"] <= r[f"effect_{x}"] <= r[f"ci_high_{n}"] else "no"

    print(f"| claim | {na} | {nb} | same verdict | {nb} effect in {na} interval | {na} effect in {nb} interval |")
    print("|---|---|---|---|---|---|")
    for _, r in m.iterrows():
        print(f"| {r.claim.split(' ')[0]} | {cell(r, na)} | {cell(r, nb)} | "
              f"{'yes' if r[f'verdict_{na}'] == r[f'verdict_{nb}'] else '**no**'} | {inside(r, nb, na)} | {inside(r, na, nb)} |")


if __name__ == "__main__":
    main()
