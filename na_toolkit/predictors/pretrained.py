"""A pretrained neural predictor's file in the unit of the target it serves.

A file saved by `na-toolkit predict fit` predicts what it learned (an NB201 column's percentages, a run's
fractions, seconds ...). Given another target (`NeuralPredictor.for_target`: a search's `accuracy`, the
`--target` of `predict fit --param pretrained=FILE`, a library caller's), the file's output is brought into
that target's unit when the file is read, one place for every caller:

- both units known and convertible (`targets.unit_factor`: % <-> fraction, s <-> ms): its output scalers
  are multiplied, never its weights;
- both known and not convertible (seconds for an accuracy): a `ConfigError` naming the file and both units;
- the file names no unit (fit on `--data` without `--unit`): taken when the median of its predictions for
  the first networks it is given (a search's seed network, the networks `predict fit` trains on) lies in the
  target's valid range, else a `ConfigError` saying how to refit it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, DataError
from .targets import FRACTION, Target, unit_factor

if TYPE_CHECKING:  # pragma: no cover
    from .neural import NeuralPredictor


def conversion(have: Target | None, wanted: Target, path: str | Path) -> float | None:
    """What the predictions of the file at `path` (which learned `have`) are multiplied by to be in
    `wanted`'s unit; None when one of the units is unknown (nothing to convert by). A ConfigError when
    both are known and one cannot be converted into the other."""
    if have is None or not have.unit or not wanted.unit:
        return None
    factor = unit_factor(have.unit, wanted.unit)
    if factor is None:
        raise ConfigError(
            f"pretrained predictor {str(path)!r} predicts {have.name} in {have.unit}, and {wanted.name} is in "
            f"{wanted.unit}, which it cannot be converted to; start from a predictor fit on {wanted.name} in "
            f"{wanted.unit} (`na-toolkit predict fit --data RUN/evaluations.jsonl --target {wanted.name}`), or "
            "fit without pretrained"
        )
    return factor


def needs_range_check(have: Target | None, wanted: Target) -> bool:
    """Is the file's unit unknown while `wanted` has one with a valid range (so the file is taken only when
    its predictions lie in that range: `check_in_range`)?"""
    unknown = have is None or not have.unit
    return unknown and bool(wanted.unit) and (wanted.low is not None or wanted.high is not None)


def check_in_range(predictions: np.ndarray, wanted: Target, path: str | Path, networks: str) -> None:
    """A ConfigError when the median of `predictions` (of a file that names no unit, for `networks`, e.g.
    "the seed network") lies outside `wanted`'s valid range."""
    value = float(np.median(predictions))
    low, high = wanted.bounds
    if low <= value <= high:
        return
    valid = wanted.range_text + (" (fraction)" if wanted.unit == FRACTION else "")  # range_text: "0..1"
    raise ConfigError(
        f"pretrained predictor {str(path)!r} names no unit for what it predicts, and it predicts {value:.4g} for "
        f"{networks}, outside {wanted.name}'s valid range {valid}; refit it with `na-toolkit predict fit ... "
        f"--unit {wanted.unit}` on values in that unit"
    )


def serve(pred: NeuralPredictor, wanted: Target) -> None:
    """Make the loaded pretrained `pred` predict `wanted` from here on: its output scalers (never its weights)
    scaled into `wanted`'s unit, so the predictions are the file's in the new unit and fine-tuning continues
    in it (a ConfigError for a unit it cannot be converted to: `conversion`)."""
    if not isinstance(wanted, Target):
        raise DataError(f"for_target takes a targets.Target or None, got {type(wanted).__name__}")
    factor = conversion(pred.target, wanted, str(pred.pretrained))
    pred._unchecked_unit = needs_range_check(pred.target, wanted)
    pred.target = wanted
    if factor is None or factor == 1.0:
        return
    if pred.log_target:  # log(factor * y) = log(y) + log(factor): a shift of the log scale
        pred.y_mean_ = pred.y_mean_ + math.log(factor)
    else:
        pred.y_mean_ = pred.y_mean_ * factor
        pred.y_scale_ = pred.y_scale_ * factor


def load_pretrained(path: str | Path) -> NeuralPredictor:
    """The saved neural predictor at `path`, loaded for use as a pretrained one (a DataError naming the
    file when it is missing, not JSON, or not a saved neural predictor)."""
    from .neural import NeuralPredictor

    doc = NeuralPredictor.read_document(path)
    if isinstance(doc, dict) and isinstance(doc.get("params"), dict):
        doc = {**doc, "params": {**doc["params"], "pretrained": None}}  # its own origin is not read again
    try:
        saved = NeuralPredictor.from_json(doc)
    except DataError as exc:
        raise DataError(f"pretrained predictor {str(path)!r}: {exc}") from None
    assert isinstance(saved, NeuralPredictor)
    return saved
