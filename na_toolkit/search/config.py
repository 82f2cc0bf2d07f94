"""The search configuration (`na-toolkit search CONFIG.toml`), parsed and validated strictly.

Every problem raises `ConfigError` naming the key (dotted, e.g. `devices.cpu.budgets.latency_ms`) and the
value: unknown keys (with the close matches), missing fields, wrong types, zero or negative budgets, unknown
components (strategy, predictor, evaluator, executor, time model, seed network, move), a seed network that
fails validation. docs/search.md documents the format with a complete example.

A config is a TOML file, a dict of the same shape, or a `SearchConfig`; relative paths inside a file are
resolved against the file's folder.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, NAToolkitError, UnknownComponentError
from .reward import DEVICE_METRICS, FORMS, GLOBAL_METRICS, Budget, Objectives, device_metric

DEFAULT_STRATEGY = "neural-architect"
DEFAULT_EVALUATOR = "torch"
DEFAULT_EXECUTOR = "local"
#: option keys whose string values name files, resolved against the config file's folder when they exist
PATH_OPTIONS = ("device", "profile", "table", "path", "hardware", "dataset", "file")


# ---- the parsed configuration --------------------------------------------------------------------------
@dataclass(frozen=True)
class Component:
    """A registered component by name and the keyword options to build it with."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "options": copy.deepcopy(self.options)}


@dataclass(frozen=True)
class DeviceSpec:
    """One target device: the time model that scores candidates on it, optionally a measuring time model
    for the ground truth of evaluated candidates, and its budgets (metrics written `metric@name`)."""

    name: str
    device: str
    batch_size: int
    time_model: Component
    measure: Component | None
    budgets: tuple[Budget, ...]

    def time_model_options(self, which: str = "time_model") -> dict[str, Any]:
        comp = self.time_model if which == "time_model" else self.measure
        assert comp is not None
        return {"device": self.device, **comp.options}


@dataclass(frozen=True)
class SearchSettings:
    per_round: int = 4
    ucb_kappa: float = 1.0
    evaluate_seed: bool = True
    max_stalled_rounds: int = 3
    min_fit: int = 3
    moves: tuple[str, ...] | None = None
    keep_weights: bool = True
    #: drop proposals that break a hard budget known before evaluation (model size; a device's metric whose
    #: time model runs nothing and decides feasibility itself) and ask the strategy again for others
    screen_hard_budgets: bool = True


@dataclass(frozen=True)
class SearchConfig:
    name: str
    seed_network: str
    dataset: str | None
    evaluations: int
    random_seed: int
    output: Path
    search: SearchSettings
    strategy: Component
    evaluator: Component
    predictors: dict[str, Component]
    executor: Component
    objectives: Objectives
    global_budgets: tuple[Budget, ...]
    devices: tuple[DeviceSpec, ...]
    #: the validated document (paths resolved): what the run store keeps and `--resume` reloads
    doc: dict[str, Any]

    @property
    def budgets(self) -> tuple[Budget, ...]:
        """Every budget: the global ones, then each device's."""
        return self.global_budgets + tuple(b for d in self.devices for b in d.budgets)

    def device(self, name: str) -> DeviceSpec:
        for d in self.devices:
            if d.name == name:
                return d
        raise ConfigError(_unknown("device", name, [d.name for d in self.devices]))

    def needs(self, metric: str) -> bool:
        """Does any budget limit `metric` (e.g. `train_time_s`)?"""
        return any(b.metric == metric for b in self.budgets)

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(self.doc)


# ---- schema --------------------------------------------------------------------------------------------
TOP_KEYS = {
    "name": str, "seed_network": str, "dataset": str, "evaluations": int, "random_seed": int, "output": str,
    "search": dict, "strategy": (str, dict), "evaluator": (str, dict), "predictors": dict, "executor": (str, dict),
    "reward": dict,
    "budgets": dict, "devices": dict,
}
REQUIRED_TOP = ("seed_network", "evaluations")
SEARCH_KEYS = {
    "per_round": int, "ucb_kappa": float, "evaluate_seed": bool, "max_stalled_rounds": int, "min_fit": int,
    "moves": list, "keep_weights": bool, "screen_hard_budgets": bool,
}
COMPONENT_KEYS = {"name": str, "options": dict}
REWARD_KEYS = {
    "form": str, "accuracy_weight": float, "hard": bool, "mnasnet_alpha": float, "mnasnet_beta": float,
    "infeasible_reward": float,
}
BUDGET_KEYS = {"limit": float, "weight": float, "hard": bool}
DEVICE_KEYS = {"device": str, "batch_size": int, "time_model": (str, dict), "measure": (str, dict), "budgets": dict}
PREDICTOR_TARGETS = ("accuracy", "train_time_s")


def _unknown(kind: str, name: str, known: list[str]) -> str:
    return str(UnknownComponentError(kind, name, known))  # the registries' wording, close matches included


def _type_name(t: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table",
             list: "a list"}
    if isinstance(t, tuple):
        return " or ".join(names[x] for x in t)
    return names[t]


def _check_type(key: str, value: Any, t: Any) -> Any:
    types = t if isinstance(t, tuple) else (t,)
    for want in types:
        if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
            return float(value)
        if want is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if want in (str, bool, dict, list) and isinstance(value, want):
            return value
    raise ConfigError(f"config key {key!r} must be {_type_name(t)}, got {value!r}")


def _check_keys(where: str, table: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    for key in table:
        if key not in schema:
            full = f"{where}.{key}" if where else key
            close = difflib.get_close_matches(key, list(schema), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(f'{where}.{c}' if where else c) for c in close)}?" if close else ""
            raise ConfigError(f"unknown config key {full!r}.{hint} Known here: {', '.join(schema)}")


def _table(where: str, value: Any, schema: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key {where!r} must be a table, got {value!r}")
    _check_keys(where, value, schema)
    return {k: _check_type(f"{where}.{k}" if where else k, v, schema[k]) for k, v in value.items()}


def _positive(key: str, value: float | int) -> None:
    if value <= 0:
        raise ConfigError(f"config key {key!r} must be > 0, got {value!r}")


def _resolve_paths(options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    out = dict(options)
    for key in PATH_OPTIONS:
        value = out.get(key)
        if base_dir is not None and isinstance(value, str) and not os.path.isabs(value):
            candidate = base_dir / value
            if candidate.exists() and (os.sep in value or Path(value).suffix):
                out[key] = str(candidate.resolve())
    return out


def _component(key: str, value: Any, default: str | None, registry: Any, base_dir: Path | None) -> Component:
    """A component given as a name or as a table {name, options}."""
    if value is None:
        if default is None:
            raise ConfigError(f"config key {key!r} is missing")
        name, options = default, {}
    elif isinstance(value, str):
        name, options = value, {}
    else:
        t = _table(key, value, COMPONENT_KEYS)
        if "name" not in t:
            if default is None:
                raise ConfigError(f"config key {key + '.name'!r} is missing")
            t["name"] = default
        name, options = t["name"], t.get("options", {})
    if registry is not None and name not in registry:
        raise ConfigError(f"{key}: " + _unknown(registry.kind, name, registry.names()))
    return Component(name, _resolve_paths(dict(options), base_dir))


def _budget(key: str, metric: str, value: Any, all_hard: bool) -> Budget:
    if isinstance(value, Mapping):
        t = _table(key, value, BUDGET_KEYS)
        if "limit" not in t:
            raise ConfigError(f"config key {key + '.limit'!r} is missing")
    else:
        t = {"limit": _check_type(key, value, float)}
    _positive(key if not isinstance(value, Mapping) else f"{key}.limit", t["limit"])
    weight = t.get("weight", 1.0)
    if weight < 0:
        raise ConfigError(f"config key {key + '.weight'!r} must be >= 0, got {weight!r}")
    return Budget(metric, t["limit"], weight, t.get("hard", all_hard))


# ---- loading -------------------------------------------------------------------------------------------
def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None


def load_config(
    source: str | os.PathLike | Mapping[str, Any] | SearchConfig,
    overrides: Mapping[str, Any] | None = None,
    toolkit: Any = None,
    base_dir: str | os.PathLike | None = None,
) -> SearchConfig:
    """Parse and validate a config (TOML path, dict or SearchConfig). `overrides` replace top-level keys
    (the CLI's --evaluations, --output, --seed)."""
    if isinstance(source, SearchConfig):
        if not overrides:
            return source
        source = source.doc
    if isinstance(source, (str, os.PathLike)):
        doc = read_config_file(source)
        base = Path(source).resolve().parent
    elif isinstance(source, Mapping):
        doc = copy.deepcopy(dict(source))
        base = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    else:
        raise ConfigError(f"a search config is a TOML path, a dict or a SearchConfig, got {type(source).__name__}")
    for key, value in (overrides or {}).items():
        if value is not None:
            doc[key] = value
    if toolkit is None:
        from ..plugins import get_toolkit

        toolkit = get_toolkit()
    return _parse(doc, base, toolkit)


def _parse(doc: dict[str, Any], base: Path, tk: Any) -> SearchConfig:
    top = _table("", doc, TOP_KEYS)
    for key in REQUIRED_TOP:
        if key not in top:
            raise ConfigError(f"config key {key!r} is missing (the {'seed network to start from' if key == 'seed_network' else 'number of ground-truth evaluations'})")
    evaluations = top["evaluations"]
    _positive("evaluations", evaluations)
    random_seed = top.get("random_seed", 0)
    if random_seed < 0:
        raise ConfigError(f"config key 'random_seed' must be >= 0, got {random_seed}")
    name = top.get("name", "search")
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ConfigError(f"config key 'name' must be a plain folder-name prefix, got {name!r}")
    seed_network = _seed_reference(top["seed_network"], base, tk)
    build_seed(seed_network, tk)  # a seed that fails validation is refused before anything runs
    output = Path(top.get("output", "runs"))
    output = (output if output.is_absolute() else base / output).resolve()
    dataset = top.get("dataset")
    if dataset is not None:
        # checked by the evaluator it is handed to (a registered dataset, a path, or the evaluator's own
        # names, e.g. the NB201 table's c10 / c100 / in16)
        dataset = _resolve_paths({"dataset": dataset}, base)["dataset"]

    s = _table("search", top.get("search", {}), SEARCH_KEYS)
    for key in ("per_round", "max_stalled_rounds", "min_fit"):
        if key in s:
            _positive(f"search.{key}", s[key])
    if s.get("ucb_kappa", 0.0) < 0:
        raise ConfigError(f"config key 'search.ucb_kappa' must be >= 0, got {s['ucb_kappa']}")
    moves = s.get("moves")
    if moves is not None:
        if not moves or not all(isinstance(m, str) for m in moves):
            raise ConfigError(f"config key 'search.moves' must be a non-empty list of move names, got {moves!r}")
        for m in moves:
            if m not in tk.operations:
                raise ConfigError("search.moves: " + _unknown("move", m, tk.operations.names()))
        s["moves"] = tuple(moves)
    settings = SearchSettings(**s)

    default_strategy = DEFAULT_STRATEGY if DEFAULT_STRATEGY in tk.strategies else "evolution"
    strategy = _component("strategy", top.get("strategy"), default_strategy, tk.strategies, base)
    evaluator = _component("evaluator", top.get("evaluator"), DEFAULT_EVALUATOR, tk.evaluators, base)
    executor = _component("executor", top.get("executor"), DEFAULT_EXECUTOR, tk.executors, base)
    predictors = _predictors(top.get("predictors", {}), tk, base)

    r = _table("reward", top.get("reward", {}), REWARD_KEYS)
    all_hard = r.pop("hard", False)
    if "form" in r and r["form"] not in FORMS:
        raise ConfigError(f"config key 'reward.form' must be one of {list(FORMS)}, got {r['form']!r}")
    if r.get("accuracy_weight", 1.0) <= 0:
        raise ConfigError(f"config key 'reward.accuracy_weight' must be > 0, got {r['accuracy_weight']}")
    objectives = Objectives(**r)

    budgets_doc = top.get("budgets", {})
    _table("budgets", budgets_doc, {m: (float, dict) for m in GLOBAL_METRICS})
    global_budgets = tuple(_budget(f"budgets.{m}", m, v, all_hard) for m, v in budgets_doc.items())

    devices_doc = top.get("devices", {})
    if not isinstance(devices_doc, Mapping):
        raise ConfigError(f"config key 'devices' must be a table of devices, got {devices_doc!r}")
    devices = tuple(_device(name, d, all_hard, tk, base) for name, d in devices_doc.items())

    resolved = copy.deepcopy(doc)
    resolved["seed_network"] = seed_network
    resolved["output"] = str(output)
    if dataset is not None:
        resolved["dataset"] = dataset
    return SearchConfig(
        name=name, seed_network=seed_network, dataset=dataset, evaluations=evaluations, random_seed=random_seed,
        output=output, search=settings, strategy=strategy, evaluator=evaluator, predictors=predictors,
        executor=executor, objectives=objectives, global_budgets=global_budgets, devices=devices, doc=resolved,
    )


def default_predictor(tk: Any) -> str:
    """The predictors package's default (H3b: `ensemble`), or the first registered one."""
    from ..predictors import DEFAULT_PREDICTOR

    if DEFAULT_PREDICTOR in tk.predictors:
        return DEFAULT_PREDICTOR
    names = tk.predictors.names()
    if not names:
        raise ConfigError("no predictor is registered; install one or name one under [predictors]")
    return names[0]


def _predictors(value: Any, tk: Any, base: Path) -> dict[str, Component]:
    t = _table("predictors", value, {k: (str, dict) for k in PREDICTOR_TARGETS})
    out: dict[str, Component] = {}
    acc = t.get("accuracy")
    out["accuracy"] = _component("predictors.accuracy", acc, None if acc is not None else default_predictor(tk), tk.predictors, base)
    out["train_time_s"] = _component(
        "predictors.train_time_s", t.get("train_time_s"), out["accuracy"].name, tk.predictors, base
    ) if "train_time_s" in t else Component(out["accuracy"].name, dict(out["accuracy"].options))
    return out


def _device(name: str, value: Any, all_hard: bool, tk: Any, base: Path) -> DeviceSpec:
    where = f"devices.{name}"
    if not name or "@" in name:
        raise ConfigError(f"device name {name!r} must be non-empty and contain no '@'")
    d = _table(where, value, DEVICE_KEYS)
    if "time_model" not in d:
        raise ConfigError(f"config key {where + '.time_model'!r} is missing (the time model that scores candidates on this device)")
    time_model = _component(f"{where}.time_model", d["time_model"], None, tk.time_models, base)
    measure = _component(f"{where}.measure", d["measure"], None, tk.time_models, base) if "measure" in d else None
    batch_size = d.get("batch_size", 1)
    _positive(f"{where}.batch_size", batch_size)
    budgets_doc = d.get("budgets", {})
    _table(f"{where}.budgets", budgets_doc, {m: (float, dict) for m in DEVICE_METRICS})
    budgets = tuple(
        _budget(f"{where}.budgets.{m}", device_metric(m, name), v, all_hard) for m, v in budgets_doc.items()
    )
    device = _resolve_paths({"device": d.get("device", name)}, base)["device"]
    return DeviceSpec(name, device, batch_size, time_model, measure, budgets)


def _seed_reference(value: str, base: Path, tk: Any) -> str:
    """The seed network reference as stored: a registered name, or an absolute path to a .json / .onnx."""
    if value in tk.seeds:
        return value
    suffix = Path(value).suffix.lower()
    if suffix in (".json", ".onnx"):
        path = Path(value) if os.path.isabs(value) else base / value
        if not path.is_file():
            raise ConfigError(f"seed_network: file {str(path)!r} does not exist")
        return str(path.resolve())
    raise ConfigError(
        "seed_network: " + _unknown("seed network", value, tk.seeds.names())
        + " (or give the path of an IR .json or an .onnx file)"
    )


def build_seed(reference: str, tk: Any = None) -> Any:
    """The seed Architecture of a validated reference; a seed that fails validation is a ConfigError."""
    from ..ir.architecture import Architecture

    if tk is None:
        from ..plugins import get_toolkit

        tk = get_toolkit()
    try:
        if reference in tk.seeds:
            return tk.seeds.get(reference).build()
        if reference.lower().endswith(".json"):
            return Architecture.load(reference, layer_types=tk.layer_types)
        from ..ir.onnx_import import from_onnx

        return from_onnx(reference)
    except UnknownComponentError as exc:
        raise ConfigError(f"seed_network {reference!r}: {exc}") from None
    except NAToolkitError as exc:
        raise ConfigError(f"seed_network {reference!r} is not a valid network: {exc}") from None
