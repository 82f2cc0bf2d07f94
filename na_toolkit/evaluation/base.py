"""The evaluator protocol: ground truth for a candidate (accuracy, training time).

An evaluator class is registered through `na_register_evaluators`; the toolkit instantiates it with keyword
options (`Evaluator(**options)`, kept in `self.options`, the way scikit-learn keeps parameters) and calls
`evaluate(arch)`. Evaluators must be picklable (the local executor sends them to worker processes): keep
options plain values and load heavy state lazily inside `evaluate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from ..errors import DataError
from ..ir.architecture import Architecture


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
    #: evaluator-specific details (per-epoch history, options, library versions)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EvaluationResult:
        names = {f.name for f in fields(cls)}
        if not isinstance(doc, dict) or "arch_hash" not in doc or "valid_accuracy" not in doc:
            raise DataError("an evaluation result needs at least arch_hash and valid_accuracy")
        return cls(**{k: v for k, v in doc.items() if k in names})


class Evaluator:
    """Base class of evaluators: subclasses set `name`, `description` and implement `evaluate`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, **options: Any):
        self.options = options

    def get_params(self) -> dict[str, Any]:
        return dict(self.options)

    def evaluate(self, arch: Architecture) -> EvaluationResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"
