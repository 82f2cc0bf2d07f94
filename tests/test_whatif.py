"""What-if hardware (`na-toolkit whatif`): --vary parsing against a hardware model, the variants it makes,
the roofline's latency split by bound, real searches per variant (the NB201 table: an evaluation is a
look-up) and the command through a real subprocess."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import REPO_ROOT, default_toolkit, get_seed
from na_toolkit.errors import ConfigError
from na_toolkit.search.whatif_vary import apply_value, parse_value, parse_varies, variants
from na_toolkit.timemodels.hwmodel import load_hardware_model, read_hardware_model, save_hardware_model
from na_toolkit.timemodels.roofline import RooflineTimeModel


def _model(name: str = "jetson-orin-nano"):
    return load_hardware_model(name, default_toolkit().hardware)


# ---- --vary -------------------------------------------------------------------------------------------------
def test_values_are_factors_or_absolute_values_with_units():
    bw = "memory_bandwidth_bytes_per_s"
    assert parse_value("0.5x", bw).factor == 0.5
    assert parse_value("2X", bw).factor == 2.0
    assert parse_value("100GB/s", bw).value_si == pytest.approx(1e11)
    assert parse_value("1 TiB/s", bw).value_si == pytest.approx(2.0**40)
    assert parse_value("6.8e10", bw).value_si == pytest.approx(6.8e10)  # bare: the field's SI unit
    assert parse_value("10TFLOPS", "peak_flops_per_s.fp16").value_si == pytest.approx(1e13)
    assert parse_value("5us", "launch_overhead_s").value_si == 5e-6  # exactly: a variant's TOML shows 5e-06
    # a lowercase b is bits: read as bytes it was an 8x slip (17 Gb/s of a link spec is 2.125 GB/s)
    for bits, write in (("17Gb/s", "GB/s"), ("17gb/s", "GB/s"), ("2Gib", "GiB")):
        field = bw if "/s" in bits else "memory_capacity_bytes"
        with pytest.raises(ConfigError, match=f"is bits .* write {write}"):
            parse_value(bits, field)
    assert parse_value("17gB/s", bw).value_si == 1.7e10  # case-insensitive otherwise
    assert parse_value("0", "launch_overhead_s").value_si == 0.0  # a launch may be free, a bandwidth not
    for bad, problem in (("3furlongs", "unknown unit 'furlongs'"), ("0x", "must be > 0"), ("0GB/s", "positive")):
        with pytest.raises(ConfigError, match=problem):
            parse_value(bad, bw)


def test_the_device_may_be_named_by_the_hardware_model_file_the_config_gives(tmp_path):
    """docs/whatif.md: `--device` may name the hardware model a roofline reads; a config that gives its own
    model by path (`device = "edge-npu.toml"`) is found by the model's name (its file stem) or that path."""
    from na_toolkit.search.config import parse_config
    from na_toolkit.search.whatif import select_device

    (tmp_path / "edge-npu.toml").write_text((REPO_ROOT / "hwmodels" / "x86-cpu.toml").read_text())
    doc = {
        "name": "npu",
        "seed_network": "simple-cnn",
        "dataset": "digits",
        "evaluations": 4,
        "devices": {
            "npu": {"time_model": {"name": "roofline", "options": {"device": "edge-npu.toml"}}},
            "orin": {"time_model": {"name": "roofline", "options": {"device": "jetson-orin-nano"}}},
        },
    }
    config = parse_config(doc, tmp_path)
    for name in ("npu", "edge-npu", "edge-npu.toml", "./edge-npu.toml"):
        assert select_device(config, name).name == "npu", name
    assert select_device(config, "jetson-orin-nano").name == "orin"
    with pytest.raises(ConfigError, match="no device of that name; its devices: npu, orin"):
        select_device(config, "edge")


def test_a_misspelt_field_names_the_valid_ones():
    model = _model()
    with pytest.raises(ConfigError) as exc:
        parse_varies(["memory_bandwith=2x"], model)
    assert "Did you mean 'memory_bandwidth'" in str(exc.value)
    assert "peak_flops.fp16" in str(exc.value) and "launch_overhead" in str(exc.value)
    with pytest.raises(ConfigError, match="no peak for dtype 'fp64'.*peak_flops.fp32"):
        parse_varies(["peak_flops.fp64=2x"], model)
    with pytest.raises(ConfigError, match="given twice"):
        parse_varies(["memory_bandwidth=2x", "memory_bandwidth_bytes_per_s=1x"], model)
    with pytest.raises(ConfigError, match="FIELD=V1,V2"):
        parse_varies(["memory_bandwidth"], model)
    with pytest.raises(ConfigError, match="at least one --vary"):
        parse_varies([], model)
    # run_whatif(config, None, "memory_bandwidth=0.5x,2x") from Python: the string was read as the flags 'm', 'e', ...
    with pytest.raises(ConfigError, match=r"got the string 'memory_bandwidth=2x': \['memory_bandwidth=2x'\]"):
        parse_varies("memory_bandwidth=2x", model)
    # one value twice would search the same hardware twice (two "baselines")
    with pytest.raises(ConfigError, match=r"'1x' and '1x' are the same value; give each once"):
        parse_varies(["memory_bandwidth=1x,1x"], model)
    with pytest.raises(ConfigError, match=r"'2x' and '2.0x' are the same value"):
        parse_varies(["memory_bandwidth=0.5x,2x,2.0x"], model)


def test_variants_are_the_cartesian_product_and_read_back(tmp_path):
    model = _model()
    varies = parse_varies(["memory_bandwidth=0.5x,1x,2x", "peak_flops.fp16=1x,20TFLOPS"], model)
    points = variants(model, varies)
    assert len(points) == 6
    assert [p.label for p in points[:2]] == [
        "memory_bandwidth=0.5x, peak_flops.fp16=1x",
        "memory_bandwidth=0.5x, peak_flops.fp16=20TFLOPS",
    ]
    assert [p.is_baseline for p in points] == [False, False, True, False, False, False]
    for p in points:
        factor = dict(p.settings)["memory_bandwidth_bytes_per_s"].factor
        assert p.model.memory_bandwidth_bytes_per_s == pytest.approx(model.memory_bandwidth_bytes_per_s * factor)
        # everything not varied stays as it was
        assert p.model.launch_overhead_s == model.launch_overhead_s
        assert p.model.peak_flops_per_s["fp32"] == model.peak_flops_per_s["fp32"]
    assert points[1].model.peak_flops_per_s["fp16"] == pytest.approx(2e13)
    # a variant is a valid hardware model file that cites what it varied
    path = save_hardware_model(points[5].model, tmp_path / f"{points[5].model.name}.toml")
    back = read_hardware_model(path)
    assert back.memory_bandwidth_bytes_per_s == pytest.approx(2 * model.memory_bandwidth_bytes_per_s)
    assert "what-if 2x of jetson-orin-nano" in back.notes["memory_bandwidth_bytes_per_s"]


def test_a_factor_scales_the_measured_ceiling_an_absolute_value_drops_it():
    model = _model("h100-sxm")
    assert model.measured_memory_bandwidth_bytes_per_s is not None, "h100-sxm ships a measured copy bandwidth"
    bw = "memory_bandwidth_bytes_per_s"
    doubled = apply_value(model, bw, parse_value("2x", bw))
    assert doubled.bandwidth_bytes_per_s() == pytest.approx(2 * model.bandwidth_bytes_per_s())
    assert doubled.bandwidth_bytes_per_s(prefer_measured=False) == pytest.approx(2 * model.memory_bandwidth_bytes_per_s)
    fixed = apply_value(model, bw, parse_value("1TB/s", bw))
    assert fixed.measured_memory_bandwidth_bytes_per_s is None
    assert fixed.bandwidth_bytes_per_s() == pytest.approx(1e12)
    with pytest.raises(ConfigError, match="no power_w to scale; give an absolute value"):
        apply_value(replace(model, power_w=None), "power_w", parse_value("2x", "power_w"))


# ---- the roofline's split by bound --------------------------------------------------------------------------
def test_roofline_latency_splits_into_compute_memory_and_launch_time():
    arch = get_seed("resnet-cifar")
    for batch_size in (1, 64):
        est = RooflineTimeModel.from_toolkit(default_toolkit(), device="jetson-orin-nano").estimate(arch, batch_size)
        forward = est.details["forward"]
        parts = [forward[f"{b}_bound_s"] for b in ("compute", "memory", "launch")]
        assert sum(parts) == pytest.approx(forward["time_s"])
        assert sum(parts) * 1000 == pytest.approx(est.latency_ms)
        assert forward["bound"] == ("compute", "memory", "launch")[parts.index(max(parts))]
    # a large batch amortises the launches: the bound moves off launch overhead
    assert forward["launch_bound_s"] < forward["time_s"] / 2


# ---- real searches per variant ------------------------------------------------------------------------------
NB201_DOC = {
    "name": "nb201-whatif-test",
    "seed_network": "nb201",
    "dataset": "c10",
    "evaluations": 8,
    "random_seed": 3,
    "output": "runs",
    "search": {"per_round": 4, "moves": ["set_edge_op"], "evaluate_seed": False},
    "strategy": {"name": "evolution", "options": {"max_moves": 12}},
    "evaluator": {"name": "nb201-table"},
    "predictors": {"accuracy": "bayesian-ridge"},
    "executor": {"name": "local", "options": {"workers": 1}},
    "devices": {
        "orin": {
            "time_model": {"name": "roofline", "options": {"device": "jetson-orin-nano"}},
            "batch_size": 32,
            "budgets": {"latency_ms": {"limit": 9.5, "hard": True}},
        }
    },
}


@pytest.fixture(scope="module")
def nb201():
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    from na_toolkit.search.whatif import run_whatif

    doc = copy.deepcopy(NB201_DOC)
    return doc, run_whatif(doc, "jetson-orin-nano", ["memory_bandwidth=0.5x,1x,2x"], toolkit=default_toolkit())


@pytest.mark.slow
def test_each_variant_reports_its_best_network_latency_and_bound(nb201):
    doc, result = nb201
    assert result.device == "orin" and result.hardware_model == "jetson-orin-nano"
    assert [o.settings for o in result.outcomes] == [{"memory_bandwidth": f} for f in ("0.5x", "1x", "2x")]
    assert [o.bytes_per_s for o in result.outcomes] == pytest.approx([34e9, 68e9, 136e9])
    toolkit = default_toolkit()
    for outcome, model in zip(result.outcomes, result.models):
        assert outcome.evaluations == doc["evaluations"]
        assert outcome.best_hash is not None and outcome.latency_ms is not None
        assert outcome.latency_ms <= 9.5  # feasible under the same budget
        shares = outcome.bounds
        assert shares is not None
        assert shares.compute_share + shares.memory_share + shares.launch_share == pytest.approx(1.0)
        assert 0.0 < outcome.accuracy < 1.0
        # the latency reported is the variant's roofline latency of that network
        from na_toolkit_nb201 import nb201_architecture

        arch = nb201_architecture(outcome.best_name.partition(":")[2], layer_types=toolkit.layer_types)
        assert arch.hash == outcome.best_hash
        variant_tm = RooflineTimeModel.from_toolkit(toolkit, device=model)
        assert variant_tm.estimate(arch, 32).latency_ms == pytest.approx(outcome.latency_ms)
    for outcome in result.outcomes:  # every search used its budget: nothing to explain below the table
        assert outcome.stop_reason == f"the evaluation budget ({doc['evaluations']}) is spent"
        assert outcome.failed_evaluations == 0
    from na_toolkit.search.whatif_report import whatif_notes

    assert whatif_notes(result.to_json()) == []
    # a slower memory makes the memory-bound share of the same kind of network larger
    half, _, double = result.outcomes
    assert half.bounds.memory_share > double.bounds.memory_share
    assert result.outcomes[1].baseline and result.outcomes[1].same_as_baseline is True


def test_the_baseline_variant_is_the_plain_search(nb201):
    """Same seed and budgets: the 1x variant retraces the search of the config itself."""
    from na_toolkit.search.loop import run_search
    from na_toolkit.store.memory import MemoryRunStore

    doc, result = nb201
    plain = run_search(
        copy.deepcopy(doc), toolkit=default_toolkit(), store=MemoryRunStore("p", doc), progress=False, outputs=False
    )
    baseline = result.outcomes[1]
    assert plain.best["orin"] == baseline.best_hash
    best = plain.get(plain.best["orin"])
    assert best.score.metrics["latency_ms@orin"] == pytest.approx(baseline.latency_ms)
    assert best.score.metrics["accuracy"] == pytest.approx(baseline.accuracy)


@pytest.mark.slow
def test_a_variant_that_stops_short_says_why():
    """A quarter of the bandwidth puts every cell the search reaches over the hard budget: the screen drops
    every proposal, the search stops short of its evaluations, and the what-if says why (row, log, notes)."""
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    from na_toolkit.search.whatif import run_whatif
    from na_toolkit.search.whatif_report import whatif_markdown, whatif_text

    lines: list[str] = []
    doc = copy.deepcopy(NB201_DOC)
    result = run_whatif(doc, None, ["memory_bandwidth=0.25x,1x"], toolkit=default_toolkit(), log=lines.append)
    short, full = result.outcomes
    assert short.evaluations < doc["evaluations"] and short.best_hash is None
    assert "proposed no new candidate" in short.stop_reason and "broke a hard budget" in short.stop_reason
    assert f"({short.evaluations} of {doc['evaluations']} evaluations used)" in short.stop_reason
    assert full.evaluations == doc["evaluations"] and "spent" in full.stop_reason
    assert short.to_json()["stop_reason"] == short.stop_reason  # in whatif.json
    assert "memory_bandwidth=0.25x: no feasible network (" in lines[0] and "; stopped short: the strategy" in lines[0]
    assert "stopped short" not in lines[1]
    text = whatif_text(result.to_json())
    assert text.splitlines()[-1] == f"memory_bandwidth=0.25x: stopped short: {short.stop_reason}"
    assert f"- memory_bandwidth=0.25x: stopped short: {short.stop_reason}" in whatif_markdown(result.to_json())


def test_a_variant_note_names_failures_and_reads_results_without_a_stop_reason():
    from na_toolkit.search.whatif import variant_note

    row = {"evaluations": 8, "best_hash": "abc", "infeasible_reason": None}
    assert variant_note(row, 8) is None
    assert variant_note({**row, "failed_evaluations": 2}, 8) == "2 of 8 evaluations failed"
    # a whatif.json written before the stop reason was recorded still says the search stopped short
    assert variant_note({**row, "evaluations": 5}, 8) == "used 5 of 8 evaluations"
    none = {"evaluations": 8, "best_hash": None, "infeasible_reason": "every candidate breaks latency_ms"}
    assert variant_note(none, 8) == "none feasible: every candidate breaks latency_ms"


def test_time_models_that_cannot_be_scaled_are_refused(tmp_path):
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    from na_toolkit.search.whatif import run_whatif

    toolkit = default_toolkit()
    table = copy.deepcopy(NB201_DOC)
    table["devices"]["orin"]["time_model"] = {"name": "nb201-table", "options": {}}
    table["devices"]["orin"]["device"] = "lat_pixel3"
    with pytest.raises(ConfigError, match="'nb201-table' time model, which whatif cannot scale.*roofline"):
        run_whatif(table, None, ["memory_bandwidth=2x"], toolkit=toolkit)
    fp16 = NB201_DOC
    with pytest.raises(ConfigError, match='computes in fp32.*dtype = "fp16"'):
        run_whatif(fp16, None, ["peak_flops.fp16=2x"], toolkit=toolkit)
    two = copy.deepcopy(NB201_DOC)
    two["devices"]["pi"] = copy.deepcopy(two["devices"]["orin"])
    with pytest.raises(ConfigError, match="2 devices.*--device"):
        run_whatif(two, None, ["memory_bandwidth=2x"], toolkit=toolkit)
    with pytest.raises(ConfigError, match="no device of that name.*orin, pi"):
        run_whatif(two, "tpu", ["memory_bandwidth=2x"], toolkit=toolkit)


def test_a_variant_no_device_could_have_is_refused_before_any_search():
    """A factor that takes a value out of every real device's range (15 ms per launch) is refused with the
    variant's label before the first variant's search runs, not after it, naming a temporary file."""
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    from na_toolkit.search.whatif import run_whatif

    lines: list[str] = []
    with pytest.raises(ConfigError, match=r"--vary launch_overhead=1000x: .*'launch_overhead_s'.*0.015 seconds"):
        run_whatif(NB201_DOC, None, ["launch_overhead=1x,1000x"], toolkit=default_toolkit(), log=lines.append)
    assert lines == []  # no search ran


def test_a_network_that_does_not_fit_the_device_memory_is_infeasible_there(tmp_path):
    """The device's memory capacity is a hard budget on its peak memory: on a variant with 11.5 MB (NB201
    cells need 10.8-14.8 MB at batch 32) no network over it is feasible or best, and the report says which
    budget that is; with the model's 8 GiB every cell fits. (It used to change only a roofline warning the
    search never read, so `--vary memory_capacity` changed nothing.)"""
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    from na_toolkit.search.loop import run_search
    from na_toolkit.search.outputs import report_markdown
    from na_toolkit.search.whatif import run_whatif
    from na_toolkit.search.whatif_report import whatif_text
    from na_toolkit.store.memory import MemoryRunStore

    toolkit = default_toolkit()
    doc = copy.deepcopy(NB201_DOC)
    doc["devices"]["orin"]["budgets"] = {}
    result = run_whatif(doc, None, ["memory_capacity=11.5MB,1x"], toolkit=toolkit)
    small, full = result.outcomes
    small_model, full_model = result.models
    assert small_model.memory_capacity_bytes == 11_500_000
    from na_toolkit_nb201 import nb201_architecture

    def peak_bytes(outcome, model):
        arch = nb201_architecture(outcome.best_name.partition(":")[2], layer_types=toolkit.layer_types)
        return RooflineTimeModel(device=model).estimate(arch, 32).peak_memory_bytes

    assert peak_bytes(full, full_model) > 11_500_000 >= peak_bytes(small, small_model)
    assert small.same_as_baseline is False
    # the setting line names that budget beside the config's (none here)
    assert "budgets: peak_memory_bytes@orin <= each variant's memory capacity (hard)" in whatif_text(result.to_json())
    path = save_hardware_model(small_model, tmp_path / "cap.toml")
    run_doc = copy.deepcopy(doc)
    run_doc["devices"]["orin"]["time_model"] = {"name": "roofline", "options": {"device": str(path)}}
    res = run_search(run_doc, toolkit=toolkit, store=MemoryRunStore("m", run_doc), progress=False, outputs=False)
    capacity = [b for b in res.summary()["budgets"] if b["metric"] == "peak_memory_bytes@orin"]
    assert capacity == [
        {
            "metric": "peak_memory_bytes@orin",
            "limit": 11_500_000.0,
            "weight": 0.0,
            "hard": True,
            "note": "the memory capacity of hardware model cap",
        }
    ]
    assert res.counters.screened > 0  # proposals that do not fit were dropped before evaluation
    for e in res.evaluated:
        assert e.feasible_for["orin"] == (e.score.metrics["peak_memory_bytes@orin"] <= 11_500_000)
    best = res.get(res.best["orin"])
    assert best.score.metrics["peak_memory_bytes@orin"] <= 11_500_000
    limit = "11.5 MB (11,500,000 B)"
    assert f"| peak_memory_bytes@orin (the memory capacity of hardware model cap) | {limit} | 0 | yes |" in (
        report_markdown(res.summary())
    )


def test_the_learned_time_model_is_refused_with_the_reason():
    from na_toolkit.search.whatif import run_whatif

    doc = {
        "name": "learned",
        "seed_network": "simple-cnn",
        "evaluations": 2,
        "devices": {"cpu": {"time_model": "learned", "device": "example-cpu"}},
    }
    with pytest.raises(ConfigError, match="'learned' time model.*fitted to one profiled device"):
        run_whatif(doc, None, ["memory_bandwidth=2x"], toolkit=default_toolkit())


# ---- the command --------------------------------------------------------------------------------------------
def _write_config(path: Path) -> Path:
    lines = [
        'name = "cli-whatif"',
        'seed_network = "nb201"',
        'dataset = "c10"',
        "evaluations = 6",
        "random_seed = 1",
        'output = "runs"',
        "[search]",
        'per_round = 4\nmoves = ["set_edge_op"]\nevaluate_seed = false',
        '[strategy]\nname = "evolution"',
        '[evaluator]\nname = "nb201-table"',
        '[predictors]\naccuracy = "bayesian-ridge"',
        "[devices.orin]",
        'time_model = { name = "roofline", options = { device = "jetson-orin-nano" } }',
        "batch_size = 32",
        "budgets = { latency_ms = { limit = 9.5, hard = true } }",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_cli_writes_table_plot_and_json(tmp_path, run_cli):
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    config = _write_config(tmp_path / "c.toml")
    out = tmp_path / "out"
    res = run_cli(
        "whatif", config, "--vary", "memory_bandwidth=0.5x", "--vary", "launch_overhead=1x,5us", "--json",
        "--out", out, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = res.json()
    assert len(doc["variants"]) == 2 and doc["random_seed"] == 1
    assert doc["variants"][1]["launch_overhead_s"] == pytest.approx(5e-6)
    assert "[whatif] 2/2" in res.stderr
    assert json.loads((out / "whatif.json").read_text())["variants"] == doc["variants"]
    assert (out / "whatif.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "whatif.md").read_text()
    assert "| memory_bandwidth | launch_overhead | best network |" in table
    assert sorted(p.name for p in (out / "hardware").iterdir()) == [
        f"jetson-orin-nano-whatif-{i}.toml" for i in range(2)
    ]
    assert not list(out.glob("*.part")) and not (tmp_path / "runs").exists()  # atomic; no run folders
    # the text table the command prints without --json
    from na_toolkit.search.whatif_report import whatif_text

    text = whatif_text(doc)
    assert "compute / memory / launch" in text and "latency_ms@orin <= 9.5 (hard)" in text
    assert len(text.splitlines()) == 4 + 2  # the setting, a blank line, header, rule, a row per variant


@pytest.mark.slow
def test_cli_bad_input_is_one_line(tmp_path, run_cli):
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    config = _write_config(tmp_path / "c.toml")
    line = run_cli("whatif", config, "--vary", "memory_bandwith=2x").error_line()
    assert "unknown hardware field 'memory_bandwith'" in line and "memory_bandwidth" in line
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = run_cli("whatif", config, "--vary", "memory_bandwidth=2x", "--out", blocker).error_line()
    assert "--out" in line and "not a folder" in line


# ---- the benchmark (NAS-Bench-201 plugin) -------------------------------------------------------------------
@pytest.mark.slow
def test_bench_whatif_on_nb201(tmp_path):
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    import argparse

    from na_toolkit_nb201.bench import whatif

    parser = argparse.ArgumentParser()
    whatif.configure(parser)
    args = parser.parse_args(
        ["--seeds", "1", "--evaluations", "4", "--per-round", "2", "--cells", "60", "--batch-size", "32"]
        + ["--vary", "memory_bandwidth=1x,4x"]
    )
    args.plot = str(tmp_path / "w.png")
    out = whatif.BENCHMARK.run(args, default_toolkit())
    rows = out["variants"]
    assert [r["settings"]["memory_bandwidth_bytes_per_s"] for r in rows] == ["1x", "4x"]
    # more bandwidth, same budget: every cell is at least as fast, so the feasible set only grows and the
    # table's best feasible cell can only get better
    assert [r["feasible_cells"] for r in rows] == sorted(r["feasible_cells"] for r in rows)
    optima = [r["table_optimum"]["valid_accuracy"] for r in rows]
    assert optima == sorted(optima)
    for r in rows:
        assert r["table_optimum"]["latency_ms"] <= out["budget_ms"]
        (search,) = r["search"]
        assert search["latency_ms"] is None or search["latency_ms"] <= out["budget_ms"]
        assert search["evaluations"] == 4 and search["stop_reason"] == "the evaluation budget (4) is spent"
    assert out["distinct_best_networks"]["table_optimum"] >= 1
    # what a launch-bound cell pays (docs/whatif.md quotes it): kernels per cell, each at the model's launch cost
    kernels = out["setting"]["kernels_per_cell"]
    assert 0 < kernels["min"] <= kernels["median"] <= kernels["max"]
    assert out["setting"]["launch_overhead_s"] == 1.5e-5  # hwmodels/jetson-orin-nano.toml
    # the first seed's what-if is there as the command prints it, and its searches are the ones reported
    first = out["first_seed"]
    assert first["device"] == "jetson-orin-nano" and first["batch_size"] == 32
    assert [v["latency_ms"] for v in first["variants"]] == pytest.approx(
        [r["search"][0]["latency_ms"] for r in rows], nan_ok=True
    )
    assert (tmp_path / "w.png").stat().st_size > 0


@pytest.mark.slow
def test_an_interrupted_whatif_keeps_the_variants_it_finished(tmp_path, monkeypatch, capsys):
    # before: a Ctrl-C after variant 1 of 3 wrote nothing: --out did not exist and the searches' results were gone
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    from na_toolkit.cli import _output
    from na_toolkit.cli.main import main

    said = []

    def ctrl_c_after_the_first_variant(text):  # the user presses Ctrl-C as the first variant's line appears
        said.append(text)
        if text.startswith("[whatif] 1/3"):
            raise KeyboardInterrupt

    monkeypatch.setattr(_output, "notice", ctrl_c_after_the_first_variant)
    config, out = _write_config(tmp_path / "c.toml"), tmp_path / "out"
    assert main(["whatif", str(config), "--vary", "memory_bandwidth=0.5x,1x,2x", "--out", str(out)]) == 130
    doc = json.loads((out / "whatif.json").read_text())
    assert [v["label"] for v in doc["variants"]] == ["memory_bandwidth=0.5x"] and doc["variants_planned"] == 3
    assert "stopped after 1 of 3 variants: the others did not run" in (out / "whatif.md").read_text()
    printed = capsys.readouterr().out
    assert "stopped after 1 of 3 variants: the others did not run" in printed  # the table of what finished
    assert said[-1] == f"na-toolkit: wrote the 1 finished variant(s) to {out}"
