"""Checks on the learned state read back from a saved predictor file (`Predictor.from_json`).

A saved file is user input: it may come from another version, be edited by hand or damaged. The feature
predictors and `fewshot-latency` are refit from the training rows the file holds, which `fit` would have
checked (finite targets no larger than `MAX_TARGET`, positive latencies, one feature row per target); the
neural predictor predicts from its stored IR-feature list and ranges. What is checked here gives a
`DataError` saying to refit, where a damaged file would otherwise load and predict NaN, say nothing about
the domain, or fail later with numpy's own error.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import DataError
from .base import MAX_TARGET, decode_array, library_versions
from .features import FEATURES_VERSION, FeatureMatrix


def saved_features(doc: Any) -> FeatureMatrix:
    """The `FeatureMatrix` of a saved document, refused when it was computed by another features version."""
    version = doc.get("features_version") if isinstance(doc, dict) else None
    if version != FEATURES_VERSION:
        raise DataError(
            f"saved predictor uses features version {version}, this na_toolkit computes version {FEATURES_VERSION}; "
            "refit it"
        )
    return FeatureMatrix.from_json(doc)


def saved_feature_range(doc: Any, features: FeatureMatrix | None) -> np.ndarray | None:
    """The [2, features] minimum / maximum rows of a saved neural predictor's IR features (None: absent, as in
    files saved before they were)."""
    if doc is None or features is None:
        return None
    span = decode_array(doc)
    if span.shape != (2, len(features.names)) or not np.all(np.isfinite(span)):
        raise DataError(
            f"saved predictor's feature ranges have shape {span.shape}, not (2, {len(features.names)}) finite "
            "values for its feature list: the file was edited or damaged; refit it"
        )
    return span


def saved_training_rows(
    state: dict[str, Any], n_features: int, positive: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The training matrix and targets a saved predictor is refit from, checked as `fit` checks them."""
    X = decode_array(state["X_train"]).astype(np.float64)
    y = decode_array(state["y_train"]).astype(np.float64)
    if y.ndim != 1 or X.shape != (len(y), n_features):
        raise DataError(
            f"saved predictor's training data ({X.shape} features, {y.shape} targets) does not match its feature "
            f"list of {n_features}: the file was edited or damaged; refit it"
        )
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))) or (len(y) and np.max(np.abs(y)) > MAX_TARGET):
        raise DataError(
            f"saved predictor's training data holds NaN, infinite or targets beyond {MAX_TARGET:.0e}: the file was "
            "edited or damaged; refit it"
        )
    if positive and np.any(y <= 0):
        raise DataError("saved predictor's training latencies are not all positive: the file was edited; refit it")
    return X, y


#: the libraries whose version changes what a loaded predictor predicts: the feature predictors are refit on
#: load from the rows the file holds, by scikit-learn's estimators
REFIT_LIBRARIES = ("scikit-learn",)


def warn_other_versions(doc: Any, path: Any) -> list[str]:
    """Log (and return) a warning for each of `REFIT_LIBRARIES` whose version the saved `doc` records and this
    environment has another of: its refit here may predict differently from where it was saved."""
    saved = doc.get("versions") if isinstance(doc, dict) else None
    if not isinstance(saved, dict):
        return []
    here = library_versions()
    said = [
        f"saved predictor {str(path)!r} was fit with {lib} {saved[lib]}, this environment has {here[lib]}: its "
        f"predictions may differ from those it gave there; refit it here to be sure"
        for lib in REFIT_LIBRARIES
        if isinstance(saved.get(lib), str) and lib in here and saved[lib] != here[lib]
    ]
    for message in said:
        logging.getLogger("na_toolkit.predictors").warning(message)
    return said
