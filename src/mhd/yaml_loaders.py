"""How the project reads YAML: YAML 1.2's core schema (`CoreLoader`, also named `Loader`) for every
config file (config/*.yaml, a --configfile overlay in YAML or JSON, a RUN.yaml) and for the --config
values Snakemake leaves as strings, so that the same text means the same value wherever it is written
(`1e-3` a float as in JSON, `no` a word, `010` ten). A leaf module (only PyYAML), so that every stage
can read YAML the same way. It refuses a document nested more than MAX_DEPTH levels deep (TooDeep)."""

from __future__ import annotations

import re

import yaml

# mappings and lists inside each other: a config of this project needs 6 levels; PyYAML composes a
# document recursively, so thousands (`a: {a: {a: ...}}`, `[[[...]]]`) would end in a RecursionError
MAX_DEPTH = 64


class TooDeep(yaml.YAMLError):
    """A document nested deeper than MAX_DEPTH; its message is one line, saying where and the limit."""


class _Shallow(yaml.SafeLoader):
    """PyYAML's safe loader, refusing mappings and lists nested deeper than MAX_DEPTH before its recursive
    composer reaches Python's recursion limit."""
    _depth = 0

    def compose_node(self, parent, index):
        if not self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise TooDeep(f"mappings and lists nested more than {MAX_DEPTH} levels deep (at line {mark.line + 1}, "
                              f"column {mark.column + 1}); allowed: at most {MAX_DEPTH} levels (a config of this "
                              f"project needs 6)")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class CoreLoader(_Shallow):
    """YAML 1.2's core schema: only true/false (True, TRUE, ...) are booleans (yes, no, on, off stay
    words), null/~ is null, decimal integers (010 is ten) and floats (1e-3, .inf, .nan) are numbers, the
    rest strings (no timestamps, no `<<` merges)."""

    yaml_implicit_resolvers: dict = {}


for _tag, _pattern, _first in [
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("int", r"[-+]?[0-9]+", "-+0123456789"),
    ("float", r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
     "-+.0123456789"),
]:
    CoreLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(rf"^(?:{_pattern})\Z"), list(_first))
CoreLoader.add_constructor("tag:yaml.org,2002:int", lambda loader, node: int(loader.construct_scalar(node)))

# every config file is read as the --config values are: one meaning for one text
Loader = CoreLoader
