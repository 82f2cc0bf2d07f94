"""`check_dataset`: the dataset contract (docs/plugin_hooks.md, `na_register_datasets`; docs/datasets.md) as
one call: a named, described `DatasetSource` whose loader gives the same samples on every call (each process of
a search loads it anew), and whose split holds float32 images and int64 labels of every class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..datasets.base import Dataset, DatasetSource, LabeledArrays
from ..errors import NAToolkitError
from ._common import expect, fail, resolve, toolkit_or_default

if TYPE_CHECKING:  # pragma: no cover
    from ..datasets.descriptor import DatasetDescriptor
    from ..toolkit import Toolkit

#: what a loader returns where a split is drawn (`DatasetSource.load`)
PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class DatasetResult:
    """What `check_dataset` found (every check passed)."""

    name: str
    dataset: Dataset
    descriptor: DatasetDescriptor


def check_dataset(source: DatasetSource | str, toolkit: Toolkit | None = None, *, seed: int = 0) -> DatasetResult:
    """Check a dataset source against its contract; raise AssertionError (`ConformanceError`) naming the
    dataset and what broke.

    source: the `DatasetSource`, or its name in `toolkit.datasets`. seed: the split's seed."""
    tk = toolkit_or_default(toolkit)
    name, found = resolve(tk.datasets, source, "dataset")
    label = f"dataset {name!r}"
    if not isinstance(found, DatasetSource):
        fail(label, f"{found!r} is not a DatasetSource (register DatasetSource(name, description, loader))")
    expect(found.name, label, "has no name: DatasetSource(name, description, loader)")
    expect(found.description, label, "has no description (shown by na-toolkit datasets)")
    first, second = _call_loader(found, label), _call_loader(found, label)
    expect(
        _same(first, second),
        label,
        "the loader returned other samples on a second call: draw them from a seeded generator "
        "(np.random.default_rng(0)) and read files in a fixed order; each process of a search (its workers) "
        "loads the dataset anew and must see the same samples",
    )
    data = _load(found.renamed(found.name), seed, label)  # a fresh copy: nothing cached by an earlier load
    again = _load(found.renamed(found.name), seed, label)
    for part in PARTS:
        x, y = getattr(data, f"x_{part}"), getattr(data, f"y_{part}")
        expect(x.dtype == np.float32, label, f"x_{part} has dtype {x.dtype}, expected float32 (x.astype(np.float32))")
        expect(y.dtype == np.int64, label, f"y_{part} has dtype {y.dtype}, expected int64 class indices")
        expect(np.isfinite(x).all(), label, f"x_{part} holds NaN or infinite values")
        expect(
            np.array_equal(x, getattr(again, f"x_{part}")) and np.array_equal(y, getattr(again, f"y_{part}")),
            label,
            f"two loads with seed {seed} gave different {part} splits",
        )
    names = data.class_names
    expect(
        len(names) >= 2 and len(set(names)) == len(names) and all(isinstance(n, str) and n for n in names),
        label,
        f"class_names must be two or more distinct, non-empty strings, got {names!r}",
    )
    missing = sorted(set(range(len(names))) - {int(c) for c in np.unique(data.y_train)})
    expect(
        not missing,
        label,
        f"no training sample of class(es) {[names[c] for c in missing]}: give every class of class_names samples "
        "(or leave it out of class_names)",
    )
    expect(len(data.y_valid), label, "the validation split is empty (a search selects on validation accuracy)")
    descriptor = data.descriptor
    try:
        json.dumps(descriptor.to_json())
    except (TypeError, ValueError) as exc:
        fail(label, f"its descriptor is not JSON: {exc}")
    return DatasetResult(name, data, descriptor)


def _call_loader(source: DatasetSource, label: str) -> LabeledArrays | Dataset:
    try:
        out = source.loader()
    except Exception as exc:  # a plugin's code: any failure is the check's finding
        fail(label, f"the loader raised {type(exc).__name__}: {exc}")
    if not isinstance(out, (LabeledArrays, Dataset)):
        fail(label, f"the loader returned {type(out).__name__}; return LabeledArrays(x, y, class_names) or a Dataset")
    return out


def _load(source: DatasetSource, seed: int, label: str) -> Dataset:
    try:
        return source.load(seed)
    except NAToolkitError as exc:  # the toolkit's own check of the loader's arrays, which says what to do
        fail(label, str(exc).removeprefix(f"{label}: "))


def _same(a: LabeledArrays | Dataset, b: LabeledArrays | Dataset) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, LabeledArrays):
        assert isinstance(b, LabeledArrays)
        return bool(
            np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and tuple(a.class_names) == tuple(b.class_names)
        )
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for p in PARTS for f in (f"x_{p}", f"y_{p}"))
