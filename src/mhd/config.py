"""The workflow's config: load, validate against workflow/schemas/config.schema.yaml, expand the
experiments into (effective) runs, name the split and graph each run uses, and give every stage its
parameters as a dict with the keyword names of the function that takes them."""

from __future__ import annotations

import functools
import hashlib
import inspect
import itertools
from collections.abc import Mapping
import json
from pathlib import Path

import yaml

from . import checks
from .yaml_loaders import CoreLoader, Loader, TooDeep
from .data import files, graphs
from .errors import ConfigError, DataError
from .learning import methods, precision
from . import study

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"
SPLIT_KEYS = ("clients", "scheme", "skew", "alpha", "public_fraction", "samples_per_client", "validation_per_class",
              "split_seed")
GRAPH_KEYS = ("clients", "topology", "islands", "degree", "directed", "graph_seed")


def schema() -> dict:
    """The schema, with its list of run keys (`run_key_names`, and `run`'s `required`) taken from the run
    properties: a run key is written once in the file."""
    out = yaml.safe_load(SCHEMA_PATH.read_text())
    names = list(out["$defs"]["run"]["properties"])
    out["$defs"]["run_key_names"]["enum"] = names
    out["properties"]["run"]["required"] = names
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:  # a regular file only: a FIFO would block
        config = yaml.load(files.read_regular(path, "a YAML or JSON config file").decode("utf-8"), Loader=Loader)
    except DataError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config {path}: not UTF-8 text ({exc.reason})") from None
    except TooDeep as exc:
        raise ConfigError(f"config {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"config {path} must be a mapping of keys, found {type(config).__name__}")
    checks.bounded(config, str(path))
    return config


def load(path: str | Path) -> dict:
    return validate(read_yaml(path), source=str(path))


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _allowed_or_close(keys, known) -> str:
    """'; did you mean 'skew'?' when every unknown key is close to a known one (a typo), else the
    allowed keys."""
    import difflib

    close = [difflib.get_close_matches(str(k), list(known), n=1, cutoff=0.75) for k in keys]
    if all(close):
        return f"; did you mean {', '.join(repr(m[0]) for m in close)}? (every key: config/README.md)"
    return f"; allowed: {', '.join(known)}"


def _describe(error, source: str) -> str:
    where = _where(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = error.schema.get("properties", {})
        extra = sorted(set(error.instance) - set(known))
        return (f"unknown key {', '.join(repr(e) for e in extra)} under {where} (in {source})"
                f"{_allowed_or_close(extra, sorted(known))}")
    if "propertyNames" in error.schema_path and error.validator == "pattern":
        return (f"name {error.instance!r} under {where} (in {source}): names become file names, wildcards and "
                f"command words; allowed: letters, digits, '_', '.' and '-', starting with a letter or digit")
    if "propertyNames" in error.schema_path:
        return (f"unknown key {error.instance!r} under {where} (in {source}): not a run key"
                f"{_allowed_or_close([error.instance], error.validator_value)}")
    if error.validator == "required":
        return f"{error.message} under {where} (in {source})"
    return f"{where} = {error.instance!r} (in {source}): {_rule(error)}"


def _rule(error) -> str:
    """The rule a value breaks, in words."""
    if error.validator == "type" and "integer" in error.validator_value and isinstance(error.instance, float):
        like = f" (write {int(error.instance)})" if error.instance.is_integer() else ""
        return f"must be an integer, written without a decimal point{like}"
    return error.message


@functools.lru_cache(maxsize=1)
def _validator_class():
    """Draft 2020-12, except that only an int is an integer: JSON Schema counts 2.0 as one, but `heads: 2.0`
    would name another run than `heads: 2` and fail deep in the training."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(base, type_checker=checker)


def _validator(schema_: dict):
    return _validator_class()(schema_)


def validate(config, source: str = "config") -> dict:
    """Raise ConfigError listing every problem; return the config unchanged when it is valid."""
    return plan(config, source)[0]


def plan(config, source: str = "config") -> tuple[dict, dict[str, list[dict]]]:
    """Validate the config and expand its experiments (each run's effective settings computed once):
    (the config unchanged, experiment name -> its runs)."""
    if not isinstance(config, dict):
        raise ConfigError(f"config {source} must be a mapping of keys, found {type(config).__name__}")
    checks.bounded(config, source)
    lacking = [k for k in schema()["required"] if k not in config]
    if lacking:
        last = source.split(" + ")[-1]
        raise ConfigError(f"config {source} lacks {', '.join(lacking)}: a whole config has {', '.join(schema()['required'])}. "
                          f"An overlay is laid over the base config, which comes first: `mhd check config/config.yaml "
                          f"{last}`; Snakemake lays `--configfile {last}` over config/config.yaml itself")
    validator = _validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e, source) for e in errors] + checks.non_finite(config, source)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    runs = expand(config, source)  # rows and grids must also give valid runs
    problems = checks.figures_fit(config, runs, source) + checks.pooled(config, runs, source) + \
        checks.public_set(config, runs, source) + checks.validation_set(config, runs, source)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config, runs


@functools.lru_cache(maxsize=1)
def _number_keys() -> tuple[str, ...]:
    """The run keys of schema type `number` (nu_aux, lr, skew, ...)."""
    return tuple(k for k, v in schema()["$defs"]["run"]["properties"].items() if v.get("type") == "number")


def _normalise(run: dict, where: str) -> dict:
    """Same value, same type, same run id: every `number` key a float (nu_aux 1 and 1.0 are one run, skew
    100 and 100.0 one split); the `integer` keys are ints already (the schema refuses 2.0). And the same
    computation, the same id: `precision: auto` resolved to the fp32 or bf16 it means for the run's device
    on this machine (learning/precision.py)."""
    out = dict(run)
    out["precision"] = precision.resolve(out["precision"], out["device"])
    for key in _number_keys():
        try:
            out[key] = float(out[key])
        except OverflowError:
            raise ConfigError(f"{key} = {out[key]} ({where}): too large for a float; allowed: finite numbers, "
                              f"at most 1.8e308") from None
    return out


def expand(config: dict, source: str = "config") -> dict[str, list[dict]]:
    """experiment name -> its runs: `run` overridden by each row, crossed with every grid combination."""
    run_schema = schema()["$defs"]["run"]
    out = {}
    for name, exp in config["experiments"].items():
        grid = exp.get("grid", {})
        combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
        runs = []
        for row in exp.get("rows", [{}]):
            for combo in combos:
                run = {**config["run"], **row, **combo}
                for error in _validator(run_schema).iter_errors(run):
                    raise ConfigError(f"experiment {name!r} (in {source}): {_where(error.absolute_path)} = "
                                      f"{error.instance!r}: {_rule(error)}")
                try:
                    graphs.check(run["topology"], run["clients"], islands=run["islands"],
                                 degree=run["degree"], directed=run["directed"])
                    run = methods.effective(run, explicit={**row, **combo})
                except ConfigError as exc:
                    raise ConfigError(f"experiment {name!r} (in {source}): {exc}") from None
                runs.append(_normalise(run, f"experiment {name!r}, in {source}"))
        out[name] = runs
    return out


def trained(config: dict, runs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Of the expanded `runs`, the experiments that are trained (`train: false` marks data-only ones)."""
    return {name: runs[name] for name, exp in config["experiments"].items() if exp.get("train", True)}


def run_id(dataset: str, run: dict) -> str:
    """Readable prefix, then a hash of every setting that the run uses: equal runs share one folder and are
    trained once. The split and the graph enter as the parameters that make them (`split_params`,
    `graph_params`), so a key that does not apply (alpha under the skew scheme, graph_seed of a complete
    graph) names no other run: a grid over it is one run, not copies taken for seeds."""
    used = {k: v for k, v in run.items() if k not in SPLIT_KEYS and k not in GRAPH_KEYS}
    what = {"dataset": dataset, **used, "split": split_params(run), "graph": graph_params(run)}
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]
    return f"{run['method']}-h{run['heads']}-{graph_id(run)}-{digest}"


def validate_run(run: dict, source: str, explicit: dict | None = None) -> dict:
    """A single resolved run (the `run` of a RUN.yaml): every key present and valid. `explicit`: the
    settings given on purpose, when the run is `run` defaults plus overrides (as in an experiment's row)."""
    s = schema()
    run_schema = {**s["$defs"]["run"], "required": s["properties"]["run"]["required"]}
    errors = list(_validator(run_schema).iter_errors(run))
    problems = [_describe(e, source) for e in errors] + checks.non_finite(run, source)
    if problems:
        raise ConfigError("invalid run config:\n  " + "\n  ".join(problems))
    return methods.effective(_normalise(run, f"in {source}"), explicit)


def _fmt(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def prepare_params(dataset: dict) -> dict:
    """The keywords of data.datasets.prepare, from the config's `dataset` section."""
    return {"root": dataset["root"] or None, **{k: dataset[k] for k in ("download", "verify", "image_size")}}


def json_object(text: str, flag: str = "--params") -> dict:
    """A JSON object given on the command line (a stage's --params, mhd claims --defaults), or the user's
    error naming `flag`."""
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{flag} {text!r}: not JSON ({exc})") from exc
    if not isinstance(params, dict):
        raise ConfigError(f"{flag} {text!r}: expected a JSON object of keyword arguments")
    return params


def call_stage(command: str, fn, params: dict, *args, given: tuple = (), **kwargs):
    """(fn(*args, **kwargs, **params), params), once `params` (a stage's parameters, as `prepare_params`,
    `split_params` and `graph_params` give them) are checked against the keywords of `fn` (those in
    `given` the command passes itself): a wrong, missing or mistyped key is the user's error, named
    with `command`, not a traceback."""
    signature = inspect.signature(fn).parameters
    allowed = [k for k in signature if k not in given]
    unknown = sorted(set(params) - set(allowed))
    missing = [k for k in allowed if signature[k].default is inspect.Parameter.empty and k not in params]
    if unknown or missing:
        raise ConfigError(f"{command} --params: " + "; ".join(
            ([f"unknown key {', '.join(map(repr, unknown))}"] if unknown else [])
            + ([f"missing key {', '.join(map(repr, missing))}"] if missing else []))
            + f"; allowed: {', '.join(allowed)}")
    try:
        return fn(*args, **kwargs, **params), params
    except TypeError as exc:
        raise ConfigError(f"{command} --params {json.dumps(params)}: a value has the wrong type ({exc})") from exc


def split_params(run: dict) -> dict:
    """The keywords of data.splits.make: every run key that changes the split."""
    params = {k: run[k] for k in SPLIT_KEYS}
    params.pop("alpha" if run["scheme"] == "skew" else "skew")
    return params


def split_id(dataset: str, run: dict) -> str:
    """Readable and unique per split: the dataset and every parameter that changes the split."""
    # the Dirichlet ids name their scheme (labeldir: NIID-Bench's, innerdir: per client), so that a split
    # built under an earlier meaning of `dirichlet` (ids dir<alpha>) is never taken for a new one
    shape = f"skew{_fmt(run['skew'])}" if run["scheme"] == "skew" else \
        f"{'labeldir' if run['scheme'] == 'dirichlet' else 'innerdir'}{_fmt(run['alpha'])}"
    return (f"{dataset}-n{run['clients']}-{shape}-pub{_fmt(run['public_fraction'])}"
            f"-m{run['samples_per_client']}-val{run['validation_per_class']}-seed{run['split_seed']}")


def graph_params(run: dict) -> dict:
    """The keywords of data.graphs.make: every run key that changes the graph."""
    params = {k: run[k] for k in GRAPH_KEYS}
    if run["topology"] != "islands":
        params.pop("islands")
    if run["topology"] != "regular":
        params.pop("degree")
        params.pop("graph_seed")
    if run["topology"] in ("complete", "islands"):
        params["directed"] = False  # symmetric either way: one graph, one id
    return params


def graph_id(run: dict) -> str:
    topo = run["topology"]
    name = {"islands": f"islands{run['islands']}", "regular": f"regular{run['degree']}"}.get(topo, topo)
    gid = f"{name}-n{run['clients']}"
    if topo == "regular":
        gid += f"-seed{run['graph_seed']}"
    if run["directed"] and topo not in ("complete", "islands"):  # those two are symmetric either way
        gid += "-directed"
    return gid


def merge(base: dict, overlay: dict) -> dict:
    """`overlay` over `base` key by key, except `experiments`, which an overlay replaces whole: a
    config given with --configfile says exactly which experiments to run."""
    def deep(a: dict, b: dict) -> dict:
        out = dict(a)
        for key, value in b.items():
            out[key] = deep(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    merged = deep({k: v for k, v in base.items() if k != "experiments" or "experiments" not in overlay}, overlay)
    return merged


@functools.lru_cache(maxsize=1)
def _text_keys() -> frozenset[str]:
    """The keys the schema types as strings (an experiment's description, its figure)."""
    found, stack = set(), [schema()]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                found |= {k for k, v in props.items() if isinstance(v, dict) and v.get("type") == "string"}
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(found)


def typed(overrides, key: str | None = None) -> dict:
    """Snakemake's --config values with every string re-read as YAML 1.2 (CoreLoader): Snakemake reads
    `run={steps: 10}` with YAML's base loader, which leaves 10 a string and drops the quotes of
    `description: "no"`. So only true/false become booleans (`no`, `on` stay words), and a value under a
    key the schema types as a string (`description`, `figure`) is kept as written."""
    if isinstance(overrides, Mapping):
        return {k: typed(v, k) for k, v in overrides.items()}
    if isinstance(overrides, list):
        return [typed(v) for v in overrides]
    if isinstance(overrides, str) and key not in _text_keys():
        try:
            return yaml.load(overrides, Loader=CoreLoader) if overrides.strip() else overrides
        except yaml.YAMLError:
            return overrides
    return overrides


def templated(config: dict) -> bool:
    """Whether a config file asks Snakemake for YTE templating (`__use_yte__: true`): Snakemake then
    evaluates the Python in it when it loads the file, before this project sees it."""
    return bool(config.get("__use_yte__"))


def merge_layered(base_path: str | Path, overlay_paths: list[str | Path] = ()) -> dict:
    """config/config.yaml with each --configfile merged over it, not yet validated. The last overlay
    names the study: the `study` it sets, else its file's stem (study.of_overlay), so that an overlay
    never writes over another study's outputs, whatever it was laid over."""
    config = read_yaml(base_path)
    for path in overlay_paths:
        overlay = read_yaml(path)
        if templated(overlay):
            raise ConfigError(f"config {path} uses YTE templating (__use_yte__: true): Snakemake runs the Python in "
                              f"such a file when it loads it, so treat it as code; this project reads plain YAML "
                              f"configs only: remove __use_yte__ and write the values out")
        config = merge(config, overlay)
    if overlay_paths and not (isinstance(overlay, dict) and "study" in overlay):
        config["study"] = study.of_overlay(overlay_paths[-1])
    return config


def load_layered(base_path: str | Path, overlay_paths: list[str | Path] = ()) -> dict:
    """config/config.yaml with each --configfile merged over it, then validated."""
    sources = " + ".join(str(p) for p in [base_path, *overlay_paths])
    return validate(merge_layered(base_path, overlay_paths), source=sources)


def describe(base_path: str | Path, overlay_paths: list[str | Path] = ()) -> list[str]:
    """`mhd check`: the layered config validated and planned, a line per experiment (its runs, and the
    splits and graphs they use), then a line saying it is valid."""
    sources = " + ".join(str(p) for p in [base_path, *overlay_paths])
    cfg, planned = plan(merge_layered(base_path, overlay_paths), source=sources)
    lines = []
    for name, runs in planned.items():
        split_ids = sorted({split_id(cfg["dataset"]["name"], r) for r in runs})
        graph_ids = sorted({graph_id(r) for r in runs})
        lines.append(f"{name}: {len(runs)} runs, splits: {', '.join(split_ids)}; graphs: {', '.join(graph_ids)}")
    name = cfg.get("study", study.DEFAULT)
    lines.append(f"study {name}: summary and claims in {study.results(name)}/, figures in {study.figures(name)}/")
    return lines + [f"{sources}: valid"]


def load_any(path: str | Path, base_path: str | Path = "config/config.yaml") -> dict:
    """A whole config as is, or an overlay (a file without all of dataset, run and experiments,
    such as config/paper.yaml) over `base_path`: what `mhd bench --config` accepts."""
    config = read_yaml(path)
    if {"dataset", "run", "experiments"} <= set(config):
        return validate(config, source=str(path))
    if not Path(base_path).exists():
        raise ConfigError(f"config {path} is an overlay (it lacks {', '.join(sorted({'dataset', 'run', 'experiments'} - set(config)))}) "
                          f"and its base {base_path} does not exist here; run from the repository root")
    return load_layered(base_path, [path])


def load_run_file(path: str | Path) -> tuple[dict, dict]:
    """A RUN.yaml as `write_run_file` writes it, read (learning/run_folder.read_run_file, the one reader of
    its shape) and its run validated (`validate_run`): (the effective run, its inputs: prepared, split,
    graph). What `mhd train --config` trains and `mhd teacher-scores` scores; a summary reads run folders
    with run_folder alone, their runs as they were trained."""
    from .learning import run_folder

    run, inputs = run_folder.read_run_file(path)
    return validate_run(run, str(path)), inputs


def write_run_file(path: str | Path, run_file: dict) -> None:
    """The RUN.yaml of `mhd train --config`: {run: every setting, inputs: prepared, split, graph}."""
    from .data import files

    header = "# Written by the workflow (rule run_config); `mhd train --config` reads it.\n"
    files.write_text(path, header + yaml.safe_dump(run_file, sort_keys=True))
