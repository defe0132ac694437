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
                       (["bench", "--scale", "--cores", "2"], "--cores"),
                       (["bench", "--profile", "--device", "cpu"], "--device")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"mhd bench: error: {flag} is not an option of `mhd bench") and "it takes" in err, err
    with pytest.raises(SystemExit):  # one mode at a time
        main(["bench", "--scale", "--workflow"])


@pytest.mark.parametrize("name, expected", [
    ("aten::convolution_backward", "convolution"), ("aten::mkldnn_convolution", "convolution"),
    ("aten::native_batch_norm_backward", "batch norm"), ("aten::max_pool2d_with_indices_backward", "max-pool"),
    ("aten::relu_", "relu"), ("aten::threshold_backward", "relu"), ("aten::clamp_min_", None),
    ("aten::addmm", "matrix products"), ("aten::baddbmm", "matrix products"), ("aten::add_", "element-wise arithmetic"),
    ("aten::_foreach_add_", "element-wise arithmetic"), ("aten::_to_copy", "casts and copies"),
    ("aten::_log_softmax_backward_data", "softmax and losses"), ("aten::logsumexp", None), ("aten::logical_not", None),
    ("aten::masked_fill_", None), ("aten::empty", None), ("torch::autograd::AccumulateGrad", None),
    ("autograd::engine::evaluate_function: ConvolutionBackward0", None)])
def test_each_operator_belongs_to_its_family_by_its_whole_name(name, expected):
    from mhd.bench.profile import family

    assert family(name) == expected


def test_an_operator_of_no_family_counts_for_the_nearest_enclosing_one_that_has_one():
    from types import SimpleNamespace

    from mhd.bench.profile import OTHER, by_family

    def event(name, us, parent=None):
        return SimpleNamespace(name=name, self_cpu_time_total=us, cpu_parent=parent)

    relu = event("aten::relu_", 1)
    conv = event("aten::conv2d", 10)
    events = [relu, event("aten::clamp_min_", 2, relu), conv, event("aten::empty", 4, event("aten::x", 0, conv)),
              event("aten::clamp_min", 8), event("autograd::engine::evaluate_function: X", 16),
              event("aten::_to_copy", 32, conv)]  # a cast inside a convolution is a cast
    fams = by_family(events)
    assert fams["relu"] == 3 and fams["convolution"] == 14 and fams[OTHER] == 24 and fams["casts and copies"] == 32
    assert sum(fams.values()) == sum(e.self_cpu_time_total for e in events)


def test_bench_profile_gives_each_precision_s_step_by_operator_family(bench_config, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "p.json"
    assert main(["bench", "--profile", "--config", str(bench_config), "--quick", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads(out.read_text())
    assert result["device"] == "cpu" and result["threads"] == 1 and result["rounds"] == 2
    for p in ("fp32", "bf16"):
        numbers = result["precisions"][p]
        assert numbers["step_ms"] > 0, p
        # the step is mostly its convolutions, in the families named for them
        assert numbers["families"]["convolution"]["share"] > 0.2, p
    assert result["bf16_over_fp32"]["convolution"] > 0
    # the best mix of the two precisions by family is at least as fast as either precision's profile
    per = result["precisions"]
    assert result["best_mix_over_fp32"] >= max(1.0, per["fp32"]["profiled_ms"] / per["bf16"]["profiled_ms"]) - 1e-3
