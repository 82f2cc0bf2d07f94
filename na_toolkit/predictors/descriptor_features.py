"""Dataset descriptors as predictor inputs: a descriptor (`DatasetDescriptor` or a bare vector) as a float
vector, one per row (`_dataset_rows`), the records of the datasets a predictor was trained on
(`dataset_records`: name, vector, rows, and the target scale when several), the domain warning for a dataset
none of them matches (`dataset_domain_warnings`), and the per-dataset target standardisation of a fit on
several datasets (`standardise_per_dataset`, `target_scales`). See docs/predictors.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError


def dataset_vector(dataset: Any) -> np.ndarray:
    """A dataset descriptor (anything with `to_vector()`, or a numeric vector) as a float vector."""
    if hasattr(dataset, "to_vector"):
        return np.asarray(dataset.to_vector(), dtype=np.float64)
    vec = np.asarray(dataset, dtype=np.float64)
    if vec.ndim != 1:
        raise DataError(f"a dataset descriptor must be a DatasetDescriptor or a 1-D vector, got shape {vec.shape}")
    return vec


def dataset_matrix(datasets: Any, n: int, dim: int) -> np.ndarray:
    """The descriptors a predictor fit with `dim`-value descriptors needs at prediction time: [n, dim]."""
    if datasets is None:
        raise DataError("this predictor was fit with dataset descriptors: pass datasets= to predict too")
    rows = _dataset_rows(datasets, n)
    if rows.shape[1] != dim:
        raise DataError(f"dataset descriptors have {rows.shape[1]} values, the predictor was fit on {dim}")
    return rows


def _dataset_rows(datasets: Any, n: int) -> np.ndarray:
    """One descriptor for all rows, or one per row."""
    if hasattr(datasets, "to_vector"):
        return np.tile(dataset_vector(datasets), (n, 1))
    items = list(datasets) if not isinstance(datasets, np.ndarray) else datasets
    if isinstance(items, np.ndarray) and items.ndim == 1 or (len(items) and np.isscalar(items[0])):
        return np.tile(dataset_vector(items), (n, 1))
    if len(items) != n:
        raise DataError(
            f"got {len(items)} dataset descriptors for {n} architectures (give one, or one per architecture)"
        )
    return np.stack([dataset_vector(d) for d in items])


#: two descriptor vectors this close (relative) are the same dataset (a descriptor rounds to 6 digits)
DATASET_MATCH_RTOL = 1e-6


def dataset_name(dataset: Any) -> str:
    """The name of a descriptor (`DatasetDescriptor.name`), or "unnamed" for a bare vector."""
    return str(getattr(dataset, "name", "") or "unnamed")


def dataset_vector_names(dataset: Any, dim: int) -> list[str]:
    names = getattr(dataset, "VECTOR_NAMES", None)
    return list(names) if names is not None and len(names) == dim else [f"dataset[{i}]" for i in range(dim)]


def dataset_records(datasets: Any, n: int) -> list[dict[str, Any]]:
    """The distinct descriptors behind `n` training rows (one for all, or one per row), in order of first
    appearance: name, vector (None for an unknown entry), the vector's entry names, and how many rows."""
    if datasets is None:
        return []
    rows = _dataset_rows(datasets, n)
    objects = [datasets] * n if hasattr(datasets, "to_vector") else _row_objects(datasets, n)
    records: list[dict[str, Any]] = []
    for vec, obj in zip(rows, objects):
        for rec in records:
            if _same_vector(np.asarray(rec["_vector"]), vec):
                rec["rows"] += 1
                break
        else:
            records.append(
                {
                    "name": dataset_name(obj),
                    "vector": [None if not math.isfinite(v) else float(v) for v in vec],
                    "vector_names": dataset_vector_names(obj, len(vec)),
                    "rows": 1,
                    "_vector": vec,
                }
            )
    for rec in records:
        del rec["_vector"]
    return records


def _row_objects(datasets: Any, n: int) -> list[Any]:
    items = list(datasets)
    if len(items) and np.isscalar(items[0]):  # one bare vector for all rows
        return [None] * n
    return items


def _same_vector(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=DATASET_MATCH_RTOL, atol=0, equal_nan=True))


def check_dataset_records(records: Any) -> list[dict[str, Any]]:
    """Saved training-dataset records (`dataset_records`), checked: a saved predictor is user input."""
    if not isinstance(records, list):
        raise DataError(f"saved training datasets must be a list, got {type(records).__name__}")
    for rec in records:
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("name"), str)
            or not isinstance(rec.get("vector"), list)
            or not all(v is None or isinstance(v, (int, float)) for v in rec["vector"])
            or type(rec.get("rows")) is not int
        ):
            raise DataError(f"a saved training dataset record is malformed: {str(rec)[:120]}")
    return records


def dataset_domain_warnings(records: Sequence[dict[str, Any]], dataset: Any, limit: int = 3) -> list[str]:
    """Why predicting for `dataset` (a descriptor or a vector) is an extrapolation from the datasets in
    `records` (`dataset_records` of the training rows): empty when it is one of them, else a reason naming
    the dataset, the training datasets and the descriptor entries furthest outside their training range.
    Nothing to say without records (the predictor was fit without descriptors)."""
    if not records or dataset is None:
        return []
    vec = dataset_vector(dataset)
    trained = [np.asarray([np.nan if v is None else v for v in r["vector"]], dtype=np.float64) for r in records]
    if any(_same_vector(t, vec) for t in trained):
        return []
    from .features import DOMAIN_MARGIN, DOMAIN_MIN_SPAN

    names = ", ".join(str(r["name"]) for r in records)
    reasons = [f"dataset {dataset_name(dataset)!r} was never in training (trained on {names})"]
    same_dim = [t for t in trained if t.shape == vec.shape]
    if not same_dim:
        return reasons
    T = np.stack(same_dim)
    known = np.isfinite(T).any(axis=0)  # entries unknown for every training dataset say nothing
    lo, hi = np.full(len(vec), np.nan), np.full(len(vec), np.nan)
    lo[known], hi[known] = np.nanmin(T[:, known], axis=0), np.nanmax(T[:, known], axis=0)
    with np.errstate(invalid="ignore"):
        dist = np.maximum(lo - vec, vec - hi) / np.maximum(hi - lo, DOMAIN_MIN_SPAN)
    labels = dataset_vector_names(dataset, len(vec))
    for j in np.argsort(-np.nan_to_num(dist, nan=-np.inf))[:limit]:
        if np.isfinite(dist[j]) and dist[j] > DOMAIN_MARGIN:
            reasons.append(f"{labels[j]} = {vec[j]:.4g} (trained on {lo[j]:.4g}..{hi[j]:.4g})")
    return reasons


def _record_of(records: Sequence[dict[str, Any]], vec: np.ndarray) -> int | None:
    for k, rec in enumerate(records):
        if _same_vector(np.asarray([np.nan if v is None else v for v in rec["vector"]], dtype=np.float64), vec):
            return k
    return None


def standardise_per_dataset(records: list[dict[str, Any]], datasets: Any, y: np.ndarray) -> np.ndarray:
    """`y` with each dataset's rows standardised on their own (per output column); each record gets the
    `target_mean` / `target_std` lists that undo it (`target_scales`)."""
    rows = _dataset_rows(datasets, len(y))
    which = np.asarray([_record_of(records, v) for v in rows])
    y2 = y.reshape(len(y), -1).astype(np.float64)
    z = np.empty_like(y2)
    for k, rec in enumerate(records):
        part = y2[which == k]
        mean = part.mean(axis=0)
        std = part.std(axis=0)
        std[~(std > 0)] = 1.0
        z[which == k] = (part - mean) / std
        rec["target_mean"] = [float(v) for v in mean]
        rec["target_std"] = [float(v) for v in std]
    return z.reshape(y.shape)


def target_scales(records: Sequence[dict[str, Any]], datasets: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the target mean and std ([n, outputs] each) of the row's dataset among `records`; a dataset
    that is none of them gets the mean over the records."""
    means = np.asarray([r["target_mean"] for r in records], dtype=np.float64)
    stds = np.asarray([r["target_std"] for r in records], dtype=np.float64)
    if datasets is None:
        raise DataError("this predictor was fit on several datasets: pass datasets= (or condition_on) to predict")
    offset = np.empty((n, means.shape[1]))
    factor = np.empty((n, means.shape[1]))
    for i, vec in enumerate(_dataset_rows(datasets, n)):
        k = _record_of(records, vec)
        offset[i] = means.mean(axis=0) if k is None else means[k]
        factor[i] = stds.mean(axis=0) if k is None else stds[k]
    return offset, factor
