"""Studies: each config writes its summary, claims, specs, figures and logs under its own name, so that
no two configs run in one checkout write the same path; runs stay shared (src/mhd/study.py)."""

import subprocess
import sys

import pytest
import yaml

from mhd import config as mconfig
from mhd import study
from mhd.errors import ConfigError


def test_a_config_names_its_study(repo, tmp_path):
    base = repo / "config" / "config.yaml"
    assert mconfig.merge_layered(base)["study"] == "default"
    assert mconfig.merge_layered(base, [repo / "config" / "smoke.yaml"])["study"] == "smoke"
    assert mconfig.merge_layered(base, [repo / "config" / "reference.yaml"])["study"] == "reference"
    mine = tmp_path / "My Ablation.yaml"
    mine.write_text(yaml.safe_dump({"run": {"tau": 2.0}}))
    assert mconfig.merge_layered(base, [mine])["study"] == "my-ablation"  # an overlay that names none: its stem
    # the last overlay names the study, whatever it was laid over
    assert mconfig.merge_layered(base, [repo / "config" / "smoke.yaml", mine])["study"] == "my-ablation"
    assert mconfig.merge_layered(base, [mine, repo / "config" / "smoke.yaml"])["study"] == "smoke"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"study": "../elsewhere"}))
    with pytest.raises(ConfigError, match=r"study.*\.\./elsewhere"):
        mconfig.validate(mconfig.merge_layered(base, [bad]), "bad.yaml")


def test_the_default_study_writes_where_the_readme_says():
    assert (study.results("default"), study.figures("default"), study.logs("default")) == ("results", "figures", "logs")
    assert study.results("smoke") == "results/studies/smoke" and study.figures("smoke") == "figures/smoke"


def _outputs(repo, tmp_path, *configfiles) -> set[str]:
    """Every file a dry run of all_figures would write outside the shared runs, data and train logs."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path),
           "-n", "--cores", "2", "all_figures", "--quiet", "rules", "--detailed-summary"]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    files = {line.split("\t")[0] for line in res.stdout.splitlines() if "\t" in line} - {"output_file"}
    assert files, res.stdout[-2000:]
    return {f for f in files if not f.startswith(("results/runs/", "data/"))}


@pytest.mark.slow
def test_three_studies_in_one_checkout_write_no_path_twice(repo, tmp_path):
    default = _outputs(repo, tmp_path / "a")
    reference = _outputs(repo, tmp_path / "b", repo / "config" / "reference.yaml")
    smoke = _outputs(repo, tmp_path / "c", repo / "config" / "smoke.yaml")
    assert "results/summary.csv" in default and "figures/headline.png" in default
    assert "results/studies/reference/claims.md" in reference and "results/studies/smoke/summary.csv" in smoke
    assert not default & reference and not default & smoke and not reference & smoke
