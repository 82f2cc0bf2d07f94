"""The evaluator protocol: ground truth for a candidate (accuracy, training time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..ir.architecture import Architecture


@dataclass(frozen=True)
class EvaluationResult:
    arch_hash: str
    valid_accuracy: float
    test_accuracy: float | None = None
    train_time_s: float | None = None
    epochs: int | None = None
    evaluator: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Evaluator:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, **options: Any):
        self.options = options

    def evaluate(self, arch: Architecture) -> EvaluationResult:
        raise NotImplementedError
