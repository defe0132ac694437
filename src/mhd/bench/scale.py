"""`mhd bench --scale`: throughput and peak memory as the number of clients N and of heads H grow,
for the vectorised engine, the per-client loop and plain training of one model on the same total
batch (N x (batch_private + batch_public) images per step: the speed vectorisation aims at).

Every measurement runs in a fresh process, so that its peak memory is its own. CPU: the resident
set before the first step (data, models, torch) and its peak during the steps (VmHWM, reset after
set-up); `step_rss_mib` is their difference, the memory the steps add. GPU:
torch.cuda.max_memory_allocated over the steps. The split is iid-like (skew 1,
at most 1000 private samples per client) so that 32 clients fit in Fashion-MNIST; throughput does not
depend on which images a client holds.
"""

from __future__ import annotations

import sys
from pathlib import Path

CLIENTS = (2, 4, 8, 16, 32)
HEADS = (1, 3, 8)
VARIANTS = ("vectorised", "loop", "plain")


def scale(config_path: str = "config/config.yaml", quick: bool = False, device: str = "auto", threads: int = 0,
          clients: tuple[int, ...] = CLIENTS, heads: tuple[int, ...] = HEADS, progress: bool = True) -> dict:
    """Measure every variant at every N (the config's H), and the two engines at every H (N = 8,
    or the largest N asked for if smaller)."""
    from .. import config as mconfig
    from .throughput import isolated

    cfg_run = mconfig.load_any(config_path)["run"]
    h0 = cfg_run["heads"] or 1
    n_h = 8 if 8 in clients else max(clients)
    base = {"config": config_path, "device": device, "threads": threads,
            "warmup": 2 if quick else 3, "steps": 4 if quick else 30}

    def job(variant: str, n: int, h: int) -> dict:
        over = {"method": "mhd", "clients": n, "heads": h, "scheme": "skew", "skew": 1.0,
                "samples_per_client": min(1000, cfg_run["samples_per_client"]),
                "engine": "loop" if variant == "plain" else variant}
        return {**base, "variant": "plain" if variant == "plain" else "trainer", "label": variant, "overrides": over}

    plan = [(v, n, h0) for n in clients for v in VARIANTS] + [(v, n_h, h) for h in heads if h != h0 for v in VARIANTS[:2]]

    def report(row: dict) -> None:
        if progress:
            mem = f", GPU {row['gpu_max_allocated_mib']:.0f} MiB" if row["gpu_max_allocated_mib"] else ""
            print(f"  {row['variant']:>10}  N={row['clients']:<3} H={row['heads']}: {row['img_s']:>9.1f} img/s, peak RSS "
                  f"{row['peak_rss_mib']:.0f} MiB (+{row['step_rss_mib']:.0f} in the steps){mem}", file=sys.stderr, flush=True)

    rows = isolated([job(*p) for p in plan], report)
    speed = {(r["variant"], r["clients"], r["heads"]): r["img_s"] for r in rows}
    ratios = {str(n): {"vectorised_vs_loop": round(speed["vectorised", n, h0] / speed["loop", n, h0], 3),
                       "vectorised_vs_plain": round(speed["vectorised", n, h0] / speed["plain", n, h0], 3),
                       "loop_vs_plain": round(speed["loop", n, h0] / speed["plain", n, h0], 3)} for n in clients}
    first = rows[0]
    return {"device": first["device"], "threads": first["threads"], "architecture": first["architecture"],
            "channels_last": first["channels_last"], "compile": first["compile"], "heads": h0,
            "steps_timed": base["steps"], "ratios": ratios, "rows": rows}


def bench_scale(config_path: str = "config/config.yaml", quick: bool = False, device: str = "auto", threads: int = 0,
                clients: tuple[int, ...] = CLIENTS, figure_path: str | Path = "figures/bench_scale.png") -> dict:
    """`mhd bench --scale`: `scale`'s measurements, and their figure drawn at `figure_path`."""
    result = scale(config_path, quick=quick, device=device, threads=threads, clients=tuple(clients))
    figure(result, figure_path)
    print(f"figure: {figure_path}", file=sys.stderr)
    return result


def figure(result: dict, out: str | Path) -> None:
    """Throughput and peak memory against N, and peak memory against H."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from ..report.plots import save

    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    t = pd.DataFrame(result["rows"])
    by_n = t[t.heads == result["heads"]]
    gpu = by_n.gpu_max_allocated_mib.notna().all()
    mem, mem_label = (("gpu_max_allocated_mib", "GPU max allocated (MiB)") if gpu else
                      ("step_rss_mib", "RSS added by the steps (MiB)"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    palette = dict(zip(VARIANTS, sns.color_palette("deep", 3)))
    sns.lineplot(by_n, x="clients", y="img_s", hue="variant", hue_order=VARIANTS, palette=palette, marker="o", ax=axes[0])
    axes[0].set(xscale="log", xlabel="clients N", ylabel="images / s", title="throughput")
    sns.lineplot(by_n, x="clients", y=mem, hue="variant", hue_order=VARIANTS, palette=palette, marker="o", ax=axes[1],
                 legend=False)
    axes[1].set(xscale="log", xlabel="clients N", ylabel=mem_label, title="peak memory")
    n_h = t[t.heads != result["heads"]].clients.max() if (t.heads != result["heads"]).any() else None
    by_h = t[(t.clients == n_h) & (t.variant != "plain")] if n_h else t.iloc[:0]
    sns.lineplot(by_h, x="heads", y=mem, hue="variant", hue_order=VARIANTS[:2], palette=palette, marker="o",
                 ax=axes[2], legend=False)
    axes[2].set(xlabel="auxiliary heads H", ylabel=mem_label, title=f"peak memory, N = {n_h}")
    for ax in axes:
        ax.set_ylim(bottom=0)
    for ax in axes[:2]:
        ax.set_xticks(sorted(by_n.clients.unique()), [str(n) for n in sorted(by_n.clients.unique())])
        ax.minorticks_off()
    precisions = "/".join(sorted(t.precision.unique())) if "precision" in t else "fp32"
    fig.suptitle(f"{result['architecture']} in {precisions} on {result['device']} ({result['threads']} threads), "
                 f"H = {result['heads']} "
                 f"unless varied; plain: one model, one batch of the same N x B images", fontsize=10)
    fig.tight_layout()
    save(fig, out)
