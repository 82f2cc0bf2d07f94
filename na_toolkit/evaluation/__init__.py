"""Ground-truth evaluation: evaluators train (or look up) a candidate and report accuracy and training time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .base import EvaluationResult, Evaluator

if TYPE_CHECKING:  # pragma: no cover
    from ..toolkit import Toolkit

__all__ = ["EvaluationResult", "Evaluator", "make_evaluator"]


def make_evaluator(name: str, options: Mapping[str, Any] | None, toolkit: Toolkit) -> Evaluator:
    """An instance of the evaluator `name` registered in `toolkit`, with `options`; built by the class's
    `Evaluator.from_toolkit`, which takes from the toolkit what the evaluator needs (the torch evaluator:
    the registered datasets)."""
    cls: type[Evaluator] = toolkit.evaluators.get(name)
    return cls.from_toolkit(toolkit, **dict(options or {}))
