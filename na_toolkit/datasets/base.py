"""Datasets: a registered `DatasetSource` loads a `Dataset` (seeded train/valid/test split of N,C,H,W float32
images with integer labels); every dataset has a `DatasetDescriptor` (see `descriptor.py`).

A source's loader returns either `LabeledArrays` (all samples; the source splits them, stratified, from a seed)
or a ready `Dataset` (a dataset with an official split keeps it). Loaded datasets are cached per process by
(seed, fractions): a search evaluates many candidates on the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from .descriptor import DatasetDescriptor

#: default share of the samples held out for validation (model selection) and test (reporting)
VALID_FRACTION = 0.1
TEST_FRACTION = 0.2


#: channel counts of images (grey, RGB, RGBA): an (N, a, b, c) array with c among them and a not looks NHWC
IMAGE_CHANNELS = (1, 3, 4)


@dataclass(frozen=True)
class RawInput:
    """How a dataset's x values were made from its raw data, so that a deployer can do the same:
    x = (raw - subtract) / divide_by, in float32, per value (`apply`), after what `description` says (an image
    folder's: the images converted to Pillow mode `image_mode` and, with `resize`, resized to (H, W) with
    bilinear filtering). Recorded with every evaluation and in every export's sidecar (`to_json`)."""

    divide_by: float = 1.0
    subtract: float = 0.0
    #: the raw values' range, (low, high), when the source knows it (8-bit pixels: (0, 255))
    raw_range: tuple[float, float] | None = None
    description: str = ""
    image_mode: str | None = None
    resize: tuple[int, int] | None = None

    def apply(self, raw: Any) -> np.ndarray:
        """The dataset's x values of `raw` values."""
        return (np.asarray(raw, dtype=np.float32) - np.float32(self.subtract)) / np.float32(self.divide_by)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "formula": "x = (raw - subtract) / divide_by, float32",
            "divide_by": self.divide_by,
            "subtract": self.subtract,
            "raw_range": list(self.raw_range) if self.raw_range is not None else None,
            "description": self.description,
        }
        if self.image_mode is not None:
            doc.update(image_mode=self.image_mode, resize=list(self.resize) if self.resize else None)
        return doc


#: what user arrays (`dataset_from_arrays`, an `.npz` file) are: their values as given
AS_GIVEN = RawInput(description="the arrays' values as given (no scaling)")


@dataclass(frozen=True, eq=False)
class LabeledArrays:
    """All samples of a dataset before the split: `x` (N, C, H, W) float32, `y` (N,) int64 in [0, classes).

    `layout` says how a 4-d `x` is laid out: "NCHW", "NHWC" (transposed when the source loads it) or None (not
    said: read as NCHW, and an `x` that looks channels-last is refused; see `check_arrays`). `raw_input`: how `x`
    was made from the raw data (None: not known)."""

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    layout: str | None = None
    raw_input: RawInput | None = None


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: train / valid / test arrays, x as (N, C, H, W) float32 (pixel values scaled to
    [0, 1] for the built-in loaders), y as (N,) int64 class indices into `class_names`.

    `layout` says how the x arrays given are laid out, as for `LabeledArrays`: "NCHW" (taken as they are),
    "NHWC" (every split transposed here; the Dataset then says "NCHW") or None (not said: one that looks
    channels-last, e.g. (N, 32, 32, 3), is refused where a ready Dataset comes in; see `check_ready`)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    #: the seed the split was drawn from (None: the dataset came with its own split)
    split_seed: int | None = None
    layout: str | None = None
    #: how x was made from the raw data (`RawInput`; None: the loader did not say)
    raw_input: RawInput | None = None

    def __post_init__(self) -> None:
        check_layout(self.name, self.layout)
        if self.layout == "NHWC":
            for part in ("train", "valid", "test"):
                x = getattr(self, f"x_{part}")
                if x.ndim == 4:  # other dims: refused below
                    object.__setattr__(self, f"x_{part}", np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            object.__setattr__(self, "layout", "NCHW")
        for part in ("train", "valid", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x.ndim != 4:
                raise DataError(f"dataset {self.name!r}: x_{part} must be (N, C, H, W), got shape {x.shape}")
            if y.shape != (len(x),):
                raise DataError(f"dataset {self.name!r}: y_{part} has shape {y.shape}, expected ({len(x)},)")
            if x.shape[1:] != self.x_train.shape[1:]:
                raise DataError(
                    f"dataset {self.name!r}: x_{part} samples are {x.shape[1:]}, x_train ones {self.x_train.shape[1:]}"
                )
            if len(y) and (y.min() < 0 or y.max() >= len(self.class_names)):
                raise DataError(f"dataset {self.name!r}: y_{part} holds labels outside [0, {len(self.class_names)})")
        if len(self.x_train) == 0:
            raise DataError(f"dataset {self.name!r}: the training split is empty")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def classes(self) -> int:
        return len(self.class_names)

    @property
    def samples(self) -> int:
        return len(self.y_train) + len(self.y_valid) + len(self.y_test)

    def all_arrays(self) -> LabeledArrays:
        return LabeledArrays(
            np.concatenate([self.x_train, self.x_valid, self.x_test]),
            np.concatenate([self.y_train, self.y_valid, self.y_test]),
            self.class_names,
            layout=self.layout,
            raw_input=self.raw_input,
        )

    @cached_property
    def descriptor(self) -> DatasetDescriptor:
        from .descriptor import describe

        return describe(self)

    def __repr__(self) -> str:
        return (
            f"<Dataset {self.name} {self.input_shape} classes={self.classes} "
            f"train={len(self.y_train)} valid={len(self.y_valid)} test={len(self.y_test)}>"
        )


@dataclass(frozen=True)
class DatasetSource:
    """A registered dataset. `loader()` returns `LabeledArrays` (split here) or a `Dataset`."""

    name: str
    description: str
    loader: Callable[[], LabeledArrays | Dataset]
    #: where the data comes from (a path, "scikit-learn", ...), shown by `na-toolkit datasets`
    origin: str = ""
    _cache: dict[Any, Dataset] = field(default_factory=dict, compare=False, repr=False)

    def renamed(self, name: str) -> DatasetSource:
        """This source under another name (what `registry.add(source, name=...)` registers): the datasets it
        loads carry that name."""
        return replace(self, name=name, _cache={})

    def load(
        self, seed: int = 0, valid_fraction: float = VALID_FRACTION, test_fraction: float = TEST_FRACTION
    ) -> Dataset:
        key = (seed, valid_fraction, test_fraction)
        if key not in self._cache:
            data = self.loader()
            if isinstance(data, Dataset):
                # a ready split is taken as is; only a layout that would be misread silently is refused
                self._cache[key] = check_ready(data, "the loader's Dataset")
            elif isinstance(data, LabeledArrays):
                # a plugin's loader is checked like user arrays (one class, NaNs, label range...)
                raw = data.raw_input
                data = check_arrays(self.name, data.x, data.y, class_names=data.class_names, layout=data.layout)
                data = replace(data, raw_input=raw)
                self._cache[key] = split_dataset(self.name, data, seed, valid_fraction, test_fraction)
            else:
                raise DataError(
                    f"dataset {self.name!r}: the loader returned {type(data).__name__}, "
                    "expected LabeledArrays or Dataset"
                )
        return self._cache[key]


def looks_channels_last(shape: tuple[int, ...]) -> bool:
    """Does a 4-d array of `shape` look (N, H, W, C) rather than (N, C, H, W)? Its last dimension is an image's
    channel count and its second is not; or its second and third are equal (square images) and its last is not,
    unless only its second is a channel count (read channels-first, (N, 16, 16, 2) would be 16 channels of 16x2
    images and (N, 4, 4, 3) 4 of 4x3; (N, 1, 1, 64) stays one channel of 1x64)."""
    first, last = shape[1] in IMAGE_CHANNELS, shape[3] in IMAGE_CHANNELS
    return (last and not first) or (shape[1] == shape[2] != shape[3] and not (first and not last))


def check_ready(data: Dataset, what: str = "the Dataset") -> Dataset:
    """`data` as it is, unless its arrays look channels-last and it does not say its layout: a DataError
    saying how to say it (a loader's Dataset, and one given to `get_dataset` or the evaluator, come here)."""
    shape = tuple(data.x_train.shape)
    if data.layout is None and looks_channels_last(shape):
        raise DataError(
            f"dataset {data.name!r}: {what} holds x_train of shape {shape}, which looks channels-last (N, H, W, C) "
            f"but a Dataset is (N, C, H, W): {shape[1]} channels; say its layout: Dataset(..., layout='NHWC') "
            f"transposes every split, Dataset(..., layout='NCHW') if it really has {shape[1]} channels "
            "(dataclasses.replace(ds, layout=...) for a Dataset made elsewhere); or return LabeledArrays(x, y, "
            "class_names, layout=...) and let the toolkit split it"
        )
    return data


def check_layout(name: str, layout: str | None) -> None:
    if layout not in (None, "NCHW", "NHWC"):
        raise DataError(f"dataset {name!r}: layout must be 'NCHW' or 'NHWC', got {layout!r}")


def check_arrays(
    name: str,
    x: Any,
    y: Any,
    class_names: Sequence[Any] | None = None,
    layout: str | None = None,
    say_layout: str = "",
) -> LabeledArrays:
    """Validate user arrays and bring them to the dataset convention (the one place where arrays become a
    dataset: `dataset_from_arrays`, `.npz` files and registered loaders all come through here).

    x: (N, C, H, W) (or (N, H, W, C) with layout="NHWC", or (N, H, W): one channel), numeric, finite. With no
    layout given, a 4-d x that looks channels-last, e.g. (N, 32, 32, 3), is refused rather than read as 32
    channels; layout="NCHW" says it really is channels-first.
    y: (N,) labels of any sortable type; the distinct values, sorted, become classes 0..K-1 (their `str` are
    the class names unless `class_names` is given, in which case y must already be ints in [0, K)).
    `say_layout`: how the caller's user says the layout (an .npz file's: its `layout` array), for the error."""
    x = np.asarray(x)
    y = np.asarray(y)
    check_layout(name, layout)
    if x.dtype.kind not in "biuf":
        raise DataError(f"dataset {name!r}: x must be numeric, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim == 4:
        if layout is None and looks_channels_last(x.shape):
            raise DataError(
                f"dataset {name!r}: x has shape {tuple(x.shape)}, which looks channels-last (N, H, W, C) but would "
                f"be read as (N, C, H, W), {x.shape[1]} channels; say layout='NHWC' (the dataset_from_arrays / "
                "dataset_from_npz argument, the .npz's `layout` array or LabeledArrays' field), or layout='NCHW' "
                f"if it really has {x.shape[1]} channels" + (f"; {say_layout}" if say_layout else "")
            )
        if layout == "NHWC":
            x = x.transpose(0, 3, 1, 2)
    else:
        raise DataError(
            f"dataset {name!r}: x must be images of shape (N, C, H, W) or (N, H, W), got {x.ndim} dims {x.shape}; "
            "reshape flat features to images first"
        )
    if y.ndim != 1:
        one_hot = y.ndim == 2 and y.shape[1] > 1 and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()
        hint = "; they look one-hot: give y.argmax(axis=1)" if one_hot else ""
        raise DataError(f"dataset {name!r}: y must be one label per sample (1-D), got shape {y.shape}{hint}")
    if len(x) != len(y):
        raise DataError(f"dataset {name!r}: x has {len(x)} samples but y has {len(y)} labels; they must match")
    if len(x) == 0:
        raise DataError(f"dataset {name!r}: no samples")
    if any(d == 0 for d in x.shape[1:]):
        raise DataError(f"dataset {name!r}: empty image shape {x.shape[1:]}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"dataset {name!r}: x holds NaN or infinite values")
    if y.dtype.kind == "f" and not np.isfinite(y).all():  # np.unique would make "nan" a class of its own
        bad = np.flatnonzero(~np.isfinite(y))
        raise DataError(
            f"dataset {name!r}: y holds {len(bad)} NaN or infinite label(s) (the first at index {int(bad[0])}); "
            "drop those samples or give them their class"
        )
    if y.dtype.kind == "f" and len(np.unique(y)) > len(y) / 2 and not np.all(y == np.round(y)):
        raise DataError(
            f"dataset {name!r}: y holds {len(np.unique(y))} distinct fractional values for {len(y)} samples, which "
            "look like continuous targets; a dataset here is for classification: give class labels (ints or names)"
        )
    if class_names is not None:
        class_names = tuple(str(c) for c in class_names)
        twice = sorted({c for c in class_names if class_names.count(c) > 1})
        if twice:  # an export's outputs could not be told apart
            raise DataError(f"dataset {name!r}: class name(s) {twice} given twice; each class needs its own name")
        if y.dtype.kind not in "iu" or (y.min() < 0 or y.max() >= len(class_names)):
            raise DataError(_label_problem(name, y, len(class_names)))
        labels = y.astype(np.int64)
        present = len(np.unique(labels))
    else:
        try:
            values, labels = np.unique(y, return_inverse=True)
        except TypeError as exc:
            raise DataError(f"dataset {name!r}: labels cannot be sorted ({exc})") from None
        class_names = tuple(str(v) for v in values)
        labels = labels.astype(np.int64).reshape(-1)
        present = len(values)
    if present < 2:
        raise DataError(
            f"dataset {name!r}: only {present} class present in the labels; a classification dataset needs at least 2"
        )
    return LabeledArrays(x, labels, class_names, layout="NCHW")


def _label_problem(name: str, y: np.ndarray, classes: int) -> str:
    """What is wrong with labels `y` given `classes` class names, with what was got and how to fix it."""
    head = f"dataset {name!r}: with {classes} class names given, y must be ints in [0, {classes})"
    if y.dtype.kind not in "iu":
        whole = y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all()
        fix = "; they are whole numbers: give y.astype(np.int64)" if whole else ""
        return f"{head}, got dtype {y.dtype}{fix}"
    low, high = int(y.min()), int(y.max())
    got = f"{head}, got labels {low}..{high}"
    if low == 1 and high == classes:
        return f"{got}: they look 1-based; give y - 1"
    if high >= classes:
        return f"{got}: give {high + 1} class names, or drop the labels from {classes} on"
    return f"{got}: negative labels have no class"


def split_dataset(
    name: str,
    data: LabeledArrays,
    seed: int = 0,
    valid_fraction: float = VALID_FRACTION,
    test_fraction: float = TEST_FRACTION,
) -> Dataset:
    """Stratified split: each class's samples are shuffled with `seed` and `valid_fraction` / `test_fraction` of
    them (rounded, at least one where a class has 3+ samples) go to valid / test, the rest to train. The same
    seed and data always give the same split; within each split samples keep ascending original order."""
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise DataError(
            f"dataset {name!r}: valid_fraction ({valid_fraction}) and test_fraction ({test_fraction}) must be in "
            "[0, 1) with a sum below 1"
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    for c in range(len(data.class_names)):
        idx = np.flatnonzero(data.y == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = _share(len(idx), test_fraction)
        n_valid = _share(len(idx) - n_test, valid_fraction / (1 - test_fraction)) if len(idx) - n_test > 1 else 0
        parts["test"].append(idx[:n_test])
        parts["valid"].append(idx[n_test : n_test + n_valid])
        parts["train"].append(idx[n_test + n_valid :])
    arrays: dict[str, Any] = {}
    for part, chunks in parts.items():
        idx = np.sort(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.int64)
        arrays[f"x_{part}"] = data.x[idx]
        arrays[f"y_{part}"] = data.y[idx]
    return Dataset(
        name=name, class_names=data.class_names, split_seed=seed, layout=data.layout, raw_input=data.raw_input, **arrays
    )


def empty_split_advice(data: Dataset, split: str, valid_fraction: float) -> str:
    """What to do about a `split` ("training" or "validation") of `data` left empty: a class gives validation
    a sample only from its third one on (one goes to test first), so more samples per class is the cure."""
    per_class = np.bincount(np.concatenate([data.y_train, data.y_valid, data.y_test]), minlength=data.classes)
    if split == "validation" and per_class.max() <= 2:
        return (
            f"each of its {data.classes} classes has at most 2 samples, and a class gives the validation split one "
            "only from its third (one goes to test first); give more samples per class (or test_fraction = 0)"
        )
    change = "raise" if split == "validation" else "lower"
    return f"give more samples, or {change} the evaluator's valid_fraction (now {valid_fraction})"


def _share(n: int, fraction: float) -> int:
    if fraction <= 0 or n < 2:
        return 0
    k = int(round(n * fraction))
    # a tiny class still gets one held-out sample, and always keeps one to train on
    return min(max(k, 1), n - 1)
