"""Every bad search config gives one clear ConfigError naming the key or value."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from na_toolkit.errors import ConfigError
from na_toolkit.search.config import load_config
from na_toolkit.search.loop import SearchLoop

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

GOOD = {
    "name": "cfg",
    "seed_network": "simple-cnn",
    "dataset": "digits",
    "evaluations": 4,
    "search": {"per_round": 2, "moves": ["scale"]},
    "strategy": {"name": "random"},
    "evaluator": {"name": "torch", "options": {"epochs": 1}},
    "budgets": {"model_size_bytes": 16_000_000},
    "devices": {"cpu": {"time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
                        "budgets": {"latency_ms": {"limit": 0.5, "weight": 2.0, "hard": True}}}},
}


def with_(path: str, value, base=GOOD):
    doc = copy.deepcopy(base)
    keys = path.split(".")
    d = doc
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    if value is DELETE:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value
    return doc


DELETE = object()


def test_good_config_parses_with_defaults(tmp_path):
    cfg = load_config(GOOD, base_dir=tmp_path)
    assert cfg.evaluations == 4 and cfg.random_seed == 0 and cfg.output == (tmp_path / "runs").resolve()
    assert cfg.search.per_round == 2 and cfg.search.moves == ("scale",) and cfg.search.evaluate_seed
    assert cfg.executor.name == "local" and cfg.evaluator.options == {"epochs": 1}
    assert [b.metric for b in cfg.budgets] == ["model_size_bytes", "latency_ms@cpu"]
    lat = cfg.budgets[1]
    assert lat.limit == 0.5 and lat.weight == 2.0 and lat.hard
    assert cfg.device("cpu").time_model_options() == {"device": "x86-cpu"}
    assert cfg.predictors["accuracy"].name == cfg.predictors["train_time_s"].name
    # the stored document reloads to the same config (what --resume does)
    again = load_config(json.loads(json.dumps(cfg.to_json())))
    assert again.budgets == cfg.budgets and again.devices == cfg.devices


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_shipped_examples_are_valid(example):
    cfg = load_config(EXAMPLES / example)
    assert cfg.evaluations > 0 and cfg.output.is_absolute()


BAD = [
    # (change, message fragment naming the key / value)
    (with_("evaluatons", 3), "unknown config key 'evaluatons'. Did you mean 'evaluations'"),
    (with_("strategy.nmae", "x"), "unknown config key 'strategy.nmae'. Did you mean 'strategy.name'"),
    (with_("search.per_rnd", 3), "'search.per_rnd'. Did you mean 'search.per_round'"),
    (with_("devices.cpu.budgets.latncy_ms", 1.0), "'devices.cpu.budgets.latncy_ms'. Did you mean 'devices.cpu.budgets.latency_ms'"),
    (with_("devices.cpu.budget", {}), "'devices.cpu.budget'. Did you mean 'devices.cpu.budgets'"),
    (with_("budgets.model_size_bytes", {"limit": 1, "wieght": 1}), "'budgets.model_size_bytes.wieght'"),
    (with_("budgets.model_size", 1), "unknown config key 'budgets.model_size'. Did you mean 'budgets.model_size_bytes'"),
    (with_("seed_network", DELETE), "config key 'seed_network' is missing"),
    (with_("evaluations", DELETE), "config key 'evaluations' is missing"),
    (with_("devices.cpu.time_model", DELETE), "'devices.cpu.time_model' is missing"),
    (with_("budgets.train_time_s", {"weight": 1.0}), "'budgets.train_time_s.limit' is missing"),
    (with_("evaluations", 0), "'evaluations' must be > 0, got 0"),
    (with_("evaluations", "ten"), "'evaluations' must be an integer, got 'ten'"),
    (with_("evaluations", True), "'evaluations' must be an integer"),
    (with_("budgets.model_size_bytes", 0), "'budgets.model_size_bytes' must be > 0, got 0"),
    (with_("budgets.model_size_bytes", -16e6), "'budgets.model_size_bytes' must be > 0, got -16000000.0"),
    (with_("devices.cpu.budgets.latency_ms", {"limit": -1.0}), "'devices.cpu.budgets.latency_ms.limit' must be > 0"),
    (with_("devices.cpu.budgets.energy_mj", 0.0), "'devices.cpu.budgets.energy_mj' must be > 0"),
    (with_("devices.cpu.budgets.latency_ms", {"limit": 1.0, "weight": -2.0}), "'devices.cpu.budgets.latency_ms.weight' must be >= 0"),
    (with_("devices.cpu.batch_size", 0), "'devices.cpu.batch_size' must be > 0"),
    (with_("search.per_round", -1), "'search.per_round' must be > 0"),
    (with_("search.ucb_kappa", -1.0), "'search.ucb_kappa' must be >= 0"),
    (with_("random_seed", -3), "'random_seed' must be >= 0"),
    (with_("strategy.name", "evolutoin"), "strategy: unknown strategy 'evolutoin'. Did you mean 'evolution'"),
    (with_("predictors.accuracy", "ensemblee"), "predictors.accuracy: unknown predictor 'ensemblee'. Did you mean 'ensemble'"),
    (with_("evaluator.name", "torh"), "evaluator: unknown evaluator 'torh'. Did you mean 'torch'"),
    (with_("executor", "lokal"), "executor: unknown executor 'lokal'. Did you mean 'local'"),
    (with_("devices.cpu.time_model", "rooflin"), "devices.cpu.time_model: unknown time model 'rooflin'. Did you mean 'roofline'"),
    (with_("devices.cpu.measure", {"name": "onnxrt"}), "devices.cpu.measure: unknown time model 'onnxrt'"),
    (with_("seed_network", "simple_cnn"), "seed_network: unknown seed network 'simple_cnn'. Did you mean 'simple-cnn'"),
    (with_("seed_network", "missing.json"), "seed_network: file"),
    (with_("search.moves", ["scael"]), "search.moves: unknown move 'scael'. Did you mean 'scale'"),
    (with_("search.moves", []), "'search.moves' must be a non-empty list"),
    (with_("reward", {"form": "product"}), "'reward.form' must be one of ['penalty', 'mnasnet'], got 'product'"),
    (with_("reward", {"accuracy_weight": 0}), "'reward.accuracy_weight' must be > 0"),
    (with_("devices", {"a@b": {"time_model": "roofline"}}), "device name 'a@b'"),
    (with_("devices.cpu", 3), "'devices.cpu' must be a table"),
    (with_("strategy", {"name": "random", "options": 3}), "'strategy.options' must be a table"),
]


@pytest.mark.parametrize("doc, fragment", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_config_names_the_key(doc, fragment, tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(doc, base_dir=tmp_path)
    msg = str(info.value)
    assert fragment in msg
    assert "\n" not in msg  # one line from the CLI


def test_seed_that_fails_validation(tmp_path):
    bad = {"schema_version": 1, "input_shape": [1, 8, 8], "nodes": [
        {"id": "c", "type": "conv2d", "attrs": {"filters": 4, "kernel": 3}, "inputs": ["input"]},
        {"id": "l", "type": "linear", "attrs": {"units": 10}, "inputs": ["nowhere"]}]}
    (tmp_path / "seed.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match=r"seed_network .*seed.json' is not a valid network: node 'l'.*dangling"):
        load_config(with_("seed_network", "seed.json"), base_dir=tmp_path)


def test_toml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    (tmp_path / "broken.toml").write_text("evaluations = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "broken.toml")


# Errors found when the components are built (before anything runs or a run folder exists).
RUNTIME_BAD = [
    (with_("devices.cpu.time_model", {"name": "roofline", "options": {"device": "tpu-v9"}}),
     "devices.cpu.time_model (roofline on device 'tpu-v9')"),
    (with_("devices.cpu.measure", {"name": "onnxruntime", "options": {"provider": "TensorRT"}}), "devices.cpu.measure"),
    (with_("devices.cpu.measure", {"name": "onnxruntime", "options": {"device": "tpu:0"}}),
     "devices.cpu.measure (onnxruntime on device 'tpu:0')"),
    (with_("devices.cpu.time_model", {"name": "roofline", "options": {"dtpye": "fp32"}}), "devices.cpu.time_model"),
    (with_("strategy.options", {"populaton": 3}), "strategy.options"),
    (with_("strategy", {"name": "evolution", "options": {"population": 4, "sample": 9}}), "sample (9) must not exceed population (4)"),
    (with_("evaluator.options", {"epoch": 1}), "evaluator (torch): torch evaluator: unknown option(s) epoch"),
    (with_("dataset", "digitz"), "unknown dataset 'digitz'"),
    (with_("predictors.accuracy", {"name": "ensemble", "options": {"n_trees": 3}}), "predictors.accuracy.options"),
    (with_("executor", {"name": "local", "options": {"workers": 0}}), "executor (local): executor local: workers must be"),
    (with_("executor", "ray"), "pip install na-toolkit[ray]"),
]


@pytest.mark.parametrize("doc, fragment", RUNTIME_BAD, ids=[b[1][:40] for b in RUNTIME_BAD])
def test_bad_component_options_name_the_component(doc, fragment, tmp_path):
    pytest.importorskip("na_toolkit.timemodels.roofline")
    if fragment.startswith("pip install"):
        try:
            import ray  # noqa: F401
            pytest.skip("Ray is installed: the missing-Ray error cannot happen")
        except ImportError:
            pass
    cfg = load_config(doc, base_dir=tmp_path)
    with pytest.raises(ConfigError) as info:
        SearchLoop(cfg, None, tmp_path / "run", progress=False)
    assert fragment in str(info.value)
    assert not (tmp_path / "run").exists()


def test_cli_bad_config_is_one_line_exit_2(tmp_path):
    (tmp_path / "c.toml").write_text('seed_network = "simple-cnn"\nevaluations = 2\n[strategy]\nnmae = "random"\n')
    p = subprocess.run([sys.executable, "-m", "na_toolkit.cli.main", "search", str(tmp_path / "c.toml")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1] == (
        "na-toolkit: error: unknown config key 'strategy.nmae'. Did you mean 'strategy.name'? Known here: name, options"
    )


def test_demo_config_is_the_shipped_example():
    # the demo embeds its config for installs without examples/; both must describe the same search
    import tomllib

    from na_toolkit.search.demo import DEMO_TOML

    example = load_config(EXAMPLES / "demo.toml").to_json()
    embedded = load_config(tomllib.loads(DEMO_TOML), base_dir=EXAMPLES).to_json()
    example.pop("output"), embedded.pop("output")
    assert embedded == example
