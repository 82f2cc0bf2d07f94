"""The dataset descriptor: the paper's "size, distribution and regularity" of a dataset as numbers, so that a
predictor trained on one dataset's runs can be conditioned on (and transfer to) another.

Every field is documented on `DatasetDescriptor`; docs/datasets.md explains how each is computed. The statistics
that cost more than one pass (histogram entropy, gradients, neighbour correlation, nearest-centroid accuracy) are
taken on a fixed subsample of at most `STAT_SAMPLES` images (chosen with a fixed seed), so a descriptor is cheap
on large datasets and identical across runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from .base import Dataset

DESCRIPTOR_VERSION = 1
#: statistics a descriptor may leave unknown (NaN; null in JSON): one written from a dataset's published figures
#: rather than computed from its images (e.g. the NAS-Bench-201 plugin's CIFAR / ImageNet16-120 descriptors). A
#: predictor leaves an entry unknown for any training dataset out of its features.
UNKNOWABLE_FIELDS = (
    "class_entropy",
    "class_balance_ratio",
    "pixel_entropy_bits",
    "mean_gradient",
    "neighbour_correlation",
    "background_fraction",
    "centroid_accuracy",
)
STAT_SAMPLES = 4096
HISTOGRAM_BINS = 256


@dataclass(frozen=True)
class DatasetDescriptor:
    name: str
    #: all samples (train + valid + test) and the split sizes
    samples: int
    train_samples: int
    valid_samples: int
    test_samples: int
    classes: int
    #: (C, H, W)
    input_shape: tuple[int, ...]
    #: smallest and largest number of samples of one class
    samples_per_class_min: int
    samples_per_class_max: int
    #: Shannon entropy of the label distribution divided by log(classes): 1.0 = perfectly balanced
    class_entropy: float
    #: samples_per_class_min / samples_per_class_max: 1.0 = balanced, near 0 = a rare class
    class_balance_ratio: float
    #: per-channel mean and standard deviation of the pixel values (all samples), as loaded
    channel_mean: tuple[float, ...]
    channel_std: tuple[float, ...]
    #: entropy in bits of a 256-bin histogram of pixel values between the data's min and max (0..8): how many
    #: intensity levels are in use (digits' 17 grey levels give at most 4.1 bits, natural photos approach 8)
    pixel_entropy_bits: float
    #: mean absolute difference of horizontally and vertically adjacent pixels, divided by the pixel std:
    #: the (inverse) smoothness of the images, scale free (0 = flat images)
    mean_gradient: float
    #: Pearson correlation of adjacent pixel pairs (horizontal and vertical, pooled): spatial regularity,
    #: about 0.9 for natural images, near 0 for noise
    neighbour_correlation: float
    #: share of pixel values equal to the data's minimum: background / sparsity (digits, MNIST: high)
    background_fraction: float
    #: accuracy of a nearest-class-mean classifier on standardised pixels (fit on one half of the subsample,
    #: scored on the other, stratified): a cheap difficulty / separability figure; chance is 1/classes
    centroid_accuracy: float
    version: int = DESCRIPTOR_VERSION

    # The order of `to_vector()`; every entry is a float of comparable scale (logs of sizes, ratios in [0, 1]).
    VECTOR_NAMES = (
        "log10_samples",
        "log10_train_samples",
        "log2_classes",
        "channels",
        "log2_height",
        "log2_width",
        "class_entropy",
        "class_balance_ratio",
        "pixel_mean",
        "pixel_std",
        "pixel_entropy_bits",
        "mean_gradient",
        "neighbour_correlation",
        "background_fraction",
        "centroid_accuracy",
    )

    @classmethod
    def vector_names(cls) -> tuple[str, ...]:
        return cls.VECTOR_NAMES

    def to_vector(self) -> np.ndarray:
        """A fixed-length float64 vector (names in `VECTOR_NAMES`), the same length for every dataset: per-channel
        statistics enter as their mean over channels (the channel count is its own entry)."""
        c, h, w = self.input_shape
        values = (
            math.log10(self.samples),
            math.log10(max(self.train_samples, 1)),
            math.log2(self.classes),
            float(c),
            math.log2(h),
            math.log2(w),
            self.class_entropy,
            self.class_balance_ratio,
            float(np.mean(self.channel_mean)),
            float(np.mean(self.channel_std)),
            self.pixel_entropy_bits,
            self.mean_gradient,
            self.neighbour_correlation,
            self.background_fraction,
            self.centroid_accuracy,
        )
        return np.asarray(values, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        """A JSON object; a statistic that is unknown (NaN: a descriptor written from published figures that do
        not give it) is null, so the document is strict JSON."""
        doc = asdict(self)
        for key in ("input_shape", "channel_mean", "channel_std"):
            doc[key] = list(doc[key])
        for key in UNKNOWABLE_FIELDS:
            if isinstance(doc[key], float) and math.isnan(doc[key]):
                doc[key] = None
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DatasetDescriptor:
        if not isinstance(doc, dict):
            raise DataError(f"a dataset descriptor must be a JSON object, got {type(doc).__name__}")
        if doc.get("version", DESCRIPTOR_VERSION) != DESCRIPTOR_VERSION:
            raise DataError(
                f"dataset descriptor version {doc.get('version')!r} is not supported (this toolkit reads "
                f"{DESCRIPTOR_VERSION}); recompute it with `na-toolkit datasets --json`"
            )
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(doc) - {"version"})
        if missing:
            raise DataError(f"dataset descriptor misses field(s): {', '.join(missing)}")
        kw = {k: doc[k] for k in names if k in doc}
        for key in ("input_shape", "channel_mean", "channel_std"):
            if not isinstance(kw[key], list) or not all(isinstance(v, (int, float)) for v in kw[key]):
                raise DataError(f"dataset descriptor field {key!r} must be a list of numbers, got {kw[key]!r}")
            kw[key] = tuple(kw[key])
        if len(kw["input_shape"]) != 3:
            raise DataError(f"dataset descriptor input_shape must be (C, H, W), got {kw['input_shape']}")
        for key in UNKNOWABLE_FIELDS:
            if kw[key] is None:
                kw[key] = math.nan
        return cls(**kw)


def describe(dataset: Dataset) -> DatasetDescriptor:
    """Compute the descriptor of a loaded dataset over all its samples (the split does not change it, except for
    the split sizes)."""
    data = dataset.all_arrays()
    x, y, k = data.x, data.y, len(data.class_names)
    counts = np.bincount(y, minlength=k)
    p = counts[counts > 0] / counts.sum()
    class_entropy = float(-(p * np.log(p)).sum() / math.log(k)) if k > 1 else 0.0

    # per-channel moments in float64 so large datasets do not lose precision
    axes = (0, 2, 3)
    channel_mean = x.mean(axis=axes, dtype=np.float64)
    channel_std = x.std(axis=axes, dtype=np.float64)

    sub_idx = _subsample(len(x))
    xs, ys = x[sub_idx].astype(np.float64), y[sub_idx]
    lo, hi = float(xs.min()), float(xs.max())
    if hi > lo:
        hist, _ = np.histogram(xs, bins=HISTOGRAM_BINS, range=(lo, hi))
        q = hist[hist > 0] / hist.sum()
        pixel_entropy = float(-(q * np.log2(q)).sum())
    else:
        pixel_entropy = 0.0
    std = float(xs.std())
    diffs, pairs = [], []
    if xs.shape[3] > 1:
        diffs.append(np.abs(np.diff(xs, axis=3)).ravel())
        pairs.append((xs[..., :-1].ravel(), xs[..., 1:].ravel()))
    if xs.shape[2] > 1:
        diffs.append(np.abs(np.diff(xs, axis=2)).ravel())
        pairs.append((xs[:, :, :-1, :].ravel(), xs[:, :, 1:, :].ravel()))
    mean_gradient = float(np.concatenate(diffs).mean() / std) if diffs and std > 0 else 0.0
    neighbour_corr = _pooled_correlation(pairs)

    return DatasetDescriptor(
        name=dataset.name,
        samples=int(len(y)),
        train_samples=int(len(dataset.y_train)),
        valid_samples=int(len(dataset.y_valid)),
        test_samples=int(len(dataset.y_test)),
        classes=k,
        input_shape=tuple(int(d) for d in x.shape[1:]),
        samples_per_class_min=int(counts.min()),
        samples_per_class_max=int(counts.max()),
        class_entropy=round(class_entropy, 6),
        class_balance_ratio=round(float(counts.min() / counts.max()), 6),
        channel_mean=tuple(round(float(v), 6) for v in channel_mean),
        channel_std=tuple(round(float(v), 6) for v in channel_std),
        pixel_entropy_bits=round(pixel_entropy, 6),
        mean_gradient=round(mean_gradient, 6),
        neighbour_correlation=round(neighbour_corr, 6),
        background_fraction=round(float(np.mean(xs == lo)), 6),
        centroid_accuracy=round(_centroid_accuracy(xs.reshape(len(xs), -1), ys, k), 6),
    )


def _subsample(n: int) -> np.ndarray:
    if n <= STAT_SAMPLES:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, STAT_SAMPLES, replace=False))


def _pooled_correlation(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    if not pairs:
        return 0.0
    a = np.concatenate([p[0] for p in pairs])
    b = np.concatenate([p[1] for p in pairs])
    sa, sb = a.std(), b.std()
    if sa == 0 or sb == 0:
        return 0.0
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


def _centroid_accuracy(x: np.ndarray, y: np.ndarray, k: int) -> float:
    # Stratified halves: within each class, samples alternate between the fit half and the scoring half.
    fit = np.zeros(len(y), dtype=bool)
    for c in range(k):
        idx = np.flatnonzero(y == c)
        fit[idx[::2]] = True
    score = ~fit
    if not score.any():
        return 0.0
    mu, sd = x[fit].mean(axis=0), x[fit].std(axis=0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd
    present = [c for c in range(k) if (fit & (y == c)).any()]
    centroids = np.stack([z[fit & (y == c)].mean(axis=0) for c in present])
    zs = z[score]
    # squared distances via the expansion |a|^2 - 2ab + |b|^2, without an (N, K, F) temporary
    d2 = (zs**2).sum(axis=1)[:, None] - 2 * zs @ centroids.T + (centroids**2).sum(axis=1)[None, :]
    predicted = np.asarray(present)[d2.argmin(axis=1)]
    return float(np.mean(predicted == y[score]))
