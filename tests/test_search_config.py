"""Every bad search config gives one clear ConfigError naming the path of the bad key or value: reading
(`load_config`, no side effects) checks the document, resolving (`resolve_config`) checks it against the
registries, the components' option models and the file system, building (`build_components`) what only a
built component can tell."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, default_toolkit
from na_toolkit.errors import ConfigError, ShadowedPathWarning
from na_toolkit.search.components import build_components
from na_toolkit.search.config import build_seed, load_config, resolve_config

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
    "devices": {
        "cpu": {
            "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
            "budgets": {"latency_ms": {"limit": 0.5, "weight": 2.0, "hard": True}},
        }
    },
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
    cfg = resolve_config(load_config(GOOD, base_dir=tmp_path), default_toolkit())
    assert cfg.resolved
    assert cfg.evaluations == 4 and cfg.random_seed == 0 and cfg.output == (tmp_path / "runs").resolve()
    assert cfg.search.per_round == 2 and cfg.search.moves == ("scale",) and cfg.search.evaluate_seed
    assert cfg.executor.name == "local" and cfg.evaluator.options == {"epochs": 1}
    assert [b.metric for b in cfg.budgets] == ["model_size_bytes", "latency_ms@cpu"]
    lat = cfg.budgets[1]
    assert lat.limit == 0.5 and lat.weight == 2.0 and lat.hard
    assert cfg.device("cpu").time_model_options() == {"device": "x86-cpu"}
    assert cfg.predictors["accuracy"].name == cfg.predictors["train_time_s"].name
    # the stored document reloads to the same config (what --resume does)
    again = load_config(json.loads(json.dumps(cfg.to_json())), toolkit=default_toolkit())
    assert again.budgets == cfg.budgets and again.devices == cfg.devices


def test_reading_has_no_side_effects(tmp_path):
    # names and files are not looked at while reading: an unknown component, a missing seed file and bad
    # component options are all found by resolving
    doc = with_("seed_network", "missing.onnx", with_("strategy", {"name": "nope", "options": {"x": 1}}))
    cfg = load_config(doc, base_dir=tmp_path)
    assert not cfg.resolved and cfg.seed_network == "missing.onnx" and cfg.strategy.name == "nope"
    with pytest.raises(ConfigError, match="seed_network: file"):
        resolve_config(cfg, default_toolkit())


def test_resolving_makes_paths_absolute_and_builds_the_seed(tmp_path):
    arch = default_toolkit().seed("simple-cnn")
    arch.save(tmp_path / "seed.json")
    cfg = resolve_config(load_config(with_("seed_network", "seed.json"), base_dir=tmp_path), default_toolkit())
    assert cfg.seed_network == str((tmp_path / "seed.json").resolve()) == cfg.to_json()["seed_network"]
    assert build_seed(cfg, default_toolkit()).hash == arch.hash
    assert resolve_config(cfg, default_toolkit()) is cfg  # resolving is done once


def test_a_dataset_folder_named_bare_is_the_one_beside_the_config_wherever_the_search_starts(tmp_path, monkeypatch):
    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = resolve_config(load_config(with_("dataset", "imgs"), base_dir=tmp_path), default_toolkit())
    assert cfg.dataset == str((tmp_path / "imgs").resolve()) == cfg.to_json()["dataset"]
    # a registered name stays a name even where a folder of that name lies beside the config
    (tmp_path / "digits").mkdir()
    with pytest.warns(ShadowedPathWarning, match="write it as a path: './digits'"):
        assert resolve_config(load_config(GOOD, base_dir=tmp_path), default_toolkit()).dataset == "digits"


@pytest.mark.parametrize("value", ["imgs_missing/", "./imgs_missing", "data/cats.npz"])
def test_a_missing_dataset_path_is_named_with_what_a_dataset_may_be(tmp_path, value):
    with pytest.raises(ConfigError) as err:
        resolve_config(load_config(with_("dataset", value), base_dir=tmp_path), default_toolkit())
    message = str(err.value)
    assert message.startswith(f"dataset: '{tmp_path / value}' does not exist (a relative path is read from")
    assert "an .npz file, a folder with one subfolder per class, or a registered dataset (digits" in message


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_shipped_examples_are_valid(example):
    cfg = load_config(EXAMPLES / example)
    assert cfg.evaluations > 0 and cfg.output.is_absolute()
    if cfg.evaluator.name == "nb201-table" and "nb201-table" not in default_toolkit().evaluators:
        pytest.skip("needs the na-toolkit-nb201 plugin")
    assert resolve_config(cfg, default_toolkit()).resolved


# Found while reading the document (no registry, no file system).
BAD = [
    # (change, message fragment naming the key / value)
    (with_("evaluatons", 3), "evaluatons: unknown key. Did you mean 'evaluations'"),
    (with_("strategy.nmae", "x"), "strategy.nmae: unknown key. Did you mean 'strategy.name'"),
    (with_("search.per_rnd", 3), "search.per_rnd: unknown key. Did you mean 'search.per_round'"),
    (
        with_("devices.cpu.budgets.latncy_ms", 1.0),
        "devices.cpu.budgets.latncy_ms: unknown key. Did you mean 'devices.cpu.budgets.latency_ms'",
    ),
    (with_("devices.cpu.budget", {}), "devices.cpu.budget: unknown key. Did you mean 'devices.cpu.budgets'"),
    (with_("budgets.model_size_bytes", {"limit": 1, "wieght": 1}), "budgets.model_size_bytes.wieght: unknown key"),
    (with_("budgets.model_size", 1), "budgets.model_size: unknown key. Did you mean 'budgets.model_size_bytes'"),
    (with_("seed_network", DELETE), "seed_network: missing"),
    (with_("evaluations", DELETE), "evaluations: missing"),
    # a misspelt required key: the unknown key's close match is what helps, not "evaluations: missing"
    (
        with_("evaluation", 6, with_("evaluations", DELETE)),
        "evaluation: unknown key. Did you mean 'evaluations'",
    ),
    (with_("devices.cpu.time_model", DELETE), "devices.cpu.time_model: missing"),
    (with_("devices.cpu.time_model", {"options": {}}), "devices.cpu.time_model.name: missing"),
    (with_("budgets.train_time_s", {"weight": 1.0}), "budgets.train_time_s.limit: missing"),
    (with_("evaluations", 0), "evaluations: Input should be greater than 0 (got 0)"),
    (with_("evaluations", "ten"), "evaluations: Input should be a valid integer (got 'ten')"),
    (with_("evaluations", True), "evaluations: Input should be a valid integer"),
    (with_("random_seed", 1.5), "random_seed: Input should be a valid integer"),
    (with_("budgets.model_size_bytes", 0), "budgets.model_size_bytes.limit: Input should be greater than 0 (got 0)"),
    (
        with_("budgets.model_size_bytes", -16e6),
        "budgets.model_size_bytes.limit: Input should be greater than 0 (got -16000000.0)",
    ),
    (
        with_("budgets.model_size_bytes", float("inf")),
        "budgets.model_size_bytes.limit: Input should be a finite number",
    ),
    # a budget or component of the wrong type said "a valid dictionary or instance of BudgetDoc / ComponentDoc"
    (
        with_("budgets.model_size_bytes", "16MB"),
        "budgets.model_size_bytes: must be a number (the limit, in the metric's unit) or a table { limit, weight, "
        "hard } (got '16MB')",
    ),
    (
        with_("devices.cpu.budgets.latency_ms", "0.2ms"),
        "devices.cpu.budgets.latency_ms: must be a number (the limit, in the metric's unit) or a table",
    ),
    (with_("strategy", 3), 'strategy: must be a name or a table { name = "...", options = { ... } } (got 3)'),
    (with_("devices.cpu.measure", ["onnxruntime"]), "devices.cpu.measure: must be a name or a table"),
    (
        with_("devices.cpu.budgets.latency_ms", {"limit": -1.0}),
        "devices.cpu.budgets.latency_ms.limit: Input should be greater than 0",
    ),
    (
        with_("devices.cpu.budgets.energy_mj", 0.0),
        "devices.cpu.budgets.energy_mj.limit: Input should be greater than 0",
    ),
    (
        with_("devices.cpu.budgets.latency_ms", {"limit": 1.0, "weight": -2.0}),
        "devices.cpu.budgets.latency_ms.weight: Input should be greater than or equal to 0",
    ),
    (with_("devices.cpu.batch_size", 0), "devices.cpu.batch_size: Input should be greater than 0"),
    (with_("search.per_round", -1), "search.per_round: Input should be greater than 0"),
    (with_("search.ucb_kappa", -1.0), "search.ucb_kappa: Input should be greater than or equal to 0"),
    (with_("search.evaluate_seed", "yes"), "search.evaluate_seed: Input should be a valid boolean"),
    (with_("random_seed", -3), "random_seed: Input should be greater than or equal to 0"),
    (with_("evaluations", 2**62), "evaluations: Input should be less than or equal to 1000000"),
    (with_("random_seed", 2**64), "random_seed: Input should be less than or equal to"),
    (with_("devices.cpu.batch_size", 10**9), "devices.cpu.batch_size: Input should be less than or equal to"),
    (with_("search.moves", []), "search.moves: must name at least one move"),
    (with_("search.moves", ["scale", 3]), "search.moves[1]: Input should be a valid string"),
    (with_("reward", {"form": "product"}), "reward.form: Input should be 'penalty' or 'mnasnet' (got 'product')"),
    (with_("reward", {"accuracy_weight": 0}), "reward.accuracy_weight: Input should be greater than 0"),
    (with_("name", "a/b"), "name: must be a plain folder name"),
    (with_("name", "a" * 300), "name: must be at most 100 printable characters"),
    (with_("name", "a\x00b"), "name: must be at most 100 printable characters"),
    (with_("devices", {"a@b": {"time_model": "roofline"}}), "device name 'a@b' must be 1-64 letters, digits"),
    # a device name is a folder of the run: never a path out of it
    (with_("devices", {"../../x": {"time_model": "roofline"}}), "device name '../../x' must be 1-64 letters"),
    (with_("devices", {"/tmp/x": {"time_model": "roofline"}}), "device name '/tmp/x' must be 1-64 letters"),
    (with_("devices", {"all": {"time_model": "roofline"}}), "and not be 'all'"),
    (with_("devices", {"x" * 65: {"time_model": "roofline"}}), "must be 1-64 letters"),
    (with_("devices.cpu", 3), "devices.cpu: Input should be a valid dictionary"),
    (with_("strategy", {"name": "random", "options": 3}), "strategy.options: Input should be a valid dictionary"),
    # the mnasnet form raises a budget's value/limit ratio to weight x alpha (beta): 1e18 overflowed at the first
    # candidate scored (an OverflowError traceback, after the run folder was made)
    (
        with_("reward", {"form": "mnasnet", "mnasnet_beta": 1e18}),
        "devices.cpu.budgets.latency_ms: its weight 2 x the mnasnet exponent (reward.mnasnet_alpha, mnasnet_beta: "
        "-0.07, 1e+18) is a power of 2e+18, past the 10 the reward can hold",
    ),
    (
        with_("devices.cpu.budgets.latency_ms.weight", 500.0, with_("reward", {"form": "mnasnet"})),
        "devices.cpu.budgets.latency_ms: its weight 500 x the mnasnet exponent",
    ),
]


@pytest.mark.parametrize("doc, fragment", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_config_names_the_key(doc, fragment, tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(doc, base_dir=tmp_path)
    msg = str(info.value)
    assert fragment in msg
    assert "\n" not in msg  # one line from the CLI


def test_a_dotted_key_in_a_dict_or_overrides_is_told_to_go_inside_its_table(tmp_path):
    # a library user writes the TOML path as one key; the suggestion was built from the text before the key's
    # last dot ("Did you mean 'search.search'?")
    nested = "A key of table 'search' goes inside that table: {'search': {'per_round': ...}}"
    for doc, overrides in (({**GOOD, "search.per_round": 1}, None), (GOOD, {"search.per_round": 1})):
        with pytest.raises(ConfigError) as info:
            load_config(doc, overrides=overrides, base_dir=tmp_path)
        assert str(info.value) == f"search.per_round: unknown key. {nested}."
    # inside a table: the suggestion keeps the table's path
    with pytest.raises(ConfigError) as info:
        load_config(with_("devices.cpu.budgets", {"latency_ms.limit": 0.5}), base_dir=tmp_path)
    assert str(info.value).startswith(
        "devices.cpu.budgets.latency_ms.limit: unknown key. A key of table 'devices.cpu.budgets.latency_ms' goes "
        "inside that table: {'latency_ms': {'limit': ...}}."
    )
    with pytest.raises(ConfigError, match="overrides: a dict of top-level keys and their values, got list"):
        load_config(GOOD, overrides=[("evaluations", 3)], base_dir=tmp_path)


def test_numpy_scalars_in_a_dict_config_are_the_values_they_stand_for(tmp_path):
    # a sweep's np.int64 was "evaluations: Input should be a valid integer (got np.int64(3))"
    import numpy as np

    doc = with_("search.moves", np.array(["scale"]), with_("budgets.model_size_bytes", np.float32(16e6)))
    cfg = load_config(doc, overrides={"evaluations": np.int64(3), "random_seed": np.int32(7)}, base_dir=tmp_path)
    assert (cfg.evaluations, cfg.random_seed, cfg.search.moves) == (3, 7, ("scale",))
    stored = cfg.to_json()
    assert type(stored["evaluations"]) is int and stored["search"]["moves"] == ["scale"]
    json.dumps(stored)  # what the run store keeps


# Found while resolving: names against the registries, options against the components' models, files.
RESOLVE_BAD = [
    (with_("strategy.name", "evolutoin"), "strategy: unknown strategy 'evolutoin'. Did you mean 'evolution'"),
    (
        with_("predictors.accuracy", "ensemblee"),
        "predictors.accuracy: unknown predictor 'ensemblee'. Did you mean 'ensemble'",
    ),
    (with_("evaluator.name", "torh"), "evaluator: unknown evaluator 'torh'. Did you mean 'torch'"),
    (with_("executor", "lokal"), "executor: unknown executor 'lokal'. Did you mean 'local'"),
    (
        with_("devices.cpu.time_model", "rooflin"),
        "devices.cpu.time_model: unknown time model 'rooflin'. Did you mean 'roofline'",
    ),
    (with_("devices.cpu.measure", {"name": "onnxrt"}), "devices.cpu.measure: unknown time model 'onnxrt'"),
    (with_("seed_network", "simple_cnn"), "seed_network: unknown seed network 'simple_cnn'. Did you mean 'simple-cnn'"),
    (with_("seed_network", "missing.json"), "seed_network: file"),
    (with_("search.moves", ["scael"]), "search.moves: unknown move 'scael'. Did you mean 'scale'"),
    # component options, checked against each component's Options model before anything is paid
    (
        with_("devices.cpu.time_model", {"name": "roofline", "options": {"dtpye": "fp32"}}),
        "devices.cpu.time_model.options.dtpye: unknown key. Did you mean 'devices.cpu.time_model.options.dtype'",
    ),
    (
        with_("devices.cpu.time_model", {"name": "roofline", "options": {"dtype": "fp128"}}),
        "devices.cpu.time_model.options.dtype: Input should be",
    ),
    (
        with_("devices.cpu.measure", {"name": "onnxruntime", "options": {"intra_op_threads": -1}}),
        "devices.cpu.measure.options.intra_op_threads: Input should be greater than or equal to 0 (got -1)",
    ),
    (
        with_("devices.cpu.measure", {"name": "torch", "options": {"clock": "sundial"}}),
        "devices.cpu.measure.options.clock: Input should be",
    ),
    (with_("strategy.options", {"populaton": 3}), "strategy.options.populaton: unknown key"),
    (
        with_("strategy", {"name": "evolution", "options": {"population": 4, "sample": 9}}),
        "strategy.options: sample (9) must not exceed population (4)",
    ),
    (
        with_("strategy", {"name": "neural-architect", "options": {"gamma": 1.5}}),
        "strategy.options.gamma: Input should be less than or equal to 1 (got 1.5)",
    ),
    # a count past its bound hung the search (a walk of 1e18 moves, 1e18 episodes) after the run folder was made
    *(
        (with_("strategy", {"name": name, "options": {key: 10**18}}), f"strategy.options.{key}: Input should be less")
        for name, key in (
            ("random", "max_moves"),
            ("evolution", "oversample"),
            ("evolution", "tries"),
            ("neural-architect", "episodes"),
            ("neural-architect", "updates"),
            ("neural-architect", "episode_length"),
        )
    ),
    (with_("evaluator.options", {"epochs": 10**18}), "evaluator.options.epochs: Input should be less than or equal"),
    (with_("evaluator.options", {"seed": -1}), "evaluator.options.seed: Input should be greater than or equal to 0"),
    (
        with_("evaluator.options", {"epoch": 1}),
        "evaluator.options.epoch: unknown key. Did you mean 'evaluator.options.epochs'",
    ),
    (with_("evaluator.options", {"epochs": 0}), "evaluator.options.epochs: Input should be greater than or equal to 1"),
    (
        with_("evaluator.options", {"dataset": "other"}),
        "evaluator.options.dataset ('other') differs from dataset ('digits')",
    ),
    (
        with_("predictors.accuracy", {"name": "ensemble", "options": {"n_trees": 3}}),
        "predictors.accuracy.options.n_trees: unknown key",
    ),
    (
        with_("predictors.accuracy", {"name": "ensemble", "options": {"n_estimators": -5}}),
        "predictors.accuracy.options.n_estimators: Input should be greater than or equal to 1 (got -5)",
    ),
    (
        with_("predictors.accuracy", {"name": "random-forest", "options": {"max_features": 2.5}}),
        "predictors.accuracy.options.max_features: must be an int >= 1 or a float in (0, 1]",
    ),
    (
        with_("predictors.train_time_s", {"options": {"log_target": "yes"}}),
        "predictors.train_time_s.options.log_target",
    ),
    (
        with_("executor", {"name": "local", "options": {"workers": 0}}),
        "executor.options.workers: Input should be greater than or equal to 1 (got 0)",
    ),
    # every measurement failed on ONNX Runtime's int (a search that spent its budget, exit 0); a process pool
    # failed starting its first task, after the run folder was made
    (
        with_("devices.cpu.measure", {"name": "onnxruntime", "options": {"intra_op_threads": 10**18}}),
        "devices.cpu.measure.options.intra_op_threads: Input should be less than or equal to 1024",
    ),
    (
        with_("executor", {"name": "local", "options": {"workers": 10**18}}),
        "executor.options.workers: Input should be less than or equal to 1024",
    ),
    (  # was taken as it was (exit 0), whatever torch then made of it
        with_("executor", {"name": "local", "options": {"threads_per_worker": 10**18}}),
        "executor.options.threads_per_worker: Input should be less than or equal to 1024",
    ),
    (
        with_("executor", {"name": "local", "options": {"workers": True}}),
        "executor.options.workers: Input should be a valid integer",
    ),
]


@pytest.mark.parametrize("doc, fragment", RESOLVE_BAD, ids=[b[1][:40] for b in RESOLVE_BAD])
def test_bad_names_and_options_are_found_when_resolving(doc, fragment, tmp_path):
    cfg = load_config(doc, base_dir=tmp_path)  # the document itself is fine
    with pytest.raises(ConfigError) as info:
        resolve_config(cfg, default_toolkit())
    msg = str(info.value)
    assert fragment in msg
    assert "\n" not in msg


def test_bad_options_fail_before_a_run_folder_exists(tmp_path):
    # the case: `options = { n_estimators = -5 }` crashed with a scikit-learn traceback after paid
    # evaluations (and again on --resume); now the search stops before anything is paid or stored
    from na_toolkit.search import run_search

    doc = with_("predictors.accuracy", {"name": "ensemble", "options": {"n_estimators": -5}})
    doc["output"] = str(tmp_path / "runs")
    with pytest.raises(ConfigError, match=r"predictors\.accuracy\.options\.n_estimators"):
        run_search(doc, progress=False, outputs=False, toolkit=default_toolkit())
    assert not any((tmp_path / "runs").glob("*"))


@pytest.mark.parametrize(
    ("key", "make", "fragment"),
    [
        ("evaluator.options.dataset", "dataset", "an .npz file (np.savez"),
        ("dataset", "source", "a registered dataset's name, an image folder"),
        ("seed_network", "arch", "save it (arch.save('seed.json'))"),
        ("search.moves", "object", "what a TOML file can hold"),
    ],
)
def test_a_python_object_in_a_dict_config_is_refused_naming_its_key_before_a_run_folder_exists(
    tmp_path, key, make, fragment
):
    # a loaded Dataset in the torch evaluator's options (which make_evaluator accepts) passed the checks and
    # failed as the run store was created ("cannot store a Dataset in a checkpoint"), leaving a store with no
    # tables that `na-toolkit runs` listed as unreadable; an Architecture as seed_network said only "Input
    # should be a valid string"
    import numpy as np

    from na_toolkit.datasets import dataset_from_arrays
    from na_toolkit.search import run_search

    source = dataset_from_arrays("mine", np.random.default_rng(0).random((20, 1, 8, 8)), np.repeat([3, 7], 10))
    value = {
        "dataset": lambda: source.load(0),
        "source": lambda: source,
        "arch": lambda: default_toolkit().seed("simple-cnn"),
        "object": lambda: ["scale", object()],
    }[make]()
    doc = with_(key, value)
    doc["output"] = str(tmp_path / "runs")
    with pytest.raises(ConfigError) as info:
        run_search(doc, progress=False, outputs=False, toolkit=default_toolkit())
    msg = str(info.value)
    assert msg.startswith(key.replace("search.moves", "search.moves[1]") + ": ")
    assert "cannot be part of a search config" in msg and fragment in msg
    assert not (tmp_path / "runs").exists()


def test_a_path_object_is_read_as_its_string_anywhere_in_a_dict_config(tmp_path):
    hw = tmp_path / "gizmo.toml"
    hw.write_text(
        'schema_version = 1\nkind = "soc"\nvalues_are = "datasheet"\nabout = "made up"\n'
        "memory_bandwidth_bytes_per_s = 8e9\nmemory_capacity_bytes = 1_000_000_000\nlaunch_overhead_s = 2e-5\n"
        "[peak_flops_per_s]\nfp32 = 5e10\n"
    )
    doc = with_("devices.cpu.time_model.options.device", hw)
    cfg = resolve_config(load_config(doc, base_dir=tmp_path), default_toolkit())
    assert cfg.devices[0].time_model.options["device"] == str(hw)
    json.dumps(cfg.to_json())  # what the run store keeps


def test_a_budget_of_none_in_a_dict_config_is_no_budget(tmp_path):
    # `latency_ms: None` crashed with AttributeError: 'NoneType' object has no attribute 'hard'
    cfg = load_config(with_("devices.cpu.budgets.latency_ms", None), base_dir=tmp_path)
    assert [b.metric for b in cfg.budgets] == ["model_size_bytes"]


def test_a_config_the_store_cannot_hold_leaves_no_store_file(tmp_path):
    from na_toolkit.errors import StoreError
    from na_toolkit.store.sqlite import STORE_FILE, SQLiteRunStore

    with pytest.raises(StoreError, match="cannot store a object in a checkpoint"):
        SQLiteRunStore.create(tmp_path / STORE_FILE, "r", {"evaluator": {"options": {"dataset": object()}}})
    assert not (tmp_path / STORE_FILE).exists()


def test_seed_that_fails_validation(tmp_path):
    bad = {
        "schema_version": 1,
        "input_shape": [1, 8, 8],
        "nodes": [
            {"id": "c", "type": "conv2d", "attrs": {"filters": 4, "kernel": 3}, "inputs": ["input"]},
            {"id": "l", "type": "linear", "attrs": {"units": 10}, "inputs": ["nowhere"]},
        ],
    }
    (tmp_path / "seed.json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match=r"seed_network .*seed.json' is not a valid network: node 'l'.*dangling"):
        load_config(with_("seed_network", "seed.json"), base_dir=tmp_path, toolkit=default_toolkit())


def test_toml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
    (tmp_path / "broken.toml").write_text("evaluations = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "broken.toml")
    # a byte-order mark (what Notepad writes) was said as "Invalid statement (at line 1, column 1)"
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbf" + (EXAMPLES / "nb201-pixel3.toml").read_bytes())
    with pytest.raises(ConfigError, match="not valid TOML: it starts with a UTF-8 byte-order mark \\(BOM\\)"):
        load_config(tmp_path / "bom.toml")


# Errors found when the components are built (before anything runs or a run folder exists).
RUNTIME_BAD = [
    (
        with_("devices.cpu.time_model", {"name": "roofline", "options": {"device": "tpu-v9"}}),
        "devices.cpu.time_model (roofline on device 'tpu-v9')",
    ),
    (with_("devices.cpu.measure", {"name": "onnxruntime", "options": {"provider": "TensorRT"}}), "devices.cpu.measure"),
    (
        with_("devices.cpu.measure", {"name": "onnxruntime", "options": {"device": "tpu:0"}}),
        "devices.cpu.measure (onnxruntime on device 'tpu:0')",
    ),
    (with_("dataset", "digitz"), "unknown dataset 'digitz'"),
    (with_("executor", "ray"), "pip install 'na-toolkit[ray]'"),
    # a budget on a figure the device's time model does not give: found before the run, not at its first round
    (
        with_(
            "devices.cpu",
            {"time_model": {"name": "learned", "options": {"device": "example-cpu"}}, "budgets": {"energy_mj": 5.0}},
        ),
        "devices.cpu.budgets.energy_mj: the time model 'learned' of device 'cpu' gives no energy_mj here",
    ),
    # ... or the device's measuring model: ONNX Runtime on a CPU has no energy counter to read
    (
        with_(
            "devices.cpu",
            {
                "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
                "measure": {"name": "onnxruntime", "options": {"device": "cpu"}},
                "budgets": {"energy_mj": 5.0, "peak_memory_bytes": 1e9},
            },
        ),
        "devices.cpu.budgets.energy_mj: the measure 'onnxruntime' of device 'cpu' gives no energy_mj here (energy is "
        "read from an NVIDIA GPU's NVML counter, and this device is a CPU)",
    ),
]


@pytest.mark.parametrize("doc, fragment", RUNTIME_BAD, ids=[b[1][:40] for b in RUNTIME_BAD])
def test_bad_component_options_name_the_component(doc, fragment, tmp_path, monkeypatch):
    if fragment.startswith("pip install"):
        # Ray is installed here (make install): hide it, so `import ray` fails as where it is not installed
        monkeypatch.setitem(sys.modules, "ray", None)
    cfg = resolve_config(load_config(doc, base_dir=tmp_path), default_toolkit())
    with pytest.raises(ConfigError) as info:
        build_components(cfg, default_toolkit())
    assert fragment in str(info.value)
    assert not (tmp_path / "run").exists()


def test_an_energy_budget_on_a_hardware_model_without_power_says_to_add_it(tmp_path):
    shipped = (REPO_ROOT / "hwmodels" / "t4.toml").read_text()
    text = "\n".join(line for line in shipped.splitlines() if not line.startswith("power_w"))
    (tmp_path / "nopower.toml").write_text(text.replace('name = "t4"', 'name = "nopower"'))
    doc = with_(
        "devices.cpu",
        {"time_model": {"name": "roofline", "options": {"device": "nopower.toml"}}, "budgets": {"energy_mj": 5.0}},
    )
    cfg = resolve_config(load_config(doc, base_dir=tmp_path), default_toolkit())
    with pytest.raises(ConfigError) as info:
        build_components(cfg, default_toolkit())
    assert str(info.value).startswith(
        "devices.cpu.budgets.energy_mj: the time model 'roofline' of device 'cpu' gives no energy_mj here (its "
        f"hardware model 'nopower' has no power_w: add power_w = WATTS to {str(tmp_path / 'nopower.toml')!r})"
    )


def test_a_registered_seed_is_built_for_the_searchs_own_data_and_a_seed_file_is_not(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", x=rng.random((60, 3, 12, 12)).astype(np.float32), y=np.arange(60) % 3)
    doc = with_("dataset", "mine.npz")
    components = build_components(
        resolve_config(load_config(doc, base_dir=tmp_path), default_toolkit()), default_toolkit()
    )
    components.close()
    built = default_toolkit().seeds.get("simple-cnn").build_for(default_toolkit().layer_types, (3, 12, 12), 3)
    assert components.seed_arch.input_shape == (3, 12, 12) and components.seed_arch.output_shape == (3,)
    assert components.seed_arch.hash == built.hash  # as `na-toolkit evaluate simple-cnn --dataset mine.npz` builds it
    # a network file is the user's own: used as it is, and one that does not fit the data is refused
    default_toolkit().seed("simple-cnn").save(tmp_path / "seed.json")
    cfg = resolve_config(load_config(with_("seed_network", "seed.json", doc), base_dir=tmp_path), default_toolkit())
    with pytest.raises(ConfigError, match=r"takes input shape \(1, 8, 8\) but dataset .mine. has input shape \(3, 12"):
        build_components(cfg, default_toolkit())


def test_a_seed_built_for_one_shape_that_misfits_the_data_names_the_seeds_built_for_it(tmp_path):
    cfg = load_config(with_("seed_network", "mobilenetv3-small"), base_dir=tmp_path)
    with pytest.raises(ConfigError) as info:
        build_components(resolve_config(cfg, default_toolkit()), default_toolkit())
    message = str(info.value)
    assert message.startswith("evaluator 'torch' cannot evaluate seed_network 'mobilenetv3-small' on dataset 'digits'")
    assert "the seed is built for one input shape" in message and "simple-cnn, resnet-cifar" in message


def test_the_evaluators_default_dataset_is_not_named_none(tmp_path):
    cfg = load_config(with_("seed_network", "mobilenetv3-small", with_("dataset", DELETE)), base_dir=tmp_path)
    with pytest.raises(ConfigError, match="on its default dataset: "):
        build_components(resolve_config(cfg, default_toolkit()), default_toolkit())


def test_a_seed_that_cannot_be_built_for_the_data_is_a_config_error_naming_both(tmp_path):
    import types

    import numpy as np

    import na_toolkit
    from na_toolkit.errors import ShapeError
    from na_toolkit.ir.seeds import Seed
    from na_toolkit.plugins import load_toolkit

    def build(layer_types, input_shape=(1, 8, 8), classes=10):
        if input_shape[1] < 8:
            raise ShapeError(f"needs images of 8x8 or more, got {input_shape}")
        return default_toolkit().seeds.get("simple-cnn").build(layer_types, input_shape=input_shape, classes=classes)

    plugin = types.ModuleType("big_seed_plugin")
    plugin.na_register_seeds = na_toolkit.hookimpl(lambda registry: registry.add(Seed("big-only", "8x8+", build)))
    toolkit = load_toolkit(entry_points=False, extra_plugins=(plugin,))
    np.savez(tmp_path / "tiny.npz", x=np.zeros((30, 3, 4, 4), np.float32), y=np.arange(30) % 3)
    cfg = load_config(with_("seed_network", "big-only", with_("dataset", "tiny.npz")), base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"seed_network: 'big-only' cannot be built for dataset 'tiny' .*8x8 or more"):
        build_components(resolve_config(cfg, toolkit), toolkit)


def test_a_dataset_too_small_to_split_is_refused_before_the_run_not_once_per_evaluation(tmp_path):
    import numpy as np

    # 4 samples of 2 classes: the stratified split leaves no validation sample, so every evaluation would fail
    np.savez(tmp_path / "four.npz", x=np.zeros((4, 1, 8, 8), np.float32), y=np.array([0, 1, 0, 1]))
    cfg = resolve_config(load_config(with_("dataset", "four.npz"), base_dir=tmp_path), default_toolkit())
    with pytest.raises(ConfigError) as err:
        build_components(cfg, default_toolkit())
    assert str(err.value) == (
        "evaluator 'torch' cannot evaluate seed_network 'simple-cnn' on dataset "
        f"'{tmp_path / 'four.npz'}': dataset 'four' (4 samples): its validation split is empty; each of its 2 "
        "classes has at most 2 samples, and a class gives the validation split one only from its third (one goes "
        "to test first); give more samples per class (or test_fraction = 0)"
    )
    assert not (tmp_path / "runs").exists()


def test_a_data_file_given_as_the_seed_network_is_named_as_such(tmp_path):
    (tmp_path / "mine.npz").write_bytes(b"not a network")
    with pytest.raises(ConfigError, match=r"seed_network: 'mine.npz' is a .npz file, not a network; give an IR .json"):
        resolve_config(load_config(with_("seed_network", "mine.npz"), base_dir=tmp_path), default_toolkit())


def test_cli_bad_config_is_one_line_exit_2(tmp_path):
    (tmp_path / "c.toml").write_text('seed_network = "simple-cnn"\nevaluations = 2\n[strategy]\nnmae = "random"\n')
    p = subprocess.run(
        [sys.executable, "-m", "na_toolkit.cli.main", "search", str(tmp_path / "c.toml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1] == (
        "na-toolkit: error: strategy.nmae: unknown key. Did you mean 'strategy.name'?"
    )


def test_demo_config_is_the_shipped_example():
    # the demo embeds its config for installs without examples/; both must describe the same search
    import tomllib

    from na_toolkit.search.demo import DEMO_TOML

    example = load_config(EXAMPLES / "demo.toml").to_json()
    embedded = load_config(tomllib.loads(DEMO_TOML), base_dir=EXAMPLES).to_json()
    example.pop("output"), embedded.pop("output")
    assert embedded == example


def _bare_components_toolkit():
    """A plugin whose strategy, executor and evaluator are written like the docs' examples: no Options model
    and no __init__ of their own (the base classes' **options)."""
    import types

    import na_toolkit
    from na_toolkit.evaluation.base import Evaluator
    from na_toolkit.plugins import load_toolkit
    from na_toolkit.search.executors import Executor
    from na_toolkit.search.strategy import Strategy

    plugin = types.ModuleType("bare_components_plugin")
    strategy = type("BareStrategy", (Strategy,), {"name": "bare-strategy"})
    executor = type("BareExecutor", (Executor,), {"name": "bare-executor"})
    evaluator = type("BareEvaluator", (Evaluator,), {"name": "bare-evaluator"})
    plugin.na_register_strategies = na_toolkit.hookimpl(lambda registry: registry.add(strategy))
    plugin.na_register_executors = na_toolkit.hookimpl(lambda registry: registry.add(executor))
    plugin.na_register_evaluators = na_toolkit.hookimpl(lambda registry: registry.add(evaluator))
    return load_toolkit(entry_points=False, extra_plugins=(plugin,))


@pytest.mark.parametrize(
    "key, component, message",
    [
        (
            "strategy",
            {"name": "bare-strategy", "options": {"bogus": 1}},
            "strategy.options.bogus: unknown key. It takes no options: leave them out.",
        ),
        (
            "executor",
            {"name": "bare-executor", "options": {"workerz": 2}},
            "executor.options.workerz: unknown key. It takes no options: leave them out.",
        ),
        (
            "evaluator",
            {"name": "bare-evaluator"},
            "dataset: evaluator 'bare-evaluator' takes no dataset option; leave `dataset` out",
        ),
    ],
)
def test_a_plugin_component_without_options_refuses_them_in_a_config(tmp_path, key, component, message):
    toolkit = _bare_components_toolkit()
    with pytest.raises(ConfigError) as info:
        resolve_config(load_config(with_(key, component), base_dir=tmp_path), toolkit)
    assert str(info.value) == message
    # without the options (and the dataset) the same components are accepted
    doc = with_(key, {"name": component["name"]})
    if key == "evaluator":
        doc = with_("dataset", DELETE, doc)
    assert resolve_config(load_config(doc, base_dir=tmp_path), toolkit).resolved


def test_an_unannotated_option_is_checked_by_its_defaults_type_when_the_config_is_read(tmp_path):
    import types

    import na_toolkit
    from na_toolkit.plugins import load_toolkit
    from na_toolkit.search.strategy import Strategy

    class ShrinkStrategy(Strategy):
        name = "shrink-strategy"

        def __init__(self, context, shrink=0.0):
            super().__init__(context, shrink=shrink)

    plugin = types.ModuleType("shrink_plugin")
    plugin.na_register_strategies = na_toolkit.hookimpl(lambda registry: registry.add(ShrinkStrategy))
    toolkit = load_toolkit(entry_points=False, extra_plugins=(plugin,))
    bad = with_("strategy", {"name": "shrink-strategy", "options": {"shrink": "abc"}})
    with pytest.raises(ConfigError, match=r"^strategy\.options\.shrink: Input should be a valid number.*'abc'\)$"):
        resolve_config(load_config(bad, base_dir=tmp_path), toolkit)
    good = with_("strategy", {"name": "shrink-strategy", "options": {"shrink": 1}})
    assert resolve_config(load_config(good, base_dir=tmp_path), toolkit).strategy.options == {"shrink": 1}
