"""config/README.md's key tables are generated from the schema; the schema's defaults are config.yaml's."""
import copy
import subprocess
import sys

import pytest

from mhd import config as mconfig, config_docs
from mhd.errors import ConfigError


@pytest.fixture
def base(repo):
    return mconfig.read_yaml(repo / "config" / "config.yaml")


def test_config_readme_is_generated_from_the_schema(repo):
    doc = (repo / "config" / "README.md").read_text()
    assert config_docs.render(doc, mconfig.schema()) == doc, \
        "config/README.md's key tables differ from the schema: run `mhd check --docs config/README.md`"


def test_every_key_is_in_one_table_with_the_schema_default(repo, base):
    doc = (repo / "config" / "README.md").read_text()
    for section in ("dataset", "run"):
        for key, value in base[section].items():
            rows = [line for line in doc.splitlines() if line.startswith(f"| `{section}.{key}` |")]
            assert len(rows) == 1, f"{section}.{key} is in {len(rows)} tables of config/README.md"
            shown = rows[0].split(" | ")[1].strip("`")
            assert shown == config_docs._default(value)
            assert mconfig.schema()["properties"][section]["properties"][key]["description"].strip()


def test_schema_defaults_are_the_base_config(base):
    config_docs.check_defaults(mconfig.schema(), base, "config/config.yaml")
    changed = copy.deepcopy(base)
    changed["run"]["steps"] = 801
    with pytest.raises(ConfigError, match=r"schema default of run.steps is 800, but c.yaml sets 801"):
        config_docs.check_defaults(mconfig.schema(), changed, "c.yaml")
    flipped = copy.deepcopy(base)
    flipped["run"]["heads"] = True  # True == 1 in Python: a bool is never an int default
    flipped["run"]["include_self"] = 1
    with pytest.raises(ConfigError, match=r"run.heads"):
        config_docs.check_defaults(mconfig.schema(), flipped, "c.yaml")


def test_a_key_without_a_table_or_a_description_is_refused():
    schema = mconfig.schema()
    doc = "<!-- keys: dataset -->\n<!-- end keys -->\n"
    with pytest.raises(ConfigError, match=r"no table for run\.alpha, .*run\.clients"):
        config_docs.render(doc, schema)
    broken = copy.deepcopy(schema)
    del broken["properties"]["dataset"]["properties"]["verify"]["description"]
    with pytest.raises(ConfigError, match=r"dataset.verify has no `description`"):
        config_docs.render(doc, broken)


def test_allowed_is_written_from_the_constraints():
    assert config_docs.allowed({"type": "integer", "minimum": 1}) == "int >= 1"
    assert config_docs.allowed({"type": "number", "minimum": 0, "exclusiveMaximum": 1}) == "[0, 1)"
    assert config_docs.allowed({"enum": ["a", "b"]}) == "`a`, `b`"
    assert config_docs.allowed({"type": "integer", "x-allowed": "a divisor of `clients`"}) == "a divisor of `clients`"
    with pytest.raises(ConfigError, match="needs an `x-allowed`"):
        config_docs.allowed({"anyOf": [{"type": "null"}]})


def test_mhd_check_docs_rewrites_a_stale_table(repo, tmp_path):
    doc = (repo / "config" / "README.md").read_text()
    stale = tmp_path / "README.md"
    stale.write_text(doc.replace("| `run.seed` | `0` |", "| `run.seed` | `7` |"))
    out = subprocess.run([sys.executable, "-m", "mhd", "check", str(repo / "config" / "config.yaml"), "--docs", str(stale)],
                         capture_output=True, text=True, check=True).stdout
    assert "key tables rewritten" in out and stale.read_text() == doc
