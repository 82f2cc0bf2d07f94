"""How a store writes values: JSON documents and checkpoints, never pickle.

Documents (configs, metrics, results, measurements) are JSON with numpy values turned into plain ones and
non-finite floats kept (`{"__float__": "inf"}`); checkpoints are JSON (numpy arrays as typed lists) or, when
they hold torch tensors, `torch.save` of tensors and plain containers, loaded back with `weights_only=True`.
Every store (SQLite, in memory) goes through these functions, so a value read back is the same whichever
store held it.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import StoreError
from ..files import parse_json

#: the keys that mark a tagged value: what `from_json_value` decodes, and what `loads` looks for before walking
NDARRAY_TAG = "__ndarray__"
FLOAT_TAG = "__float__"
_TAGS = (NDARRAY_TAG, FLOAT_TAG)
_TAGS_BYTES = tuple(t.encode() for t in _TAGS)


def to_json_value(value: Any) -> Any:
    """`value` as plain JSON values (numpy arrays as typed lists, non-finite floats tagged)."""
    # the plain built-in types first, by exact type: a stored evaluation is an architecture document of a
    # few hundred nodes, and the isinstance checks below (Mapping is an ABC) cost most of writing it
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else {FLOAT_TAG: repr(value)}
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str and not isinstance(k, str):
                raise StoreError(f"checkpoint keys must be strings, got {k!r}")
            out[k] = to_json_value(v)
        return out
    if kind is list:
        return [to_json_value(v) for v in value]
    return _other_json_value(value)


def _other_json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {NDARRAY_TAG: value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise StoreError(f"checkpoint keys must be strings, got {k!r}")
            out[k] = to_json_value(v)
        return out
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {FLOAT_TAG: repr(value)}
    raise StoreError(
        f"cannot store a {type(value).__name__} in a checkpoint (JSON values, numpy arrays or torch tensors only)"
    )


def from_json_value(value: Any) -> Any:
    """The inverse of `to_json_value`."""
    if isinstance(value, dict):
        if NDARRAY_TAG in value:
            return np.asarray(value[NDARRAY_TAG], dtype=value["dtype"]).reshape(value["shape"])
        if FLOAT_TAG in value:
            return float(value[FLOAT_TAG])
        return {k: from_json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json_value(v) for v in value]
    return value


def dumps(doc: Any) -> str:
    """A document as the JSON text a store keeps."""
    return json.dumps(to_json_value(doc), sort_keys=True)


def loads(text: str | bytes, what: str = "a stored document", decode: bool = True) -> Any:
    """A document read back from its stored JSON text (`decode=False`: plain JSON, no value codec). Text
    that is not JSON (a store copied while it was written, a damaged file) is a `StoreError` naming `what`."""
    if not isinstance(text, (str, bytes)):  # a tampered column of another SQLite type
        raise StoreError(f"{what} is not stored as JSON text (got {type(text).__name__}); the store is damaged")
    doc = parse_json(text, f"{what} (the store may be damaged, or was copied while a search wrote it)", StoreError)
    return from_json_value(doc) if decode and _has_tags(text) else doc


def _has_tags(text: str | bytes) -> bool:
    """Can the JSON `text` hold a tagged value (`_TAGS`)? Where not, `from_json_value` would rebuild the
    document unchanged: an evaluator's result of a few hundred values, read for every stored evaluation
    (`na-toolkit runs`, `open_run`), walked for nothing cost about as much as parsing it."""
    if isinstance(text, bytes):
        return any(t in text for t in _TAGS_BYTES)
    return any(t in text for t in _TAGS)


def _holds_tensor(value: Any) -> bool:
    if type(value).__module__.startswith("torch"):
        return True
    if isinstance(value, Mapping):
        return any(_holds_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_tensor(v) for v in value)
    return False


def encode_state(state: Any) -> tuple[str, bytes]:
    """(format, bytes) of a checkpoint: 'torch' when it holds tensors, else 'json'."""
    if _holds_tensor(state):
        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        return "torch", buf.getvalue()
    return "json", json.dumps(to_json_value(state), sort_keys=True).encode()


def decode_state(fmt: str, blob: bytes) -> Any:
    if fmt == "json":
        return loads(blob, "a stored checkpoint")
    if fmt == "torch":
        import torch

        try:
            return torch.load(io.BytesIO(blob), weights_only=True)
        except Exception as exc:
            # weights_only refuses anything but tensors and plain containers: a blob holding other pickled
            # objects, or a truncated or garbled one (torch raises many kinds of error for those), ends here
            raise StoreError(
                f"a stored checkpoint is not a readable tensor state ({type(exc).__name__}: {str(exc)[:80]})"
            ) from None
    raise StoreError(f"unknown checkpoint format {fmt!r} (this toolkit reads json and torch)")
