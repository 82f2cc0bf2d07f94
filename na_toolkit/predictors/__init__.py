"""Performance predictors (accuracy, training time, any metric column) in scikit-learn style.

    from na_toolkit.predictors import make_predictor, DEFAULT_PREDICTOR
    p = make_predictor(DEFAULT_PREDICTOR).fit(archs, y)
    mean, std = p.predict_with_std(candidates)

See docs/predictors.md.
"""

from __future__ import annotations

from typing import Any

#: the predictor a search uses when its configuration names none
DEFAULT_PREDICTOR = "ensemble"


def make_predictor(name: str = DEFAULT_PREDICTOR, toolkit: Any = None, **params: Any):
    """An unfitted instance of the registered predictor `name` with `params`."""
    from ..plugins import get_toolkit

    return (toolkit or get_toolkit()).predictors.get(name)(**params)


def load_predictor(path: Any, toolkit: Any = None):
    """A saved predictor (JSON, see `Predictor.save`), rebuilt without pickle."""
    from .base import Predictor

    return Predictor.load(path, toolkit=toolkit)


__all__ = ["DEFAULT_PREDICTOR", "load_predictor", "make_predictor"]
