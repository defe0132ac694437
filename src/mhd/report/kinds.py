"""The figure kinds an experiment may name: those drawn from trained runs and those drawn from the
data artefacts alone. The one list: the config check and the workflow read it from here, and
figures.py draws exactly these (a test keeps them in step). Also what an experiment spec of each kind
holds (check_spec), so that `mhd figure` and `mhd table` refuse another's spec before drawing."""

TRAINING_KINDS = ("learning_curves", "per_head", "sweep", "ablation", "topologies", "transitive", "heterogeneous",
                  "theory", "communication", "pareto", "teacher_precision")
DATA_KINDS = ("label_distribution", "graphs")
KINDS = (*TRAINING_KINDS, *DATA_KINDS)
SWEPT_KINDS = ("sweep", "ablation")  # their x axis is the spec's `x`, a run key
# The run keys each training figure tells apart (axis, colour, facet; a swept kind adds its `x`): runs
# that differ in any other key, beyond the seeds it averages over, would be pooled into one mark, so
# the config check refuses them (checks.pooled). Kept in step with figures.py's hue, style and facets.
DRAWN = {
    "learning_curves": ("method", "heads"),
    "per_head": ("method", "heads", "include_self"),
    "sweep": ("method", "heads"),
    "ablation": ("method", "heads"),
    "topologies": ("topology",),
    "transitive": ("topology", "directed", "include_self"),
    "heterogeneous": ("method", "heads", "architecture", "architectures"),
    "theory": ("topology",),
    "communication": ("method", "heads", "fedavg_every", "refresh_every"),
    "pareto": ("method", "heads", "include_self", "teacher", "nu_aux", "nu_main"),
    "teacher_precision": ("teacher", "topology"),
}

# What an experiment spec (results/experiments/<experiment>.json, the workflow's rule experiment_spec)
# holds for `mhd figure` and `mhd table`, beyond its `name` and `figure`: exactly what figures.py reads.
DATA_SPEC_KEYS = {"label_distribution": ("dataset_meta", "splits"), "graphs": ("graphs",)}
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
