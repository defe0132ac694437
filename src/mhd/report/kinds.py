"""The figure kinds an experiment may name, each once, with what it is drawn from and what its
experiment must give it: the one list. The config check (checks.py), the workflow and figures.py
read it from here (figures.py draws each kind with the function of its name; a test keeps the two
in step). Also what an experiment spec of each kind holds (check_spec, read_spec), so that
`mhd figure` and `mhd table` refuse another's spec before drawing."""

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Kind:
    trained: bool = True      # drawn from trained runs; else from the data artefacts alone
    auxiliary: bool = False   # shows auxiliary heads: an experiment without an MHD run draws an empty figure
    swept: bool = False       # its x axis is a run key: the spec's `x`, or a grid key other than the seeds
    edges: bool = False       # drawn from the graph's edges (hop distances, walks, the drawing)
    sending: bool = False     # accuracy against bytes sent: needs a run that sends something
    data: tuple = ()          # a data figure's spec keys, beyond its name and figure (paths)
    # the run keys it tells runs apart by (axis, colour, facet; a swept kind adds its `x`): runs that
    # differ in any other key, beyond the seeds it averages over, would be pooled into one mark, so the
    # config check refuses them (checks.pooled). Kept in step with figures.py's hue, style and facets.
    drawn: tuple = ()


KIND = {
    "learning_curves": Kind(drawn=("method", "heads")),
    "per_head": Kind(auxiliary=True, drawn=("method", "heads", "include_self")),
    "sweep": Kind(swept=True, drawn=("method", "heads")),
    "ablation": Kind(swept=True, drawn=("method", "heads")),
    "topologies": Kind(auxiliary=True, drawn=("topology",)),
    "transitive": Kind(auxiliary=True, edges=True, drawn=("topology", "directed", "include_self")),
    "heterogeneous": Kind(drawn=("method", "heads", "architecture", "architectures")),
    "theory": Kind(auxiliary=True, edges=True, drawn=("topology",)),
    "communication": Kind(sending=True, drawn=("method", "heads", "fedavg_every", "refresh_every")),
    "pareto": Kind(drawn=("method", "heads", "include_self", "teacher", "nu_aux", "nu_main")),
    "teacher_precision": Kind(drawn=("teacher", "topology")),
    "label_distribution": Kind(trained=False, data=("dataset_meta", "splits")),
    "graphs": Kind(trained=False, edges=True, data=("graphs",)),
}
KINDS = tuple(KIND)
TRAINING_KINDS = tuple(k for k in KINDS if KIND[k].trained)
DATA_KINDS = tuple(k for k in KINDS if not KIND[k].trained)
AUXILIARY_KINDS = tuple(k for k in KINDS if KIND[k].auxiliary)
SWEPT_KINDS = tuple(k for k in KINDS if KIND[k].swept)
EDGE_KINDS = tuple(k for k in KINDS if KIND[k].edges)
SENDING_KINDS = tuple(k for k in KINDS if KIND[k].sending)
DRAWN = {k: KIND[k].drawn for k in TRAINING_KINDS}

# What an experiment spec (results/experiments/<experiment>.json, the workflow's rule experiment_spec)
# holds for `mhd figure` and `mhd table`, beyond its `name` and `figure`: exactly what figures.py reads.
DATA_SPEC_KEYS = {k: KIND[k].data for k in DATA_KINDS}
RUN_KEYS = ("id", "dir", "split", "graph")  # of each of a training figure's `runs`


def _text(value) -> bool:
    return isinstance(value, str) and value != ""


def _texts(value) -> bool:
    return isinstance(value, list) and len(value) > 0 and all(map(_text, value))


def _runs_problem(runs) -> str | None:
    if not isinstance(runs, list) or not runs:
        return f"'runs' = {_short(runs)} is not a non-empty list of runs"
    for i, run in enumerate(runs):
        lacking = [k for k in RUN_KEYS if not (isinstance(run, dict) and _text(run.get(k)))]
        if lacking:
            return f"runs[{i}] = {_short(run)} lacks {', '.join(map(repr, lacking))} (paths as text)"
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_spec(spec, source: str, trained: bool = False) -> None:
    """Raise MHDError naming `source` and what the spec lacks, or which key has the wrong type, before
    anything is read or drawn; `trained`: the command reads the spec's runs (`mhd table`)."""
    from ..errors import MHDError

    fix = "allowed: a spec as the workflow writes it (results/experiments/<experiment>.json, rule experiment_spec)"
    if not isinstance(spec, dict):
        raise MHDError(f"{source}: not an experiment spec (a JSON object), found {type(spec).__name__}; {fix}")
    kind = spec.get("figure")
    if not isinstance(kind, str) or kind not in KINDS:
        raise MHDError(f"{source}: 'figure' = {_short(kind)} is not a figure kind; allowed: {', '.join(KINDS)}")
    if trained and kind not in TRAINING_KINDS:
        raise MHDError(f"{source}: a spec of the data figure {kind!r}, which has no trained runs ('runs'); "
                       f"allowed: a spec of a training figure ({', '.join(TRAINING_KINDS)})")
    texts = {"name": _text, **{k: _texts if k in ("splits", "graphs") else _text for k in DATA_SPEC_KEYS.get(kind, ())}}
    if kind in SWEPT_KINDS:
        texts["x"] = _text
    problems = [f"no {key!r}" if key not in spec else f"{key!r} = {_short(spec[key])} is not "
                f"{'a non-empty list of paths' if ok is _texts else 'a non-empty text'}"
                for key, ok in texts.items() if not ok(spec.get(key))]
    if kind in TRAINING_KINDS and "runs" not in spec:
        problems.append("no 'runs' (the trained runs)")
    elif kind in TRAINING_KINDS and (problem := _runs_problem(spec["runs"])):
        problems.append(problem)
    if problems:
        raise MHDError(f"{source}: not a spec of a {kind!r} figure: {'; '.join(problems)}; {fix}")


def read_spec(path: str | Path, trained: bool = False) -> dict:
    """An experiment spec (results/experiments/<name>.json) with what its figure kind needs (and runs,
    when `trained`), or an MHDError naming `--spec` and the file."""
    from ..data import files
    from ..errors import MHDError

    try:  # a regular file: a FIFO given as --spec is refused, not waited on
        spec = json.loads(files.read_regular(path, "an experiment spec, written by the workflow "
                                             "(results/experiments/<experiment>.json, rule experiment_spec)"))
    except MHDError as exc:
        raise MHDError(f"--spec {exc}") from None
    except ValueError as exc:  # not UTF-8, not JSON
        raise MHDError(f"--spec {path}: not JSON ({exc})") from exc
    check_spec(spec, f"--spec {path}", trained)
    return spec
