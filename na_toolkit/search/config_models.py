"""The search config document (`na-toolkit search CONFIG.toml`) as pydantic models: keys, types, defaults
and ranges, declared once. Unknown keys are refused with the close matches; every error names the path of
the bad value (`devices.cpu.budgets.latency_ms.limit`).

These models check the document only: which components and seed networks exist, and what their options
may hold, is checked against the registries when the config is resolved (`config.resolve_config`).
docs/search.md describes the format with a complete example.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from ..errors import ConfigError
from ..validation import Document
from .reward import Objectives

#: the largest count a config takes (evaluations, per_round, batch_size...)
MAX_COUNT = 1_000_000

#: what a device name may be: it names a folder of the run (best/NAME/) and suffixes metrics (latency_ms@NAME)
DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

#: keys of `[budgets]` and of `[devices.NAME.budgets]` (checked against reward.GLOBAL_METRICS and
#: reward.DEVICE_METRICS by the tests)
GlobalMetric = Literal["model_size_bytes", "train_time_s"]
DeviceMetric = Literal["latency_ms", "peak_memory_bytes", "energy_mj", "train_time_s"]
RewardForm = Literal["penalty", "mnasnet"]


class ConfigDocument(Document):
    """Base of the config's tables: strict types (no `"3"` for 3, no `true` for 1), finite numbers."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False)


def _table_of_name(value: Any) -> Any:
    """A component may be given by its name alone: `executor = "local"`."""
    if isinstance(value, str):
        return {"name": value}
    if value is not None and not isinstance(value, (Mapping, BaseModel)):  # else pydantic names the model class
        raise PydanticCustomError("component", 'must be a name or a table { name = "...", options = { ... } }')
    return value


def _table_of_limit(value: Any) -> Any:
    """A budget may be given by its limit alone: `model_size_bytes = 16e6`."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_number:
        return {"limit": value}
    if value is not None and not isinstance(value, (Mapping, BaseModel)):  # "0.2ms": pydantic names the class
        raise PydanticCustomError(
            "budget", "must be a number (the limit, in the metric's unit) or a table { limit, weight, hard }"
        )
    return value


class ComponentDoc(ConfigDocument):
    """A registered component and its keyword options (checked against the component's `Options` model
    when the config is resolved)."""

    name: str | None = Field(default=None, description="registered name (default: the key's default component)")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the component")


class NamedComponentDoc(ComponentDoc):
    """A component that has no default: its name is required."""

    name: str = Field(description="registered name")


Component_ = Annotated[ComponentDoc, BeforeValidator(_table_of_name)]
OptionalComponent = Annotated[ComponentDoc | None, BeforeValidator(_table_of_name)]
RequiredComponent = Annotated[NamedComponentDoc, BeforeValidator(_table_of_name)]
OptionalNamedComponent = Annotated[NamedComponentDoc | None, BeforeValidator(_table_of_name)]


class BudgetDoc(ConfigDocument):
    """An upper limit on a metric: `limit`, its weight λ and whether a violation is infeasible."""

    limit: float = Field(gt=0, description="the upper limit, in the metric's unit")
    weight: float = Field(default=1.0, ge=0, description="λ (penalty form) or the scale of α/β (mnasnet form)")
    hard: bool | None = Field(
        default=None, description="a violation makes the candidate infeasible (default: reward.hard)"
    )


Budget_ = Annotated[BudgetDoc | None, BeforeValidator(_table_of_limit)]


def _whole_bytes(budget: BudgetDoc | None) -> BudgetDoc | None:
    """A budget in bytes below one byte is a limit written in another unit (0.04 meaning 40 kB): refused."""
    if budget is not None and budget.limit < 1:
        raise ValueError(
            f"limit {budget.limit:g} is less than one byte: the limit is in bytes (16 MB is 16_000_000, "
            "40 KiB is 40_960)"
        )
    return budget


class GlobalBudgetsDoc(ConfigDocument):
    """`[budgets]`: limits that hold whatever the device."""

    model_size_bytes: Budget_ = None
    train_time_s: Budget_ = None

    _bytes = field_validator("model_size_bytes")(_whole_bytes)


class DeviceBudgetsDoc(ConfigDocument):
    """`[devices.NAME.budgets]`: limits on one device's metrics."""

    latency_ms: Budget_ = None
    peak_memory_bytes: Budget_ = None
    energy_mj: Budget_ = None
    #: the device's time model's estimate of training under the evaluator's plan (`TimeModel.train_time`)
    train_time_s: Budget_ = None

    _bytes = field_validator("peak_memory_bytes")(_whole_bytes)


class DeviceDoc(ConfigDocument):
    """`[devices.NAME]`: a target device, the time model that scores candidates on it, optionally one that
    measures the evaluated ones, and its budgets."""

    device: str | None = Field(default=None, description="what the time models are given as `device` (default: NAME)")
    batch_size: int = Field(
        default=1, gt=0, le=MAX_COUNT, description="batch size the device's metrics are estimated at"
    )
    time_model: RequiredComponent = Field(description="the time model that scores candidates on this device")
    measure: OptionalNamedComponent = Field(default=None, description="a time model measuring each evaluated candidate")
    rescale_by_measure: bool | None = Field(
        default=None,
        description=(
            "scale the time model's latency estimates by the median of measured over estimated latency of the "
            "run's evaluated networks (default: on when the device has a measure)"
        ),
    )
    rescale_neighbours: int | None = Field(
        default=None,
        ge=0,
        le=MAX_COUNT,
        description=(
            "with rescale_by_measure: move each network's factor towards the measured/estimated ratios of its "
            "N most similar measured networks (default 0: one factor for every network; 3 is a good start)"
        ),
    )
    resource: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="Ray resource of the fleet nodes that measure this device (e.g. device:jetson-orin-nano)",
    )
    budgets: DeviceBudgetsDoc = DeviceBudgetsDoc()


class PredictorsDoc(ConfigDocument):
    """`[predictors]`: the accuracy predictor and (when a budget limits it) the training-time one."""

    accuracy: OptionalComponent = Field(default=None, description="default: the predictors package's default")
    train_time_s: OptionalComponent = Field(
        default=None, description="default: the accuracy predictor's name and options"
    )


class SearchSettings(ConfigDocument):
    """`[search]`: how the loop runs."""

    model_config = ConfigDict(frozen=True)

    per_round: int = Field(default=4, gt=0, le=MAX_COUNT, description="evaluations per round")
    ucb_kappa: float = Field(
        default=1.0, ge=0, description="weight of the predicted uncertainty when ranking proposals"
    )
    evaluate_seed: bool = Field(default=True, description="evaluate the seed network first")
    max_stalled_rounds: int = Field(
        default=3, gt=0, le=MAX_COUNT, description="rounds without a new proposal before the search stops"
    )
    min_fit: int = Field(
        default=3, gt=0, le=MAX_COUNT, description="evaluations before the predictors are first fitted"
    )
    # lax for this field only: TOML and JSON give a list, the loop keeps a tuple
    moves: tuple[str, ...] | None = Field(
        default=None, min_length=1, strict=False, description="move names (default: all)"
    )
    schedule: Literal["rounds", "async"] = Field(
        default="rounds",
        description="rounds: per_round evaluations, then the next round; async: no round barrier",
    )
    max_in_flight: int | None = Field(
        default=None, gt=0, le=MAX_COUNT, description="async: evaluations running at once (default: per_round)"
    )
    refit_every: int | None = Field(
        default=None, gt=0, le=MAX_COUNT, description="async: evaluations between predictor refits (default: per_round)"
    )
    driver_blas_threads: int | None = Field(
        default=1,
        gt=0,
        le=1024,
        description="BLAS threads of the driver's scoring and predictor fits (small matrices: more only spin); "
        "null: leave the BLAS libraries' own setting",
    )
    keep_weights: bool = Field(default=True, description="keep the trained weights of evaluated candidates (exports)")
    inherit_weights: bool = Field(
        default=False,
        description="start each candidate from its nearest evaluated ancestor's weights (function-preserving "
        "moves; fine-tuned for the evaluator's inherit_epochs); implies keep_weights",
    )
    #: drop proposals that break a hard budget known before evaluation (model size; a device's metric whose
    #: time model runs nothing and decides feasibility itself) and ask the strategy again for others
    screen_hard_budgets: bool = Field(
        default=True, description="drop proposals sure to break a hard budget, unevaluated"
    )
    pareto_min_accuracy: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "accuracy (fraction) a network needs to enter the Pareto front (default: 1.1 x the share of the "
            "dataset's commonest class, the accuracy of always answering it)"
        ),
    )

    @field_validator("moves", mode="before")
    @classmethod
    def _some_moves(cls, moves: Any) -> Any:
        if isinstance(moves, (list, tuple)) and not moves:
            raise PydanticCustomError("no_moves", "must name at least one move (leave it out for every move)")
        return moves


class RewardDoc(ConfigDocument):
    """`[reward]`: how metrics combine into one reward (`reward.Objectives`), and `hard` for every budget."""

    form: RewardForm = Objectives.form  # type: ignore[assignment]
    accuracy_weight: float = Field(default=Objectives.accuracy_weight, gt=0)
    hard: bool = Field(default=False, description="default of every budget's `hard`")
    mnasnet_alpha: float = Objectives.mnasnet_alpha
    mnasnet_beta: float = Objectives.mnasnet_beta
    infeasible_reward: float = Field(
        default=Objectives.infeasible_reward,
        le=0,
        description="base reward of a candidate that breaks a hard budget (<= 0: below every feasible one)",
    )

    def objectives(self) -> Objectives:
        return Objectives(**self.model_dump(exclude={"hard"}))


class SearchDocument(ConfigDocument):
    """The whole search config."""

    name: str = Field(default="search", description="prefix of the run folder's name")
    seed_network: str = Field(description="a registered seed, or the path of an IR .json or an .onnx file")
    dataset: str | None = Field(default=None, description="handed to the evaluator (a registered dataset or a path)")
    # upper bounds: a budget past a million evaluations or a seed past what torch and numpy take is a typo
    # (`evaluations = 2**62` used to be accepted and the search then ran forever)
    evaluations: int = Field(gt=0, le=MAX_COUNT, description="ground-truth evaluations: the budget")
    random_seed: int = Field(default=0, ge=0, le=2**63 - 1)
    output: str = Field(default="runs", description="folder the run folder is made in (relative to the config file)")
    search: SearchSettings = SearchSettings()
    strategy: Component_ = ComponentDoc()
    evaluator: Component_ = ComponentDoc()
    predictors: PredictorsDoc = PredictorsDoc()
    executor: Component_ = ComponentDoc()
    reward: RewardDoc = RewardDoc()
    budgets: GlobalBudgetsDoc = GlobalBudgetsDoc()
    devices: dict[str, DeviceDoc] = {}

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not name or any(c in name for c in "/\\") or name.startswith("."):
            # the run folder is `<output>/<name>-<time>`
            raise PydanticCustomError("folder_name", "must be a plain folder name (no '/' or '\\', no leading '.')")
        if len(name) > 100 or not name.isprintable():
            # file systems cap a name at 255 bytes, and a NUL or control character breaks paths and terminals
            raise PydanticCustomError("folder_name", "must be at most 100 printable characters")
        return name

    @field_validator("devices")
    @classmethod
    def _device_names(cls, devices: dict[str, DeviceDoc]) -> dict[str, DeviceDoc]:
        for name in devices:
            # a device name becomes a folder of the run (best/NAME/) and a metric suffix (latency_ms@NAME):
            # a slug, never a path ("../x" or "/abs" would write outside the run folder) nor "all" (best/all)
            if not DEVICE_NAME.fullmatch(name) or name == "all":
                raise PydanticCustomError(
                    "device_name",
                    "device name '{name}' must be 1-64 letters, digits, '.', '_' or '-', start with a letter or "
                    "digit, and not be 'all' (it names a folder of the run and a metric suffix)",
                    {"name": name},
                )
        return devices


def _paths_as_strings(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic | np.ndarray):  # evaluations=np.int64(8) from a sweep: the TOML int it stands for
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _paths_as_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_paths_as_strings(v) for v in value)
    return value


def plain_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A dict config as a TOML file would hold it: a `Path` anywhere is its string, a numpy scalar or array its
    Python value or list, and a value JSON cannot hold is a ConfigError naming its key (`_check_storable`)."""
    plain: dict[str, Any] = _paths_as_strings(doc)
    _check_storable(plain, "")
    return plain


def _check_storable(value: Any, key: str) -> None:
    """A run keeps its config as JSON in its store (to resume and report it): a value JSON cannot hold (a
    loaded Dataset, an Architecture, any Python object of a dict config) is refused here, naming its key,
    before a run folder exists."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_storable(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_storable(v, f"{key}[{i}]")
    elif not (value is None or isinstance(value, (str, bool, int, float, np.generic, np.ndarray))):
        raise ConfigError(_not_storable(value, key))


def _not_storable(value: Any, key: str) -> str:
    from ..datasets.base import Dataset, DatasetSource
    from ..ir.architecture import Architecture

    if isinstance(value, (Dataset, DatasetSource)):
        todo = (
            "give a registered dataset's name, an image folder or an .npz file (np.savez(path, x=x, y=y) writes "
            "one; docs/datasets.md)"
        )
    elif isinstance(value, Architecture):
        todo = "save it (arch.save('seed.json')) and give the file's path"
    else:
        todo = "give what a TOML file can hold (a string, number, boolean, list or table)"
    return (
        f"{key}: {type(value).__name__} objects cannot be part of a search config, which the run keeps as JSON "
        f"(to resume and report it); {todo}"
    )
