"""config/README.md's key tables, generated from the schema: every key is documented once, in
workflow/schemas/config.schema.yaml (its `default`, `description`, and `x-allowed` where the schema's
constraints alone would say too little), and `mhd check --docs` writes the tables between the
README's markers:

    <!-- keys: run training -->
    ...generated table...
    <!-- end keys -->

A marker names a section of the config (`dataset`, `run`) and, for `run`, a group (`x-group` of each
key: split, graph, training, execution). The prose around the markers is the README's own.
`tests/test_config_docs.py` keeps the file, the schema and config/config.yaml in step.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import ConfigError

MARKER = re.compile(r"(<!-- keys: (\w+)(?: (\w+))? -->\n)(.*?)(<!-- end keys -->)", re.S)
HEADER = "| key | default | allowed | why |\n|---|---|---|---|\n"


def _bound(spec: dict) -> str:
    lo = (">= ", spec["minimum"]) if "minimum" in spec else ("> ", spec["exclusiveMinimum"]) \
        if "exclusiveMinimum" in spec else None
    hi = ("<= ", spec["maximum"]) if "maximum" in spec else ("< ", spec["exclusiveMaximum"]) \
        if "exclusiveMaximum" in spec else None
    if lo and hi:
        left = "[" if lo[0] == ">= " else "("
        right = "]" if hi[0] == "<= " else ")"
        return f"{left}{lo[1]}, {hi[1]}{right}"
    if lo:
        return f"{lo[0]}{lo[1]}"
    if hi:
        return f"{hi[0]}{hi[1]}"
    return ""


def allowed(spec: dict) -> str:
    """What a key accepts, in words, from its schema (or its `x-allowed`, when given)."""
    if "x-allowed" in spec:
        return spec["x-allowed"]
    if "enum" in spec:
        return ", ".join(f"`{v}`" for v in spec["enum"])
    kind = spec.get("type")
    if kind == "boolean":
        return "bool"
    if kind in ("integer", "number"):
        bound = _bound(spec)
        if kind == "integer":
            return f"int {bound}".strip()
        return bound or "a number"
    if kind == "string":
        return "a string"
    raise ConfigError(f"the schema's key spec {spec} needs an `x-allowed`: its constraints have no words here")


def _default(value) -> str:
    return "null" if value is None else json.dumps(value) if isinstance(value, (bool, list, dict)) else str(value)


def table(schema: dict, section: str, group: str | None) -> str:
    """The markdown table of one section's keys (of one group, for `run`)."""
    props = schema["properties"][section]["properties"]
    lines = []
    for key, spec in props.items():
        if group is not None and spec.get("x-group") != group:
            continue
        for needed in ("default", "description"):
            if needed not in spec:
                raise ConfigError(f"schema key {section}.{key} has no `{needed}`: every key is documented in the schema")
        why = " ".join(spec["description"].split())
        lines.append(f"| `{section}.{key}` | `{_default(spec['default'])}` | {allowed(spec)} | {why} |")
    if not lines:
        raise ConfigError(f"config/README.md names keys of {section} {group or ''}, but the schema has none")
    return HEADER + "\n".join(lines) + "\n"


def render(readme: str, schema: dict) -> str:
    """The README with every marked table regenerated; refuse a README that leaves a key out."""
    shown: set[str] = set()

    def fill(m: re.Match) -> str:
        section, group = m.group(2), m.group(3)
        body = table(schema, section, group)
        shown.update(re.findall(r"^\| `([\w.]+)` \|", body, re.M))
        return m.group(1) + body + m.group(5)

    out = MARKER.sub(fill, readme)
    every = {f"{s}.{k}" for s in ("dataset", "run") for k in schema["properties"][s]["properties"]}
    if every - shown:
        raise ConfigError(f"config/README.md has no table for {', '.join(sorted(every - shown))}: add a "
                          "<!-- keys: SECTION GROUP --> marker for their group")
    return out


def check_defaults(schema: dict, config: dict, source: str) -> None:
    """The schema's `default` of every dataset and run key is the base config's value (one documented
    default, never two that disagree)."""
    for section in ("dataset", "run"):
        for key, spec in schema["properties"][section]["properties"].items():
            if key not in config.get(section, {}):
                raise ConfigError(f"{source} has no {section}.{key}; the base config sets every key "
                                  f"(schema default: {_default(spec.get('default'))})")
            value, default = config[section][key], spec.get("default")
            if "default" not in spec or default != value or isinstance(default, bool) != isinstance(value, bool):
                raise ConfigError(f"schema default of {section}.{key} is {_default(default)}, but "
                                  f"{source} sets {_default(value)}: make them equal")


def write(doc: str | Path, base_config: str | Path) -> str:
    """`mhd check --docs`: check the schema's defaults against the base config, then rewrite `doc`'s key
    tables from the schema where they differ. Returns what was done, in words."""
    from . import config as mconfig
    from .data import files
    from .errors import MHDError

    check_defaults(mconfig.schema(), mconfig.read_yaml(base_config), str(base_config))
    doc = Path(doc)
    allowed = "an existing markdown file with <!-- keys: SECTION GROUP --> markers, as config/README.md"
    try:
        old = files.read_regular(doc, allowed).decode()
    except UnicodeDecodeError as exc:
        raise MHDError(f"--docs {doc}: not UTF-8 text ({exc.reason}); allowed: {allowed}") from None
    except MHDError as exc:
        raise MHDError(f"--docs {exc}") from None
    text = render(old, mconfig.schema())
    if text == old:
        return f"{doc}: key tables already match {mconfig.SCHEMA_PATH.name}"
    files.write_text(doc, text)
    return f"{doc}: key tables rewritten from {mconfig.SCHEMA_PATH.name}"
