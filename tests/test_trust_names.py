"""Attacks through the text and numbers of a config (docs/reliability.md), each refused where the config
is read or made harmless:

- an experiment's `description` holding reStructuredText (`.. include:: /etc/passwd`, `.. raw:: html` with a
  `<script>`, roles, links): it reaches the report's captions, which Snakemake renders as RST; it must
  show as the plain text it is;
- a name with a trailing newline (`ok\\n`): Python's `$` matches before a final newline, and JSON-schema
  `pattern` is a search;
- one run, several ids: `nu_aux: 1` against `nu_aux: 1.0`, `heads: 2.0` (an integer key given a float);
- `tau: 1e-320`: a temperature so small that logits / tau overflow and the loss is NaN;
- `--config 'experiments={x: {description: "no"}}'`: Snakemake drops the quotes, and a YAML 1.1 re-read
  turned "no" into False;
- `1e-3` in a JSON or YAML config file: YAML 1.1 (PyYAML) reads it as a string, JSON and Snakemake as 0.001.
"""

import copy
import re
from types import SimpleNamespace

import pytest
import torch
import yaml

from mhd import config as mconfig
from mhd.cli import main
from mhd.errors import ConfigError
from mhd.learning.losses import distill_kl

SECRET = "s3cr3t-line-of-a-local-file"


@pytest.fixture(scope="module")
def base(repo):
    return mconfig.read_yaml(repo / "config" / "config.yaml")


def small(base, experiment: dict) -> dict:
    """The base config with one experiment, `x`: fast to plan."""
    cfg = copy.deepcopy(base)
    cfg["experiments"] = {"x": experiment}
    return cfg


def run_ids(cfg: dict) -> set[str]:
    cfg, runs = mconfig.plan(cfg, "test.yaml")
    return {mconfig.run_id(cfg["dataset"]["name"], r) for r in runs["x"]}


# ---------------------------------------------------------------- 1. a description is text, not RST
def attacks(secret_path) -> list[str]:
    return [
        f"ok\n\n.. include:: {secret_path}\n\n.. raw:: html\n\n   <script>alert(1)</script>\n",
        f"ok\u2028.. include:: {secret_path}",  # a line break that str.splitlines and docutils know
        "`click <javascript:alert(1)>`_, :raw-html:`<b>x</b>`, |sub|, [1]_, _`t`, *e* **s** ``l`` \\ end\\",
        "**",
        "a@b.org http://example.org/x_ y__",
    ]


@pytest.mark.parametrize("i", range(5))
def test_a_description_is_escaped_to_inert_rst(tmp_path, i):
    from docutils.core import publish_doctree
    from docutils import nodes

    from mhd.report.captions import rst_text

    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    text = attacks(secret)[i]
    tree = publish_doctree(f"**{rst_text(text)}**", settings_overrides={"report_level": 5})
    # one paragraph holding one strong node whose text is the description as written (whitespace collapsed)
    assert [type(n) for n in tree.children] == [nodes.paragraph]
    assert [type(n) for n in tree.children[0].children] == [nodes.strong]
    assert tree.astext() == " ".join(text.split())
    assert not list(tree.findall(nodes.system_message)) and not list(tree.findall(nodes.reference))


def test_a_description_in_every_caption_renders_as_text(repo, tmp_path):
    """The captions as Snakemake renders them (Jinja2, then docutils with its default settings, which
    allow `include` and `raw`), with the description as the figure rules pass it."""
    import jinja2
    from docutils.core import publish_parts

    from mhd.report.captions import rst_text

    smk = (repo / "workflow" / "rules" / "figures.smk").read_text()
    assert re.search(r"description=lambda wc: rst_text\(", smk), "figures.smk must pass the description through rst_text"
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    for caption in sorted((repo / "workflow" / "report").glob("*.rst")):
        for text in attacks(secret):
            snakemake = SimpleNamespace(params=SimpleNamespace(description=rst_text(text)),
                                        wildcards=SimpleNamespace(experiment="x"))
            html = publish_parts(env.from_string(caption.read_text()).render(snakemake=snakemake),
                                 writer="html", settings_overrides={"report_level": 5})["body"]
            assert SECRET not in html and "<script" not in html and "<a " not in html, (caption.name, text)
            assert "system-message" not in html, (caption.name, text)


# ---------------------------------------------------------------- 2. names match whole, to the last character
@pytest.mark.parametrize("name", ["ok\n", "v1.0\n"])
def test_a_name_with_a_trailing_newline_is_refused(base, name):
    with pytest.raises(ConfigError, match="names become file names"):
        mconfig.validate({**base, "experiments": {name: {"figure": "graphs", "train": False}}}, "test.yaml")


def test_every_schema_pattern_matches_the_whole_value():
    """jsonschema applies `pattern` with re.search: a pattern must anchor at the very end of the value."""
    found, stack = [], [mconfig.schema()]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found += [v for k, v in node.items() if k == "pattern" and isinstance(v, str)]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    assert found
    for pattern in found:
        assert re.search(pattern, "ok") and not re.search(pattern, "ok\n"), pattern


# ---------------------------------------------------------------- 3. one run, one id
@pytest.mark.parametrize("key,value", [("nu_aux", 1), ("nu_emb", 0), ("nu_main", 0), ("tau", 2), ("lr", 1),
                                       ("weight_decay", 0), ("momentum", 0)])
def test_a_number_written_as_an_int_or_a_float_is_one_run(base, key, value):
    assert len(run_ids(small(base, {"rows": [{key: value}, {key: float(value)}]}))) == 1
    as_int = mconfig.validate_run({**base["run"], key: value}, "run.yaml")
    as_float = mconfig.validate_run({**base["run"], key: float(value)}, "run.yaml")
    assert type(as_int[key]) is float and mconfig.run_id("d", as_int) == mconfig.run_id("d", as_float)


@pytest.mark.parametrize("where", ["run", "row", "grid", "run_file"])
def test_an_integer_key_given_a_float_is_refused(base, where):
    with pytest.raises(ConfigError, match=r"heads = 2\.0\b.*must be an integer") as refused:
        if where == "run_file":
            mconfig.validate_run({**base["run"], "heads": 2.0}, "test.yaml")
        cfg = small(base, {"rows": [{"heads": 2.0}]} if where == "row" else
                    {"grid": {"heads": [1, 2.0]}} if where == "grid" else {})
        if where == "run":
            cfg["run"]["heads"] = 2.0
            cfg["experiments"]["x"] = {"rows": [{}]}
        mconfig.plan(cfg, "test.yaml")
    assert "(in test.yaml)" in str(refused.value)


@pytest.mark.parametrize("grid", [{"topology": ["complete"], "graph_seed": [0, 1, 2]},
                                  {"topology": ["complete"], "degree": [2, 3]},
                                  {"scheme": ["skew"], "alpha": [0.1, 0.5]}])
def test_a_key_that_does_not_apply_names_no_other_run(base, grid):
    """A grid over a key the run does not use is one run, not copies a figure would average as seeds."""
    assert len(run_ids(small(base, {"grid": grid}))) == 1


# ---------------------------------------------------------------- 4. a temperature that keeps the loss finite
@pytest.mark.parametrize("tau", [1e-320, 1e-30, 1e-3])
def test_a_temperature_too_small_for_a_finite_loss_is_refused(base, tau):
    lowest = mconfig.schema()["$defs"]["run"]["properties"]["tau"].get("minimum", 0.01)
    with pytest.raises(ConfigError, match=rf"tau = {tau!r} \(in test\.yaml\).*minimum of {lowest}"):
        mconfig.validate_run({**base["run"], "tau": tau}, "test.yaml")
    with pytest.raises(ConfigError, match=rf"tau = {tau!r}"):
        mconfig.plan(small(base, {"rows": [{"tau": tau}]}), "test.yaml")
    # the lowest allowed temperature keeps the loss finite on large logits; 1e-320 does not
    logits = torch.randn(8, 2, 10) * 100
    target = torch.softmax(torch.randn(8, 2, 10), -1)
    assert torch.isfinite(distill_kl(logits, target, lowest)).all()
    assert not torch.isfinite(distill_kl(logits, target, 1e-320)).all()


# ---------------------------------------------------------------- 5. --config strings stay strings
def snakemake_config(value: str):
    """What Snakemake's --config gives for a mapping (snakemake.cli.parse_config: YAML's base loader,
    every scalar a string and its quotes gone)."""
    return yaml.load(value, Loader=yaml.BaseLoader)


@pytest.mark.parametrize("text", ["no", "yes", "on", "off", "true", "null", "10", "{a: b}"])
def test_a_quoted_config_string_stays_a_string(base, text):
    given = {"experiments": snakemake_config(
        f'{{x: {{description: "{text}", figure: "graphs", train: false}}}}')}
    typed = mconfig.typed(given)
    assert typed["experiments"]["x"]["description"] == text
    assert mconfig.plan(mconfig.merge(base, typed), "--config")[0]["experiments"]["x"]["train"] is False


def test_config_values_are_read_as_yaml_1_2():
    typed = mconfig.typed({"run": snakemake_config("{steps: 10, directed: true, lr: 1e-3, nu_aux: 1E1, "
                                                   "method: no, seed: 010, augment: off}")})
    assert typed["run"] == {"steps": 10, "directed": True, "lr": 0.001, "nu_aux": 10.0, "method": "no",
                            "seed": 10, "augment": "off"}
    assert type(typed["run"]["nu_aux"]) is float


# ---------------------------------------------------------------- 6. 1e-3 is a number in every config file
@pytest.mark.parametrize("text,value", [("1e-3", 0.001), ("1E5", 1e5), ("-2e-4", -2e-4), ("+1e3", 1000.0),
                                        ("1.0e3", 1000.0), (".5e3", 500.0)])
def test_exponent_floats_are_floats_in_json_and_yaml_configs(tmp_path, text, value):
    (tmp_path / "my.json").write_text(f'{{"run": {{"lr": {text}, "steps": 10}}}}')
    (tmp_path / "my.yaml").write_text(f"run:\n  lr: {text}\n  steps: 10\n  name: 1e\n")
    for name in ("my.json", "my.yaml"):
        run = mconfig.read_yaml(tmp_path / name)["run"]
        assert type(run["lr"]) is float and run["lr"] == value and run["steps"] == 10
    assert mconfig.read_yaml(tmp_path / "my.yaml")["run"]["name"] == "1e"


def test_a_json_overlay_with_an_exponent_is_planned(repo, tmp_path):
    (tmp_path / "my.json").write_text('{"run": {"lr": 1e-3, "weight_decay": 5E-4}}')
    cfg = mconfig.merge_layered(repo / "config" / "config.yaml", [tmp_path / "my.json"])
    cfg["experiments"] = {"x": {"rows": [{}]}}
    (run,) = mconfig.plan(cfg, "my.json")[1]["x"]
    assert run["lr"] == 0.001 and run["weight_decay"] == 0.0005


def test_a_run_file_reads_exponent_floats(base, tmp_path, capsys):
    """`mhd train --config RUN.yaml` with lr: 1e-3 (and heads: -1, refused, so that nothing trains)."""
    run_file = tmp_path / "run.yaml"
    run_yaml = yaml.safe_dump({"run": {**base["run"], "lr": "LR", "heads": -1},
                               "inputs": {"prepared": "p", "split": "s", "graph": "g"}})
    run_file.write_text(run_yaml.replace("lr: LR", "lr: 1e-3"))
    assert main(["train", "--config", str(run_file), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "heads = -1" in err and "lr" not in err, err
