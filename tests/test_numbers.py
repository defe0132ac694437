"""The docs' numbers come from a command: `mhd numbers` writes the tables between `<!-- numbers: NAME -->`
markers from a study's claims.csv and per-run readouts, and docs/results.md holds exactly
what the committed files give (docs/reference/claims.csv, docs/reference/readouts.csv); the prose
around the markers holds no number of the reference."""

import re

import pandas as pd
import pytest
from test_claims import defaults, table_of  # noqa: F401 (a fixture)

from mhd.errors import MHDError
from mhd.report import claims, numbers

SEEDS = (0, 1, 2)


@pytest.fixture
def study(defaults, tmp_path):  # noqa: F811
    """A hand-made study: isolated at 0.60 / 0.97, MHD at 0.70 / 0.965 and at nu_emb 1 (0.71), 3 seeds each;
    its claims.csv and readouts.csv written, as the reference's are."""
    h = defaults["heads"]
    runs = []
    for seed in SEEDS:
        runs.append(({"method": "isolated", "seed": seed}, [0.60], [0.97]))
        runs.append(({"method": "mhd", "seed": seed}, [0.70] * (h + 1), [0.965] * (h + 1)))
        runs.append(({"method": "mhd", "nu_emb": 1.0, "seed": seed}, [0.71] * (h + 1), [0.965] * (h + 1)))
    table = table_of(defaults, runs)
    claims.check(table, defaults).to_csv(tmp_path / "claims.csv", index=False)
    numbers.readouts(table, defaults).to_csv(tmp_path / "readouts.csv", index=False)
    return tmp_path


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def doc_with(tmp_path, *names):
    path = tmp_path / "doc.md"
    path.write_text("# A doc\n\nProse.\n\n" + "".join(f"<!-- numbers: {n} -->\nold\n<!-- end numbers -->\n\n" for n in names))
    return path


def test_readouts_name_each_setting_by_what_differs_from_the_default_run(study, defaults):  # noqa: F811
    runs = pd.read_csv(study / "readouts.csv")
    h = defaults["heads"]
    assert sorted(runs.setting.unique()) == sorted(["isolated", f"MHD (H={h})", f"MHD (H={h}), nu_emb 1"])
    assert list(runs.columns) == list(numbers.COLUMNS) and len(runs) == 9
    mhd = runs[runs.setting == f"MHD (H={h})"]
    assert list(mhd.seed) == list(SEEDS) and (mhd.shared_best == 0.70).all() and (mhd.private_main == 0.965).all()


def test_sections_are_the_claims_and_settings_tables_and_convergence(study):
    made = numbers.sections(*numbers.read(study / "claims.csv", study / "readouts.csv"))
    assert set(made) == set(numbers.SECTIONS)
    lift = next(line for line in made["claims"].splitlines() if line.startswith("| 1. "))
    assert cells(lift)[2:6] == ["+0.100", "[+0.100, +0.100]", "3", "reproduced"]
    assert made["claims"].startswith("| claim | measure | effect |") and "| note |" in made["claims"]
    rows = {cells(line)[0]: cells(line)[1:] for line in made["settings"].splitlines()[2:]}
    assert rows["isolated"] == ["3", "0.600", "0.600", "0.970", "3 of 3"]
    assert [r[:2] for r in rows.values()] == [["3", "0.700"], ["3", "0.710"], ["3", "0.600"]], "methods.METHODS's order"
    assert made["convergence"].startswith("9 of 9 runs converged")


def test_numbers_writes_the_sections_and_check_fails_on_a_stale_doc(study, tmp_path):
    doc = doc_with(tmp_path, "claims", "convergence")
    with pytest.raises(MHDError, match="differ"):
        numbers.write(study / "claims.csv", study / "readouts.csv", [doc], check=True)
    assert "old" in doc.read_text(), "--check writes nothing"
    lines = numbers.write(study / "claims.csv", study / "readouts.csv", [doc])
    assert lines == [f"{doc}: rewrote claims, convergence"]
    text = doc.read_text()
    assert text.startswith("# A doc\n\nProse.\n\n<!-- numbers: claims -->\n| claim |") and "old" not in text
    assert numbers.write(study / "claims.csv", study / "readouts.csv", [doc], check=True) == [f"{doc}: up to date"]


def test_numbers_refuses_an_unknown_section_a_doc_without_one_and_old_readouts(study, tmp_path):
    with pytest.raises(MHDError, match="line 5: unknown numbers section 'headline'; allowed: claims"):
        numbers.write(study / "claims.csv", study / "readouts.csv", [doc_with(tmp_path, "headline")])
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    with pytest.raises(MHDError, match="no `<!-- numbers: NAME -->`"):
        numbers.write(study / "claims.csv", study / "readouts.csv", [plain])
    pd.read_csv(study / "readouts.csv").drop(columns="setting").to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(MHDError, match=r"lacks the columns \['setting'\]"):
        numbers.read(study / "claims.csv", tmp_path / "old.csv")
    pd.read_csv(study / "claims.csv").drop(columns="ci_low").to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(MHDError, match=r"c.csv: not a claims.csv \(mhd claims\): it lacks the columns \['ci_low'\]"):
        numbers.read(tmp_path / "c.csv", study / "readouts.csv")
    with pytest.raises(MHDError, match="cannot be read"):
        numbers.write(study / "claims.csv", study / "readouts.csv", [tmp_path / "absent.md"])


@pytest.mark.parametrize("text, error", [
    ("<!-- numbers: claims -->\nA\n\nhand-written prose\n<!-- numbers: convergence -->\nB\n<!-- end numbers -->\n",
     "line 1: .*line 5: a section opens before the one above ends"),
    ("<!-- numbers: claims short -->\nA\n<!-- end numbers -->\n", "line 1: .* is not a well-formed marker"),
    ("<!-- numbers: claims -->\nA\n<!-- end number -->\n", "line 3: .* is not a well-formed marker"),
    ("<!-- numbers: claims -->\nA\n", "section 'claims' has no <!-- end numbers -->"),
    ("prose\n<!-- end numbers -->\n", "line 2: .* is not a well-formed marker"),
    ("<!-- numbers: claims --> A\n<!-- end numbers -->\n", "line 1: .* is not a well-formed marker"),
])
def test_a_malformed_marker_is_refused_and_nothing_is_written(study, tmp_path, text, error):
    good = doc_with(tmp_path, "settings")
    bad = tmp_path / "bad.md"
    bad.write_text(text)
    before = good.read_bytes(), bad.read_bytes()
    with pytest.raises(MHDError, match=error.replace("line 1: .*line 5", "line 5")):
        numbers.write(study / "claims.csv", study / "readouts.csv", [good, bad])
    assert (good.read_bytes(), bad.read_bytes()) == before, "every doc is parsed before any is written"


def test_a_doc_keeps_its_line_endings(study, tmp_path):
    doc = tmp_path / "crlf.md"
    doc.write_bytes(b"# A doc\r\n\r\n<!-- numbers: convergence -->\r\nold\r\n<!-- end numbers -->\r\nend\r\n")
    numbers.write(study / "claims.csv", study / "readouts.csv", [doc])
    data = doc.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") and b"runs converged" in data and data.endswith(b"end\r\n")
    assert numbers.write(study / "claims.csv", study / "readouts.csv", [doc], check=True) == [f"{doc}: up to date"]


def test_check_writes_nothing_so_it_refuses_a_summary(study, tmp_path):
    doc = doc_with(tmp_path, "settings")
    with pytest.raises(MHDError, match="--check writes nothing"):
        numbers.write(study / "claims.csv", study / "readouts.csv", [doc], check=True, summary_paths=["s.csv"])
    with pytest.raises(MHDError, match="--budget-summary is read with --summary"):
        numbers.write(study / "claims.csv", study / "readouts.csv", [doc], budget_paths=["b.csv"])


def test_the_command_checks_the_claims_and_writes_readouts_from_a_summary(study, tmp_path, defaults, repo,  # noqa: F811
                                                                          monkeypatch):
    """From a summary, `mhd numbers` checks the claims against the runs the summary names under
    results/runs/ as they are now (as `mhd claims --runs` does), then writes the readouts and the docs."""
    import json

    from mhd import cli
    from mhd import config as mconfig
    from mhd.report import summary

    h = defaults["heads"]
    table = table_of(defaults, [({"method": "mhd", "seed": s}, [0.70] * (h + 1), [0.965] * (h + 1)) for s in SEEDS])
    monkeypatch.chdir(tmp_path)
    dirs = []
    for run, rows in table.groupby("run"):
        folder = tmp_path / "results" / "runs" / run
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"metrics_sha256": "0" * 64}))
        mconfig.write_run_file(folder / "run.yaml", {"run": {**defaults, "seed": int(rows.seed.iloc[0])},
                                                     "inputs": {"prepared": "p", "split": "s", "graph": "g"}})
        dirs.append(folder)
    summary.write(table, dirs, tmp_path / "summary.csv")
    doc = doc_with(tmp_path, "settings")
    argv = ["numbers", "--claims", "c.csv", "--readouts", "r.csv", "--base", str(repo / "config" / "config.yaml"),
            "--configfile", "--docs", str(doc)]
    assert cli.main([*argv, "--summary", "summary.csv"]) == 0
    assert f"| MHD (H={h}) | 3 | 0.700 | 0.700 | 0.965 | 3 of 3 |" in doc.read_text()
    written = pd.read_csv(tmp_path / "c.csv").set_index("claim")
    assert written.loc["2. MHD keeps the main head's private accuracy", "verdict"] == "not measured"  # no isolated runs
    assert "\n| claim | measure |" in (tmp_path / "c.md").read_text()  # under the warning: r0-r2 have no code hash
    (dirs[0] / "run.json").write_text(json.dumps({"metrics_sha256": "1" * 64}))  # retrained since the summary
    assert cli.main([*argv, "--summary", "summary.csv"]) == 2


# the docs whose numbers are generated, and the section of each that holds no hand-written number
GENERATED = {"README.md": "## Expected results", "docs/results.md": "## The reference"}
NUMBER = re.compile(r"(?<![\w.])[+-]?\d*\.\d+")  # a decimal: an accuracy, an effect, a weight
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)  # a setting or a command, not a result


def test_the_docs_hold_the_numbers_the_committed_files_give(repo):
    docs = [repo / d for d in GENERATED if "<!-- numbers" in (repo / d).read_text()]
    assert docs == [repo / "docs/results.md"]
    assert numbers.write(repo / "docs/reference/claims.csv", repo / "docs/reference/readouts.csv", docs, check=True) \
        == [f"{d}: up to date" for d in docs]


def test_the_committed_claims_md_is_the_claims_csv(repo):
    """docs/reference/claims.md (mhd claims' text: the table and what it rests on) holds the table that
    docs/reference/claims.csv gives, so the two cannot drift apart."""
    checked = pd.read_csv(repo / "docs/reference/claims.csv")
    table = "\n".join(claims.table_lines(checked)) + "\n"
    assert table in (repo / "docs/reference/claims.md").read_text()


@pytest.mark.parametrize("doc, heading", GENERATED.items())
def test_the_prose_around_the_generated_tables_holds_no_number(repo, doc, heading):
    text = (repo / doc).read_text()
    found = numbers.parse(repo / doc)[1] if "<!-- numbers" in text else []  # the README points to the tables
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    end = len(text) if end < 0 else end
    prose, at = [], start
    for _, body_start, body_end in found:
        if start <= body_start < end:
            prose.append(text[at:body_start])
            at = body_end
    prose.append(text[at:end])
    assert NUMBER.findall(CODE.sub("", "".join(prose))) == [], f"{doc}, {heading}: numbers outside the generated sections"
