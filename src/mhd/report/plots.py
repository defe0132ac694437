"""Drawing helpers: atomic figure files and a communication graph on a matplotlib axis."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from ..data import files  # noqa: E402


def save(fig, path: str | Path, close: bool = True) -> None:
    """Atomic PNG or PDF (by suffix) at 150 dpi, without a timestamp: a killed job leaves no
    half-drawn figure, and the same figure gives the same bytes."""
    import io

    fmt = Path(path).suffix.lstrip(".") or "png"
    meta = {"Software": None} if fmt == "png" else {"Creator": None, "Producer": None, "CreationDate": None}
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=150, bbox_inches="tight", metadata=meta)
    if close:
        plt.close(fig)
    files.write_bytes(path, buf.getvalue())


def draw_graph(ax, edges: list[tuple[int, int]], clients: int, title: str = "") -> None:
    """Clients on a circle; a two-way edge is one line, a one-way edge an arrow from sender to receiver."""
    pos = [(math.cos(math.pi / 2 - 2 * math.pi * i / clients), math.sin(math.pi / 2 - 2 * math.pi * i / clients))
           for i in range(clients)]
    edge_set = set(edges)
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
