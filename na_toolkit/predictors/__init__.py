"""Performance predictors (accuracy, training time, any metric column): scikit-learn estimators on
architectures.

    from na_toolkit.predictors import make_predictor, DEFAULT_PREDICTOR
    p = make_predictor(DEFAULT_PREDICTOR, {}, toolkit).fit(archs, y)
    mean, std = p.predict_with_std(candidates)

See docs/predictors.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..validation import validate_options

if TYPE_CHECKING:  # pragma: no cover
    from ..toolkit import Toolkit
    from .base import Predictor

#: the predictor a search uses when its configuration names none
DEFAULT_PREDICTOR = "ensemble"


def make_predictor(name: str, params: Mapping[str, Any] | None, toolkit: Toolkit) -> Predictor:
    """An unfitted instance of the predictor `name` registered in `toolkit`, with `params` checked against
    its `Options` model first (a ConfigError naming the parameter: `--param n_estimators=5` for `gp`)."""
    cls = toolkit.predictors.get(name)
    options = getattr(cls, "Options", None)
    if options is not None:
        validate_options(options, params, f"predictor {name!r} params")
    predictor: Predictor = cls(**dict(params or {}))
    return predictor


def load_predictor(path: str | Path, toolkit: Toolkit) -> Predictor:
    """A saved predictor (JSON, see `Predictor.save`), rebuilt without pickle; its class is found by the
    saved name in `toolkit.predictors`."""
    from .base import Predictor

    return Predictor.load(path, toolkit=toolkit)


__all__ = ["DEFAULT_PREDICTOR", "load_predictor", "make_predictor"]
