import inspect
import json

import pytest
import yaml

from mhd import config as mconfig
from mhd.cli import main


@pytest.fixture
def bench_config(repo, tiny_idx, tmp_path):
    """The default config on the tiny dataset: 4 clients, small batches."""
    cfg = mconfig.merge(mconfig.read_yaml(repo / "config" / "config.yaml"),
                        {"dataset": {"root": str(tiny_idx), "verify": False, "download": False},
                         "run": {"clients": 4, "samples_per_client": 100, "validation_per_class": 10, "batch_private": 8,
                                 "batch_public": 8},
                         "experiments": {"bench": {"rows": [{}]}}})
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_bench_quick_prints_one_json_object(bench_config, tmp_path, capsys, monkeypatch):
    path = bench_config
    monkeypatch.chdir(tmp_path)  # no prepared cache here: bench prepares its own
    assert main(["bench", "--config", str(path), "--quick", "--out", str(tmp_path / "b.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads((tmp_path / "b.json").read_text())
    assert result["clients"] == 4 and result["heads"] == 3 and result["device"] == "cpu"
    for key in ("mhd_img_s", "naive_img_s", "plain_img_s"):
        assert result[key] > 0
    assert result["memory"] == "step_rss_mib"
    assert all(result[f"{v}_memory_mib"] >= 0 for v in ("mhd", "naive", "plain"))
    # interleaved rounds: medians, and the spread of every variant and ratio
    assert result["rounds"] == 2 and set(result["spread"]) == {"mhd", "plain", "naive", "vs_naive", "vs_plain"}
    assert all(v >= 0 for v in result["spread"].values())
    assert all("spread" in w for w in result["warnings"])
    assert result["vs_naive"] > 0 and result["vs_plain"] > 0
    # both precisions, each with its roofline; the top level is the config's own precision
    assert set(result["precisions"]) == {"fp32", "bf16"} and result["precision"] in result["precisions"]
    assert result["mhd_img_s"] == result["precisions"][result["precision"]]["mhd_img_s"]
    for p, numbers in result["precisions"].items():
        roof = numbers["roofline"]
        assert roof["peak_gflops"] > 0 and roof["mhd_gflop_per_step"] > roof["plain_gflop_per_step"] / 2 > 0, p
        for v in ("mhd", "plain"):
            # both rounded (GFLOP/s to 0.01, the fraction to 0.001): the product is within their rounding
            assert roof[f"{v}_gflops"] == pytest.approx(roof[f"{v}_fraction_of_peak"] * roof["peak_gflops"],
                                                        abs=0.0005 * roof["peak_gflops"] + 0.005)
    assert result["bf16_over_fp32"]["mhd"] > 0 and set(result["bf16_over_fp32"]["spread"]) == {"mhd", "plain"}
    # the same FLOPs in either precision: autocast changes the floats, not the operations
    assert (result["precisions"]["fp32"]["roofline"]["mhd_gflop_per_step"]
            == result["precisions"]["bf16"]["roofline"]["mhd_gflop_per_step"])


def test_bench_scale_measures_every_variant_in_its_own_process(bench_config, tmp_path, capsys, monkeypatch):
    path = bench_config
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--scale", "--quick", "--config", str(path), "--clients", "2", "4", "--threads", "1",
                 "--figure", str(tmp_path / "scale.png"), "--out", str(tmp_path / "scale.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads((tmp_path / "scale.json").read_text())
    assert (tmp_path / "scale.png").stat().st_size > 10_000
    rows = result["rows"]
    # three variants at N = 2 and 4 with H = 3; both engines at H = 1 and 8 with N = 4
    assert sorted((r["variant"], r["clients"], r["heads"]) for r in rows) == sorted(
        [(v, n, 3) for v in ("vectorised", "loop", "plain") for n in (2, 4)]
        + [(v, 4, h) for v in ("vectorised", "loop") for h in (1, 8)])
    for r in rows:
        assert r["img_s"] > 0 and r["threads"] == 1 and r["device"] == "cpu"
        assert r["peak_rss_mib"] >= r["rss_before_steps_mib"] > 50 and r["step_rss_mib"] >= 0
    speed = {(r["variant"], r["clients"]): r["img_s"] for r in rows if r["heads"] == 3}
    assert result["ratios"]["4"]["vectorised_vs_loop"] == round(speed["vectorised", 4] / speed["loop", 4], 3)


def test_each_bench_mode_takes_its_own_options(monkeypatch, capsys, tmp_path):
    """`mhd bench`, `--scale`, `--workflow`: each calls its bench function with the options given (the rest
    are the function's defaults), and an option of another mode is refused, not ignored."""
    from mhd.bench import profile, scale, throughput, workflow

    calls = {}

    def fake(module, name):
        real = getattr(module, name)

        def stand_in(**kw):
            calls[name] = kw
            return {"mode": name}
        stand_in.__signature__ = inspect.signature(real)
        monkeypatch.setattr(module, name, stand_in)

    fake(throughput, "bench")
    fake(scale, "bench_scale")
    fake(workflow, "bench_workflow")
    fake(profile, "bench_profile")
    monkeypatch.setattr(workflow, "machine_name", lambda: "m")
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--quick", "--threads", "1"]) == 0
    assert calls["bench"] == {"quick": True, "threads": 1} and json.loads(capsys.readouterr().out) == {"mode": "bench"}
    assert main(["bench", "--scale", "--config", "c.yaml", "--clients", "2", "4", "--figure", "f.png"]) == 0
    assert calls["bench_scale"] == {"config_path": "c.yaml", "clients": [2, 4], "figure_path": "f.png"}
    assert main(["bench", "--workflow", "--cores", "2", "--rounds", "0", "--configfile", "a.yaml"]) == 0
    assert calls["bench_workflow"].keys() == {"cores", "configfiles", "progress"}  # --rounds 0: the function's default
    assert calls["bench_workflow"]["cores"] == 2 and calls["bench_workflow"]["configfiles"] == ["a.yaml"]
    written = tmp_path / "benchmarks" / "results" / "workflow-m.json"  # --workflow's default --out
    assert json.loads(written.read_text()) == {"mode": "bench_workflow"}
    assert main(["bench", "--profile", "--threads", "2", "--rounds", "1"]) == 0
    assert calls["bench_profile"] == {"threads": 2, "rounds": 1}
    capsys.readouterr()
    for argv, flag in ((["bench", "--clients", "2"], "--clients"), (["bench", "--workflow", "--quick"], "--quick"),
                       (["bench", "--scale", "--cores", "2"], "--cores"), (["bench", "--profile", "--device", "cpu"], "--device")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"mhd bench: error: {flag} is not an option of `mhd bench") and "it takes" in err, err
    with pytest.raises(SystemExit):  # one mode at a time
        main(["bench", "--scale", "--workflow"])


def test_bench_profile_splits_each_precision_s_step_into_operator_families(bench_config, tmp_path, capsys, monkeypatch):
    from mhd.bench.profile import OTHER, family

    assert family("aten::convolution_backward") == family("aten::mkldnn_convolution") == "convolution"
    assert family("aten::native_batch_norm_backward") == "batch norm"
    assert family("aten::max_pool2d_with_indices_backward") == "max-pool"
    assert family("aten::addmm") == "matrix products" and family("aten::add_") != "matrix products"
    assert family("aten::_to_copy") == "casts and copies" and family("aten::empty") == OTHER
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--profile", "--config", str(bench_config), "--quick", "--out", str(tmp_path / "p.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads((tmp_path / "p.json").read_text())
    assert result["device"] == "cpu" and result["threads"] == 1 and result["rounds"] == 2
    for p in ("fp32", "bf16"):
        numbers = result["precisions"][p]
        fams = numbers["families"]
        assert numbers["step_ms"] > 0 and fams["convolution"]["ms_per_step"] > 0, p
        # the families partition the profiled time: their shares add up to 1 (each rounded to 0.001)
        assert sum(f["share"] for f in fams.values()) == pytest.approx(1, abs=0.006)
        assert sum(f["ms_per_step"] for f in fams.values()) == pytest.approx(numbers["profiled_ms"], abs=0.01)
    assert result["bf16_over_fp32"]["step"] == round(result["precisions"]["fp32"]["step_ms"]
                                                     / result["precisions"]["bf16"]["step_ms"], 2)
