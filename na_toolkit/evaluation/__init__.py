"""Ground-truth evaluation: evaluators train (or look up) a candidate and report accuracy and training time."""

from __future__ import annotations

from typing import Any

from .base import EvaluationResult, Evaluator

__all__ = ["EvaluationResult", "Evaluator", "get_evaluator"]


def get_evaluator(name: str = "torch", **options: Any) -> Evaluator:
    """An instance of the registered evaluator `name` with `options`."""
    from ..plugins import get_toolkit

    return get_toolkit().evaluators.get(name)(**options)
