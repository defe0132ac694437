"""Figures of the data: label distribution per client (heat map) and the communication graph."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from . import io as mio  # noqa: E402


def save(fig, path: str | Path) -> None:
    """Atomic PNG at 150 dpi: a killed job leaves no half-drawn figure."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight",
                metadata={"Software": None} if str(path).endswith(".png") else None)
    plt.close(fig)
    mio.write_bytes(path, buf.getvalue())


def label_distribution(stats_csv: str | Path, out: str | Path, title: str = "",
                       class_names: list[str] | None = None) -> None:
    """Heat map of samples per (client, class), the public set as its own row."""
    stats = pd.read_csv(stats_csv, dtype={"client": str})
    table = stats.pivot(index="client", columns="class", values="count")
    order = sorted((c for c in table.index if c != "public"), key=int) + ["public"]
    table = table.loc[order]
    table.index = [f"client {c}" if c != "public" else "public (unlabelled)" for c in order]
    if class_names and len(class_names) == table.shape[1]:
        table.columns = class_names
    share = table.div(table.sum(axis=1), axis=0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * table.shape[1], 0.9 + 0.45 * table.shape[0]))
    annotate = table.shape[1] <= 20
    sns.heatmap(share, ax=ax, cmap="viridis", vmin=0, vmax=max(share.values.max(), 1e-9),
                annot=table.values if annotate else False, fmt="d", annot_kws={"fontsize": 7},
                cbar_kws={"label": "share of the client's samples"})
    ax.set_xlabel("class")
    ax.set_ylabel("")
    ax.set_title(title or "samples per client and class", fontsize=10)
    ax.tick_params(axis="x", rotation=45 if class_names else 0)
    save(fig, out)


def graph(edges: list[tuple[int, int]], clients: int, out: str | Path, title: str = "") -> None:
    """Clients on a circle; a two-way edge is one line, a one-way edge an arrow from sender to receiver."""
    pos = [(math.cos(math.pi / 2 - 2 * math.pi * i / clients), math.sin(math.pi / 2 - 2 * math.pi * i / clients))
           for i in range(clients)]
    edge_set = set(edges)
    fig, ax = plt.subplots(figsize=(4, 4))
    for src, dst in sorted(edge_set):
        two_way = (dst, src) in edge_set
        if two_way and src > dst:
            continue
        ax.annotate("", xy=pos[dst], xytext=pos[src],
                    arrowprops={"arrowstyle": "-" if two_way else "-|>", "color": "0.35", "lw": 1.2,
                                "shrinkA": 13, "shrinkB": 13, "mutation_scale": 14})
    for i, (x, y) in enumerate(pos):
        ax.add_patch(plt.Circle((x, y), 0.11, color="tab:blue", zorder=3))
        ax.text(x, y, str(i), ha="center", va="center", color="white", fontsize=9, zorder=4, weight="bold")
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title or f"{clients} clients, {len(edge_set)} directed edges", fontsize=10)
    save(fig, out)
