"""The paper's figures, one function per kind, named as the kind (report/kinds.py). Each reads an
experiment spec (its runs and their artefacts), draws one figure and writes it as PNG and PDF. Spread
is over clients and seeds."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..data import datasets, splits  # noqa: E402
from ..data import graphs as graph_files  # noqa: E402 (`graphs` is a figure kind, drawn below)
from ..learning import methods, run_folder  # noqa: E402
from . import diffusion, fronts, kinds, plots, readouts, summary  # noqa: E402

ERR = ("sd", 1)


def _readouts(table: pd.DataFrame) -> pd.DataFrame:
    """Each run's best head (`best`, read for shared accuracy) and a method label for the legend."""
    best = run_folder.best_heads(table)
    return table.assign(best=table["run"].map(best), label=table.apply(lambda r: methods.label(r["method"], r["heads"]),
                                                                       axis=1))


def _colours(labels) -> dict:
    """The same colour for a method in every panel: methods in a fixed order, MHD variants by H."""
    names = [methods.get(m).label for m in methods.METHODS]
    order = sorted(set(labels), key=lambda l: (names.index(l.split(" (")[0]), l))
    return dict(zip(order, sns.color_palette("deep", len(order))))


def _accuracy_axis(ax) -> None:
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0.0), min(high, 1.01))


def _style():
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)


# ---------------------------------------------------------------- training figures
def learning_curves(table: pd.DataFrame, spec: dict, out: Path) -> None:
    t = _readouts(table)
    colours = _colours(t.label)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    best = t[t["head"] == t["best"]]
    sns.lineplot(best, x="step", y="shared_acc", hue="label", palette=colours, errorbar=ERR, ax=axes[0], marker="o")
    axes[0].set(title="shared accuracy (best head)", ylabel="accuracy on the whole test split")
    main = t[t["head"] == "0"]
    sns.lineplot(main, x="step", y="private_acc", hue="label", palette=colours, errorbar=ERR, ax=axes[1], marker="o",
                 legend=False)
    axes[1].set(title="private accuracy (main head)", ylabel="accuracy on the client's distribution")
    for ax in axes[:2]:
        _accuracy_axis(ax)
    last = summary.last_step(t)
    last = last[last["head"] != "ensemble"].groupby(["label", "head"])[["shared_acc", "private_acc"]].mean().reset_index()
    sns.scatterplot(last, x="shared_acc", y="private_acc", hue="label", palette=colours, style="head", s=80,
                    ax=axes[2], legend=False)
    for _, r in last.iterrows():
        axes[2].annotate(f"h{r['head']}", (r.shared_acc, r.private_acc), textcoords="offset points", xytext=(4, 3),
                         fontsize=7)
    axes[2].set(title="trade-off at the last step (one point per method and head)", xlabel="shared accuracy",
                ylabel="private accuracy")
    _finish(fig, axes[0], out)


def per_head(table: pd.DataFrame, spec: dict, out: Path) -> None:
    t = summary.heads_at_last_step(table, auxiliary_only=True).copy()
    t["head index"] = t["head"].astype(int)
    t["H"] = "H = " + t["heads"].astype(str) + np.where(t["include_self"].astype(bool), "", ", without include_self")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, title in ((axes[0], "shared_acc", "shared accuracy"), (axes[1], "private_acc", "private accuracy")):
        sns.pointplot(t, x="head index", y=metric, hue="H", errorbar=ERR, dodge=0.3, ax=ax, legend=ax is axes[0])
        ax.set(title=f"{title} per head (last step)", ylabel=title)
    _finish(fig, axes[0], out)


def sweep(table: pd.DataFrame, spec: dict, out: Path, categorical: bool = False, peers: bool = False) -> None:
    """Shared accuracy (best head) and private accuracy (main head) against the spec's `x`, one colour per
    method; with `peers`, MHD runs whose clients all have one backbone are told apart from mixed ones."""
    x = spec["x"]
    t = summary.last_step(_readouts(table))
    colours = _colours(t.label)
    mixed_run = t.groupby("run")["client_architecture"].transform("nunique") > 1 if peers else None
    if peers and mixed_run.any() and not mixed_run.all():
        t = t.copy()
        alone = ~mixed_run
        # clients that share nothing (isolated) have no peers to tell apart
        mixed = mixed_run & (t["method"].map(lambda m: methods.get(m).shares) != "nothing")
        pastel = dict(zip(colours, sns.color_palette("pastel", len(colours))))
        told = mixed | alone
        label = t["label"] + np.where(alone, ", every client " + t["client_architecture"].astype(str),
                                      ", mixed backbones")
        colours.update({new: (pastel if one else colours)[old]
                        for old, new, one in zip(t.loc[told, "label"], label[told], alone[told])})
        t.loc[told, "label"] = label[told]
    best = t[t["head"] == t["best"]]
    main = t[t["head"] == "0"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, data, metric, title in ((axes[0], best, "shared_acc", "shared accuracy (best head)"),
                                    (axes[1], main, "private_acc", "private accuracy (main head)")):
        if categorical:
            sns.barplot(data, x=x, y=metric, hue="label", palette=colours, errorbar=ERR, ax=ax, legend=ax is axes[0])
        else:
            sns.lineplot(data, x=x, y=metric, hue="label", palette=colours, errorbar=ERR, marker="o", ax=ax,
                         legend=ax is axes[0])
            if x == "skew":
                ax.set_xscale("log")
        _accuracy_axis(ax)
        ax.set(title=title, ylabel=title.split(" (")[0], xlabel=x.replace("_", " "))
    _finish(fig, axes[0], out)


def ablation(table: pd.DataFrame, spec: dict, out: Path) -> None:
    sweep(table, spec, out, categorical=True)


def topologies(table: pd.DataFrame, spec: dict, out: Path) -> None:
    t = summary.heads_at_last_step(table, auxiliary_only=True).copy()
    t["head index"] = t["head"].astype(int)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sns.pointplot(t, x="head index", y="shared_acc", hue="topology", errorbar=ERR, dodge=0.3, ax=ax)
    ax.set(title="shared accuracy per head and topology (last step)", ylabel="shared accuracy")
    _finish(fig, ax, out)


def heterogeneous(table: pd.DataFrame, spec: dict, out: Path) -> None:
    """Bars per client architecture: the sweep figure over each client's own backbone; clients of runs where
    every client has the same backbone (claim 6's control) are bars of their own."""
    sweep(table, {**spec, "x": "client_architecture"}, out, categorical=True, peers=True)


def communication(table: pd.DataFrame, spec: dict, out: Path) -> None:
    t = _readouts(table)
    t = t[t["head"] == t["best"]].copy()
    t["variant"] = t["label"] + np.where(t.method.map(lambda m: methods.get(m).shares) == "weights", " every " + t["fedavg_every"].astype(str),
                                         " R=" + t["refresh_every"].astype(str))
    t["MB sent per client"] = t["bytes_sent"] / 1e6
    t = t[t["bytes_sent"] > 0]  # a log axis; runs that send nothing have no place on it
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sns.lineplot(t, x="MB sent per client", y="shared_acc", hue="variant", errorbar=ERR, marker="o", ax=ax)
    ax.set_xscale("log")
    ax.set(title="shared accuracy (best head) against bytes sent", ylabel="shared accuracy")
    _finish(fig, ax, out)


def _settings(f: pd.DataFrame) -> pd.Series:
    """Each point's label within its front: the settings that vary in that family (H, nu_aux, nu_main), or
    only the weight where nu_main alone varies; a family of one point is named by its legend entry."""
    varying = [k for k in ("heads", "nu_aux", "nu_main") if f[k].nunique() > 1]
    if varying == ["nu_main"]:
        return f["nu_main"].map(lambda v: f"{v:g}")
    names = {"heads": "H{:g}", "nu_aux": "aux {:g}", "nu_main": "main {:g}"}
    return f.apply(lambda r: ", ".join(names[k].format(r[k]) for k in varying), axis=1)


def pareto(table: pd.DataFrame, spec: dict, out: Path) -> None:
    """Private accuracy of the main head against shared accuracy (best head; own-heads ensemble), one
    front per method family across its weights, mean over seeds with one standard deviation as bars;
    isolated and centralized are single points. The dotted lines: isolated's private accuracy minus each
    of fronts.LEVELS, where claims 7 and 7b read the fronts (results/claims.md, on validation there)."""
    runs = readouts.per_run(table)
    keys = ["family", "heads", "nu_aux", "nu_main"]
    seeds = runs.groupby(keys + ["seed"], dropna=False)[["shared_best", "shared_ensemble", "private_main"]].mean()
    stats = seeds.groupby(keys, dropna=False).agg(["mean", "std"]).reset_index()
    stats.columns = [f"{a}_{b}" if b else a for a, b in stats.columns]
    colours = _colours(stats.family.unique())
    families = list(colours)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    isolated = stats[stats.family == methods.label("isolated", 0)]
    for ax, x, title in ((axes[0], "shared_best", "best head"), (axes[1], "shared_ensemble", "own-heads ensemble")):
        for fam in families:
            f = stats[stats.family == fam].sort_values(f"{x}_mean")
            # one line per H: a front joins settings that differ in one weight only
            for k, (_, line) in enumerate(f.groupby("heads")):
                ax.errorbar(line[f"{x}_mean"], line["private_main_mean"], xerr=line[f"{x}_std"].fillna(0),
                            yerr=line["private_main_std"].fillna(0), color=colours[fam], marker="os^v"[k % 4],
                            capsize=2, linestyle="-" if len(line) > 1 else "none", label=fam if k == 0 else None)
            for (_, r), text in zip(f.iterrows(), _settings(f)):
                if text:
                    ax.annotate(text, (r[f"{x}_mean"], r["private_main_mean"]), textcoords="offset points",
                                xytext=(4, 4), fontsize=7, color=colours[fam])
        if not isolated.empty:
            for drop in fronts.LEVELS:
                level = isolated["private_main_mean"].iloc[0] - drop
                ax.axhline(level, color="0.4", linestyle=":", linewidth=1)
                ax.annotate(f"isolated - {100 * drop:g} pt", (0, level), xycoords=("axes fraction", "data"),
                            xytext=(2, 2), textcoords="offset points", fontsize=7, color="0.3")
        ax.set(title=f"private accuracy (main head) against shared accuracy ({title})",
               xlabel=f"shared accuracy ({title})", ylabel="private accuracy (main head)")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.text(0.5, 0, "points: mean over seeds, bars one standard deviation; labels: the weight nu_main along a front "
             "(H and nu_aux where they vary); dotted: isolated's private accuracy minus claim 7's levels",
             ha="center", va="bottom", fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    _save_both(fig, out)


def _reach(spec: dict, run: str) -> diffusion.Reach:
    """The run's hop distances and primary classes, read from its graph and split artefacts."""
    r = next(r for r in spec["runs"] if r["id"] == run)
    return diffusion.reach(r["split"], r["graph"])


def transitive(table: pd.DataFrame, spec: dict, out: Path) -> None:
    rows = []
    for run, t in summary.heads_at_last_step(table, auxiliary_only=True).groupby("run"):
        reach = _reach(spec, run)
        for _, r in t.iterrows():
            i = int(r.client)
            for hop in sorted({int(x) for x in reach.hops_NxN[i] if np.isfinite(x) and x > 0}):
                cls = reach.classes_at(i, hop)
                if cls:
                    graph = r.topology + ("-directed" if r.directed else "") + (", include_self" if r.include_self else "")
                    rows.append({"topology": graph, "head": int(r["head"]),
                                 "hop distance": hop, "accuracy": np.mean([r[f"class_acc_{c}"] for c in cls])})
    t = pd.DataFrame(rows)
    topos = sorted(t.topology.unique())
    fig, axes = plt.subplots(1, len(topos), figsize=(5.5 * len(topos), 4.2), squeeze=False)
    for ax, topo in zip(axes[0], topos):
        sns.lineplot(t[t.topology == topo], x="head", y="accuracy", hue="hop distance", palette="viridis",
                     errorbar=ERR, marker="o", ax=ax)
        ax.set(title=f"{topo}: accuracy on the classes of clients d hops away", xlabel="head index")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    _finish(fig, axes[0][0], out, legend=False)


def theory(table: pd.DataFrame, spec: dict, out: Path) -> None:
    rows = []
    for run, t in summary.heads_at_last_step(table, auxiliary_only=True).groupby("run"):
        first = t.iloc[0]
        cover = diffusion.predicted_coverage(_reach(spec, run), int(first.heads), bool(first.include_self))
        for _, r in t.iterrows():
            k, topo = int(r["head"]), r.topology
            rows.append({"topology": topo, "head": k, "value": cover[int(r.client), k], "what": "predicted coverage"})
            rows.append({"topology": topo, "head": k, "value": r.shared_acc, "what": "measured shared accuracy"})
    t = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.lineplot(t, x="head", y="value", hue="topology", style="what", errorbar=None, marker="o", ax=ax)
    ax.set(title="information diffusion: predicted class coverage vs measured accuracy per head",
           xlabel="head index", ylabel="share of classes / accuracy")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    _finish(fig, ax, out)


# ---------------------------------------------------------------- data figures (figure 10)
SCHEME_NAMES = {"dirichlet": "Dirichlet per class over clients (NIID-Bench)",
                "inner_dirichlet": "Dirichlet over classes per client"}


def _split_title(params: dict, fallback: str) -> str:
    """The split's scheme in words; `fallback` (the split's folder name) for a record without it."""
    if params.get("scheme") not in ("skew", *SCHEME_NAMES) or not isinstance(params.get(
            "skew" if params.get("scheme") == "skew" else "alpha"), (int, float)):
        return fallback
    if params["scheme"] == "skew":
        return f"skew s = {params['skew']:g}" + (" (iid)" if params["skew"] == 1 else "")
    return f"{SCHEME_NAMES[params['scheme']]}, alpha = {params['alpha']:g}"


def label_distribution(spec: dict, out: Path) -> None:
    # the counts drawn are stats.csv's, checked against the split itself (indices.csv over the dataset's
    # labels), every split before anything is drawn
    tensors, meta = datasets.load(Path(spec["dataset_meta"]).with_suffix(".pt"))
    names, labels = meta["class_names"], tensors["train_y"].numpy()
    drawn = [(split_dir, *splits.read_stats(split_dir, labels, meta["classes"])) for split_dir in spec["splits"]]
    n = len(spec["splits"])
    fig, axes = plt.subplots(1, n, figsize=(1.0 + 0.5 * len(names) * n, 4.6), squeeze=False)
    for ax, (split_dir, counts, split_meta) in zip(axes[0], drawn):
        # the validation row is drawn with the public one: the figure shows every set the split holds, so its
        # reader sees that the set every selection is made on is class-balanced, and its size
        order = [*map(str, range(len(counts) - 2)), "public", "validation"]
        table = pd.DataFrame(counts, index=order)
        share = table.div(table.sum(axis=1), axis=0)
        sizes = table.sum(axis=1)
        share.index = [f"{c if c in ('public', 'validation') else f'client {c}'} (n = {sizes[c]})" for c in order]
        share.columns = names
        sns.heatmap(share, ax=ax, cmap="viridis", vmin=0, vmax=1, cbar=ax is axes[0][-1],
                    cbar_kws={"label": "share of the set's samples"})
        ax.set(title=_split_title(split_meta["params"], Path(split_dir).name),
               xlabel="class", ylabel="")
        ax.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    _save_both(fig, out)


def graphs(spec: dict, out: Path) -> None:
    n = len(spec["graphs"])
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
    for ax, graph_dir in zip(axes[0], spec["graphs"]):
        edges, meta = graph_files.read(graph_dir)
        plots.draw_graph(ax, edges, meta["params"]["clients"], Path(graph_dir).name)
    fig.tight_layout()
    _save_both(fig, out)


def teacher_precision(table: pd.DataFrame, spec: dict, out: Path) -> None:
    """Per teacher rule: how often head k's targets came from a sender owning the sample's class (mean
    over the evaluations, clients and seeds), beside the shared accuracy each rule reached; a row per
    topology."""
    from ..learning import teachers  # the rules' order

    t = _readouts(table)
    t["head index"] = t["head"].where(t["head"] != "ensemble", "-")
    rules = sorted(set(t["teacher"]), key=teachers.RULES.index)
    tops = list(dict.fromkeys(t["topology"]))
    colours = dict(zip(rules, sns.color_palette("deep", len(rules))))
    fig, axes = plt.subplots(len(tops), 2, figsize=(12, 4.2 * len(tops)), squeeze=False)
    for row, topology in zip(axes, tops):
        tt = t[t["topology"] == topology]
        prec = tt[tt["teacher_precision"].notna()] if "teacher_precision" in tt else tt.iloc[:0]
        if len(prec):
            sns.barplot(prec, x="head index", y="teacher_precision", hue="teacher", hue_order=rules, palette=colours,
                        errorbar=ERR, ax=row[0])
        row[0].set(title=f"teacher precision per head ({topology})", ylim=(0, 1.01), xlabel="head k (taught by head k-1)",
                   ylabel="share of targets from an owner of the class")
        last = summary.last_step(tt)
        best = last[last["head"] == last["best"]]
        sns.barplot(best, x="teacher", y="shared_acc", order=rules, hue="teacher", hue_order=rules, palette=colours,
                    errorbar=ERR, ax=row[1], legend=False)
        row[1].set(title=f"shared accuracy, best head, last step ({topology})", xlabel="teacher rule",
                   ylabel="shared accuracy")
        _accuracy_axis(row[1])
    _finish(fig, axes[0][0], out)


# ---------------------------------------------------------------- common
def _save_both(fig, out: Path) -> None:
    """`out`.png and `out`.pdf, each written atomically."""
    for ext in ("png", "pdf"):
        plots.save(fig, out.parent / f"{out.name}.{ext}", close=False)  # a name may hold a dot: v1.0
    plt.close(fig)


def _finish(fig, legend_ax, out: Path, legend: bool = True) -> None:
    if legend and legend_ax.get_legend() is not None:
        sns.move_legend(legend_ax, "best", fontsize=8, title=None)
    fig.tight_layout()
    _save_both(fig, out)


# kinds.py names the kinds; each is drawn by the function of its name here (a kind without one fails
# on import)
DRAW = {kind: globals()[kind] for kind in kinds.KINDS}


def draw(spec: dict, out: str | Path) -> None:
    """Draw the figure of an experiment spec (written by the workflow's rule experiment_spec)."""
    _style()
    out = Path(out)
    kind = spec["figure"]
    if kind in kinds.DATA_KINDS:
        DRAW[kind](spec, out)
    else:
        table = summary.collect([r["dir"] for r in spec["runs"]])
        DRAW[kind](table, spec, out)
