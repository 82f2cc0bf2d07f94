"""The input kinds of `na-toolkit bench fuzz`: how each gets its valid files (written by the CLI itself), how a
case mutates them, which command reads the result, and the mutations that are invalid by construction."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fuzz_cases import Mutant, Targeted, byte_mutation, document_mutation, mutate_onnx, mutate_store, mutate_text

#: runs a setup command (`na-toolkit ARGV` in the kind's base folder) and gives its stdout
SetupCLI = Callable[[list[str]], str]

#: a NAS-Bench-201 search small enough to run per case (each evaluation a table look-up)
SEARCH_CONFIG = """\
name = "fuzz"
seed_network = "nb201"
dataset = "c10"
evaluations = 4
random_seed = 0

[search]
per_round = 2
moves = ["set_edge_op"]

[strategy]
name = "evolution"

[evaluator]
name = "nb201-table"

[predictors]
accuracy = { name = "bayesian-ridge" }

[devices.pixel3]
device = "lat_pixel3"
time_model = "nb201-table"

[devices.pixel3.budgets]
latency_ms = { limit = 10.0, hard = true }
"""


@dataclass(frozen=True)
class Case:
    argv: list[str]
    mutation: str
    invalid: bool


@dataclass(frozen=True)
class FuzzKind:
    name: str
    command: str
    setup: Callable[[Path, SetupCLI], Any]
    make_case: Callable[[random.Random, int, Path, Any], Case]
    #: an evaluator the kind's files need (a plugin's), or None
    needs_plugin: str | None = None


def write_input(folder: Path, filename: str, mutant: Mutant) -> Path:
    """The mutated input as a file in the case folder (or /dev/zero, a FIFO, a folder)."""
    path = folder / filename
    if mutant.special == "dev_zero":
        return Path("/dev/zero")
    if mutant.special == "fifo":
        os.mkfifo(path)
    elif mutant.special == "directory":
        path.mkdir()
    else:
        path.write_bytes(mutant.data)
    return path


def _set(path: tuple[Any, ...], *values: Any) -> Targeted:
    """A targeted mutation setting the value at `path` (string keys, int indices) to one of `values`."""

    def mutate(doc: Any, rng: random.Random) -> str:
        value = rng.choice(values)
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return f"{'.'.join(map(str, path))}={_short(value)}"

    return mutate


def _delete(*path: Any) -> Targeted:
    def mutate(doc: Any, rng: random.Random) -> str:
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return f"delete:{'.'.join(map(str, path))}"

    return mutate


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)} chars)"


SCHEMA_VERSIONS = (True, False, 2, 0, -1, 1.0, "1", None)


# ---- architecture JSON ----------------------------------------------------------------------------------
ARCH_SEEDS = ("simple-cnn", "resnet-cifar")


def _arch_setup(folder: Path, cli: SetupCLI) -> dict[str, Any]:
    files = {}
    for seed in ARCH_SEEDS:
        cli(["arch", "export", seed, "--onnx", str(folder / f"{seed}.onnx")])
        cli(["arch", "import", str(folder / f"{seed}.onnx"), "--out", str(folder / f"{seed}.json")])
        files[seed] = ((folder / f"{seed}.json").read_bytes(), (folder / f"{seed}.onnx").read_bytes())
    return files


def _conv_attr(name: str, *values: Any) -> Targeted:
    def mutate(doc: Any, rng: random.Random) -> str:
        convs = [n for n in doc["nodes"] if n["type"] == "conv2d"]
        node = rng.choice(convs)
        value = rng.choice(values)
        node.setdefault("attrs", {})[name] = value
        return f"conv.{name}={_short(value)}"

    return mutate


def _arch_graph(doc: Any, rng: random.Random) -> str:
    nodes = doc["nodes"]
    choice = rng.randrange(5)
    if choice == 0:
        rng.choice(nodes)["type"] = "fuzz_unknown_layer"
        return "unknown_layer_type"
    if choice == 1:
        rng.choice(nodes)["inputs"] = ["fuzz_missing"]
        return "dangling_input"
    if choice == 2:
        nodes[1]["id"] = nodes[0]["id"]
        return "duplicate_id"
    if choice == 3:
        nodes[0]["inputs"] = [nodes[-1]["id"]]
        return "cycle"
    doc["output"] = "fuzz_missing"
    return "dangling_output"


ARCH_TARGETED: list[Targeted] = [
    _set(("schema_version",), *SCHEMA_VERSIONS),
    _set(("input_shape",), [1, 10**9, 10**9], [3, -32, 32], [3, 0, 32], [], [True, 32, 32], [3, 2**31, 2**31]),
    _conv_attr("filters", -5, 0, 10**12, True, 2.5, "x", None),
    _conv_attr("kernel", 0, -3, 10**9),
    _conv_attr("stride", 0, -1),
    _set(("fuzz_unknown_field",), 1),
    _arch_graph,
]


def _arch_case(rng: random.Random, i: int, folder: Path, base: dict[str, Any]) -> Case:
    data = base[ARCH_SEEDS[i % len(ARCH_SEEDS)]][0]
    mutant = mutate_text(rng, data, "json", ARCH_TARGETED, frozenset({("schema_version",)}))
    path = write_input(folder, "arch.json", mutant)
    if i % 2:
        argv = ["arch", "export", str(path), "--onnx", str(folder / "out.onnx")]
    else:
        argv = ["arch", "show", str(path), "--json"]
    return Case(argv, mutant.mutation, mutant.invalid)


# ---- ONNX -----------------------------------------------------------------------------------------------
def _onnx_case(rng: random.Random, i: int, folder: Path, base: dict[str, Any]) -> Case:
    mutant = mutate_onnx(rng, base[ARCH_SEEDS[i % len(ARCH_SEEDS)]][1])
    path = write_input(folder, "model.onnx", mutant)
    if i % 2:
        argv = ["arch", "show", str(path), "--json"]
    else:
        argv = ["arch", "import", str(path), "--out", str(folder / "out.json")]
    return Case(argv, mutant.mutation, mutant.invalid)


# ---- search config --------------------------------------------------------------------------------------
def _config_setup(folder: Path, cli: SetupCLI) -> bytes:
    (folder / "search.toml").write_text(SEARCH_CONFIG)
    cli(["search", str(folder / "search.toml"), "--no-progress", "--output", str(folder / "runs")])
    return SEARCH_CONFIG.encode()


def _rename_device(doc: Any, rng: random.Random) -> str:
    name = rng.choice(["../../x", "/abs", "all", "", "a" * 300, "a\x00b", "a/b"])
    doc["devices"][name] = doc["devices"].pop("pixel3")
    return f"device_name={_short(name)}"


CONFIG_TARGETED: list[Targeted] = [
    _set(("evaluations",), -1, 0, 2**62, 1.5, "4", True, 10**30),
    _set(("random_seed",), -1, 2**64, 0.5, False),
    _set(("search", "per_round"), 0, -3, 2**40, True),
    _set(("name",), "x" * 300, "a\x00b", "", "../x"),
    _set(("evaluationz",), 4),
    _set(("strategy", "name"), "fuzz-nope", 3),
    _set(("evaluator", "name"), "fuzz-nope", ""),
    _set(("seed_network",), "fuzz-nope", 7),
    _set(("devices", "pixel3", "budgets", "latency_ms", "limit"), -1.0, 0.0, "fast", True),
    _set(("search", "moves"), ["fuzz_nope"], "set_edge_op", []),
    _delete("evaluations"),
    _rename_device,
]


def _config_case(rng: random.Random, i: int, folder: Path, base: bytes) -> Case:
    mutant = mutate_text(rng, base, "toml", CONFIG_TARGETED, frozenset({("evaluations",), ("name",)}))
    path = write_input(folder, "search.toml", mutant)
    argv = ["search", str(path), "--no-progress", "--json", "--output", str(folder / "runs")]
    return Case(argv, mutant.mutation, mutant.invalid)


# ---- hardware model -------------------------------------------------------------------------------------
HW_MODEL = "x86-cpu"


def _hw_setup(folder: Path, cli: SetupCLI) -> bytes:
    source = json.loads(cli(["hw", "show", HW_MODEL, "--json"]))["source"]
    return Path(source).read_bytes()


HW_TARGETED: list[Targeted] = [
    _set(("schema_version",), *(v for v in SCHEMA_VERSIONS if v is not None)),
    _set(("memory_bandwidth_bytes_per_s",), -1.0, 0.0, float("nan"), float("inf"), True, "fast"),
    _set(("peak_flops_per_s", "fp32"), -1.0, 0.0, float("nan"), float("inf"), False),
    _set(("launch_overhead_s",), -1e-6, float("nan"), float("inf")),
    _set(("memory_capacity_bytes",), -1, 0, 1.5),
    _set(("kind",), "fuzz", 3),
    _set(("values_are",), "fuzz"),
    _set(("name",), "other-name", "a\x00b"),
    _delete("memory_bandwidth_bytes_per_s"),
    _delete("peak_flops_per_s"),
]


def _hw_case(rng: random.Random, i: int, folder: Path, base: bytes) -> Case:
    mutant = mutate_text(rng, base, "toml", HW_TARGETED, frozenset({("schema_version",)}))
    path = write_input(folder, f"{HW_MODEL}.toml", mutant)
    return Case(["hw", "show", str(path), "--json"], mutant.mutation, mutant.invalid)


# ---- device profile -------------------------------------------------------------------------------------
def _profile_setup(folder: Path, cli: SetupCLI) -> bytes:
    out = folder / "profile.json"
    cli(
        ["profile", "--out", str(out), "--samples", "3", "--quick", "--adaptive-rounds", "0", "--max-moves", "2"]
        + ["--no-progress", "--seed-net", "simple-cnn", "--time-budget-s", "60"]
    )
    return out.read_bytes()


def _kernel_measurement(value: Any) -> Targeted:
    def mutate(doc: Any, rng: random.Random) -> str:
        record = rng.choice(doc["kernels"] + doc["networks"])
        record["measurement"]["median_ms"] = value
        return f"measurement.median_ms={_short(value)}"

    return mutate


def _network_shape(doc: Any, rng: random.Random) -> str:
    shape = rng.choice([[1, 10**9, 10**9], [3, -32, 32], "x"])
    rng.choice(doc["networks"] + doc["kernels"])["arch"]["input_shape"] = shape
    return f"record.arch.input_shape={shape}"


PROFILE_TARGETED: list[Targeted] = [
    _set(("schema_version",), *SCHEMA_VERSIONS),
    _set(("plan", "samples"), 10**9, -1, "many", 2**63),
    _set(("plan", "max_moves"), -1, 10**9, 0),
    _set(("plan", "threads"), 0, 10**6, -2),
    _set(("plan", "adaptive_rounds"), -1, 10**9),
    _set(("batch_size",), 0, -1, 10**9, True),
    _set(("complete",), "yes", 1),
    _set(("kernels",), "none", {}),
    _kernel_measurement(-1.0),
    _kernel_measurement(float("nan")),
    _kernel_measurement("fast"),
    _network_shape,
    _delete("plan"),
    _delete("kernels"),
]


def _profile_case(rng: random.Random, i: int, folder: Path, base: bytes) -> Case:
    mutant = mutate_text(rng, base, "json", PROFILE_TARGETED, frozenset({("schema_version",)}))
    path = write_input(folder, "profile.json", mutant)
    if i % 5 == 4:  # the learned time model fitted from the profile, in a search
        config = folder / "search.toml"
        learned = f'{{ name = "learned", options = {{ device = {json.dumps(str(path))} }} }}'
        device = f'\n[devices.cpu]\ndevice = "cpu"\ntime_model = {learned}\n'
        config.write_text(SEARCH_CONFIG + device)
        argv = ["search", str(config), "--no-progress", "--json", "--output", str(folder / "runs")]
    else:
        argv = ["profile", "--resume", "--out", str(path), "--quick", "--no-progress", "--time-budget-s", "2"]
    return Case(argv, mutant.mutation, mutant.invalid)


# ---- saved predictor and predict fit --data -------------------------------------------------------------
PREDICT_ARCH = "nb201:7"


def _predictor_setup(folder: Path, cli: SetupCLI) -> tuple[bytes, bytes]:
    out = folder / "predictor.json"
    cli(
        ["predict", "fit", "--train", "30", "--predictor", "random-forest", "--param", "n_estimators=20"]
        + ["--out", str(out)]
    )
    specs = [f"nb201:{k}" for k in range(1, 40, 3)]
    rows = json.loads(cli(["predict", *specs, "--model", str(out), "--json"]))["predictions"]
    data = "".join(json.dumps({"arch": r["arch"], "acc": r["mean"]}) + "\n" for r in rows)
    return out.read_bytes(), data.encode()


PREDICTOR_TARGETED: list[Targeted] = [
    _set(("schema_version",), *SCHEMA_VERSIONS),
    _set(("params", "n_estimators"), 10**7, -1, 0, "x", 2.5),
    _set(("predictor",), "fuzz-nope", "", "a\x00b", "x" * 300),
    _set(("kind",), "other"),
    _set(("n_train",), -1, "x"),
    _set(("state",), {}, [], "x"),
    _delete("state"),
]
DATA_TARGETED: list[tuple[str, Any]] = [
    ("acc", "x"),
    ("acc", float("nan")),
    ("acc", float("inf")),
    ("acc", True),
    ("acc", None),
    ("arch", "fuzz-nope"),
    ("arch", 123),
    ("arch", {"schema_version": True}),
]


def _data_mutation(rng: random.Random, data: bytes) -> Mutant:
    lines = data.decode().splitlines()
    n = rng.randrange(len(lines))
    record = json.loads(lines[n])
    roll = rng.random()
    if roll < 0.35:
        return byte_mutation(rng, data, "jsonl")
    if roll < 0.7:
        line = document_mutation(rng, record, "json")
        lines[n] = line.data.decode()
        return Mutant(f"line{n}:{line.mutation}", ("\n".join(lines) + "\n").encode(), invalid=line.invalid)
    key, value = rng.choice(DATA_TARGETED)
    record[key] = value
    lines[n] = json.dumps(record)
    return Mutant(f"line{n}:{key}={_short(value)}", ("\n".join(lines) + "\n").encode())


def _predictor_case(rng: random.Random, i: int, folder: Path, base: tuple[bytes, bytes]) -> Case:
    if i % 3 == 2:
        mutant = _data_mutation(rng, base[1])
        path = write_input(folder, "data.jsonl", mutant)
        argv = ["predict", "fit", "--data", str(path), "--target", "acc", "--predictor", "bayesian-ridge"]
        return Case([*argv, "--out", str(folder / "out.json")], mutant.mutation, mutant.invalid)
    mutant = mutate_text(rng, base[0], "json", PREDICTOR_TARGETED, frozenset({("schema_version",)}))
    path = write_input(folder, "predictor.json", mutant)
    return Case(["predict", PREDICT_ARCH, "--model", str(path), "--json"], mutant.mutation, mutant.invalid)


# ---- run store ------------------------------------------------------------------------------------------
def _store_setup(folder: Path, cli: SetupCLI) -> Path:
    (folder / "search.toml").write_text(SEARCH_CONFIG.replace("evaluations = 4", "evaluations = 8"))
    cli(["search", str(folder / "search.toml"), "--no-progress", "--output", str(folder / "runs")])
    (run,) = (folder / "runs").iterdir()
    return run / "store.sqlite"


def _store_case(rng: random.Random, i: int, folder: Path, base: Path) -> Case:
    run = folder / "run"
    run.mkdir()
    shutil.copyfile(base, run / "store.sqlite")
    mutation, invalid = mutate_store(rng, run / "store.sqlite")
    argv = [
        ["report", str(run), "--json"],
        ["export", str(run), "--device", "pixel3", "--format", "onnx", "--out", str(folder / "out.onnx")],
        ["search", "--resume", str(run), "--no-progress", "--json"],
    ][i % 3]
    return Case(argv, mutation, invalid)


KINDS: dict[str, FuzzKind] = {
    k.name: k
    for k in (
        FuzzKind("architecture", "arch show FILE --json | arch export FILE --onnx OUT", _arch_setup, _arch_case),
        FuzzKind("onnx", "arch import MODEL --out OUT | arch show MODEL --json", _arch_setup, _onnx_case),
        FuzzKind("search_config", "search CONFIG --json", _config_setup, _config_case, "nb201-table"),
        FuzzKind("hardware_model", "hw show FILE --json", _hw_setup, _hw_case),
        FuzzKind(
            "device_profile",
            "profile --resume --out FILE | search with a learned time model of FILE",
            _profile_setup,
            _profile_case,
            "nb201-table",
        ),
        FuzzKind(
            "predictor",
            "predict ARCH --model FILE | predict fit --data FILE",
            _predictor_setup,
            _predictor_case,
            "nb201-table",
        ),
        FuzzKind(
            "run_store",
            "report RUN | export RUN --device D | search --resume RUN",
            _store_setup,
            _store_case,
            "nb201-table",
        ),
    )
}
