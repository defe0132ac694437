import json

import yaml

from mhd import config as mconfig
from mhd.cli import main


def test_bench_quick_prints_one_json_object(repo, tiny_idx, tmp_path, capsys, monkeypatch):
    cfg = mconfig.merge(mconfig.read_yaml(repo / "config" / "config.yaml"),
                        {"dataset": {"root": str(tiny_idx), "verify": False, "download": False},
                         "run": {"clients": 4, "samples_per_client": 100, "batch_private": 8, "batch_public": 8},
                         "experiments": {"bench": {"rows": [{}]}}})
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)  # no prepared cache here: bench prepares its own
    assert main(["bench", "--config", str(path), "--quick", "--out", str(tmp_path / "b.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads((tmp_path / "b.json").read_text())
    assert result["clients"] == 4 and result["heads"] == 3 and result["device"] == "cpu"
    for key in ("mhd_img_s", "naive_img_s", "plain_img_s"):
        assert result[key] > 0
    assert abs(result["vs_naive"] - result["mhd_img_s"] / result["naive_img_s"]) < 0.01
