"""The evaluator protocol: ground truth for a candidate (accuracy, training time).

An evaluator class is registered through `na_register_evaluators`; `make_evaluator(name, options, toolkit)`
builds one with `Evaluator.from_toolkit(toolkit, **options)`, which by default is `Evaluator(**options)` (options
kept in `self.options`, the way scikit-learn keeps parameters); an evaluator that needs a registry (the
torch evaluator: the datasets) overrides `from_toolkit` to take it from the toolkit. The toolkit then calls
`evaluate(arch)`. An evaluator never travels: each process that evaluates (a worker too) builds its own from
the name and options (`search.executors.run_task`), so keep options plain values (they are pickled with each
task) and load heavy state lazily inside `evaluate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Self

from ..errors import DataError
from ..ir.architecture import Architecture
from ..validation import check_inherited_init, is_finite_number

if TYPE_CHECKING:  # pragma: no cover
    from ..timemodels.training import TrainingPlan
    from ..toolkit import Toolkit


@dataclass(frozen=True)
class EvaluationResult:
    """One ground-truth evaluation. Accuracies are fractions in [0, 1]."""

    arch_hash: str
    #: the accuracy the search selects on (validation split; for the torch trainer: the best epoch's)
    valid_accuracy: float
    #: the accuracy reported to users (test split; for the torch trainer: at the best-validation epoch)
    test_accuracy: float | None = None
    #: measured time of the training steps (forward, backward, optimizer), seconds
    train_time_s: float | None = None
    #: epochs trained
    epochs: int | None = None
    evaluator: str = ""
    #: 1-based epoch whose weights gave valid_accuracy / test_accuracy
    best_epoch: int | None = None
    dataset: str = ""
    seed: int | None = None
    device: str = ""
    #: evaluator-specific details (per-epoch history, options, library versions); left out of the repr, which
    #: stays one short line however many epochs were trained (read `result.extra`)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EvaluationResult:
        names = {f.name for f in fields(cls)}
        if not isinstance(doc, dict) or "arch_hash" not in doc or "valid_accuracy" not in doc:
            raise DataError("an evaluation result needs at least arch_hash and valid_accuracy")
        return cls(**{k: v for k, v in doc.items() if k in names})


def result_problems(result: Any, arch: Architecture) -> list[str]:
    """What makes `result` no evaluation of `arch` ([] when nothing): not an EvaluationResult, another
    network's hash, an accuracy that is not a fraction in [0, 1], a training time that is not a finite
    number >= 0. The search checks every evaluation with it."""
    if not isinstance(result, EvaluationResult):
        return [f"returned {type(result).__name__}, not an EvaluationResult"]
    problems = []
    if result.arch_hash != arch.hash:
        problems.append(f"the result is of network {result.arch_hash!r}, evaluated {arch.hash!r}")
    for key in ("valid_accuracy", "test_accuracy"):
        value = getattr(result, key)
        if (key == "valid_accuracy" or value is not None) and not (is_finite_number(value) and 0 <= value <= 1):
            problems.append(f"{key}={value!r} (a fraction in [0, 1])")
    if result.train_time_s is not None and not (is_finite_number(result.train_time_s) and result.train_time_s >= 0):
        problems.append(f"train_time_s={result.train_time_s!r} (a finite number >= 0)")
    return problems


@dataclass(frozen=True)
class TrainingRows:
    """Rows of ground truth an evaluator's table hands out: architectures, the target's values, and
    where they came from (recorded with a fitted predictor); the target's unit and the range its values
    can take as the table defines them (a predictor clips its predictions into that range; "" and
    (None, None): not defined)."""

    archs: list[Architecture]
    values: list[float]
    source: dict[str, Any] = field(default_factory=dict)
    unit: str = ""
    valid_range: tuple[float | None, float | None] = (None, None)


class Evaluator:
    """Base class of evaluators: subclasses set `name`, `description` and implement `evaluate`."""

    name: ClassVar[str] = ""
    #: its `__init__(**options)` takes any keyword for its subclasses: one without an `__init__` of its own
    #: declares no options (validation.derived_options_model), and the options it is given are checked
    _generic_options_init: ClassVar[bool] = True
    description: ClassVar[str] = ""

    def __init__(self, **options: Any):
        if options:
            check_inherited_init(self, Evaluator, options, "evaluator")
        self.options = options

    @classmethod
    def from_toolkit(cls, toolkit: Toolkit, **options: Any) -> Self:
        """An evaluator with `options`, taking from `toolkit` whatever it needs besides them (override
        this, not `__init__`, to reach a registry). The default ignores the toolkit."""
        return cls(**options)

    def get_params(self) -> dict[str, Any]:
        return dict(self.options)

    def evaluate(self, arch: Architecture) -> EvaluationResult:
        raise NotImplementedError

    def training_plan(self) -> TrainingPlan | None:
        """How this evaluator trains a network (the training split's size, batch size, epochs), from which a
        time model estimates `train_time_s@DEVICE` (`TimeModel.train_time`); None: it does not say (then a
        budget on a device's `train_time_s` is a config error)."""
        return None

    #: an evaluator backed by a table of ground truth (a tabular benchmark) can hand out rows to fit
    #: predictors on: `training_rows(target, count, seed, layer_types, table) -> TrainingRows`
    #: (`na-toolkit predict fit --from NAME`). None: it cannot.
    training_rows: ClassVar[Any] = None

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"
