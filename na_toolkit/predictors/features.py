"""Architecture features from the IR alone (no knowledge of any search space), for the feature-based
predictors.

`architecture_features(arch)` gives a name -> float mapping, cached per architecture hash:

- size and cost: node count, parameters, MACs, FLOPs, weight / activation / peak-activation bytes (log10);
- shape: longest path in nodes and in compute layers (layers with MACs), widest and mean channel count;
- per layer type: count and share of the network's FLOPs; per (type, feature=value) of the layer types'
  embedding features (e.g. `conv2d.kernel=3`): count;
- paths of the DAG, by dynamic programming over the topological order: number of input -> output paths,
  number of *effective* paths (not through a `zero` layer, which carries no signal), and the distribution
  of effective paths by how many compute layers and how many spatial layers (kernel > 1) they cross
  (histogram, mean, spread, min, max), and the largest receptive field along an effective path. These
  path statistics are what separates, e.g., NAS-Bench-201 cells whose output is cut off from the input
  (no effective path) or reached only through skips, from deep convolutional ones.

`FeatureMatrix` fixes a list of names at fit time and turns architectures (plus optional dataset
descriptors) into a float matrix; names a later architecture lacks are 0, names it adds are ignored, so a
saved model keeps working when plugins add layer types. Descriptor entries that are unknown (NaN: a statistic
a dataset's published figures do not give) in any training row are left out of the features.

The descriptor side (vectors, per-row rows, the records of training datasets, their domain warnings and
per-dataset target scales) is in `descriptor_features.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..caches import lru_dict
from ..errors import DataError
from ..ir.architecture import INPUT, Architecture, architectures
from .descriptor_features import _dataset_rows, dataset_matrix

#: bump when the features of an architecture change: saved models check it (and refit from their stored
#: architectures' features only when it matches)
FEATURES_VERSION = 1
#: path-depth histograms count depths 0..DEPTH_BINS-1 (deeper paths land in the last bin)
DEPTH_BINS = 64
ZERO_TYPE = "zero"

#: architectures whose features are remembered (by content hash; a few KB each)
CACHE_SIZE = 200_000
_cache = lru_dict("predictors.features.ir", CACHE_SIZE)
_kernel_cache = lru_dict("predictors.features.kernels", CACHE_SIZE)


def _log10p(x: float) -> float:
    return math.log10(1.0 + max(float(x), 0.0))


def _path_stats(prefix: str, hist: np.ndarray) -> dict[str, float]:
    """Summaries of a histogram of path counts by depth (counts can be astronomically large: use logs)."""
    total = float(hist.sum())
    out = {f"{prefix}.log_paths": _log10p(total)}
    depths = np.arange(len(hist), dtype=np.float64)
    if total > 0:
        p = hist / total
        mean = float((p * depths).sum())
        out[f"{prefix}.mean"] = mean
        out[f"{prefix}.std"] = float(math.sqrt(max((p * (depths - mean) ** 2).sum(), 0.0)))
        nz = np.flatnonzero(hist)
        out[f"{prefix}.min"] = float(nz[0])
        out[f"{prefix}.max"] = float(nz[-1])
    else:
        for k in ("mean", "std", "min", "max"):
            out[f"{prefix}.{k}"] = -1.0
    for d in np.flatnonzero(hist):
        out[f"{prefix}.hist{int(d):02d}"] = _log10p(hist[d])
    return out


def _node_features(arch: Architecture, node, rec) -> tuple:
    """What one node contributes regardless of where it sits: its count / FLOPs-share / layer-feature keys,
    its kind (type + embedding features, for `_traffic`), kernel and stride. Kept on the node's inference
    record, which every architecture with the same (layer type, attributes, input shapes) shares."""
    info = rec.features
    if info is None:
        t = node.type
        attrs = dict(rec.norm)
        layer_feats = arch.layer_type(node.id).features(attrs, arch.in_shapes(node.id), rec.shape)
        keys = tuple(f"feat.{t}.{k}={v}" for k, v in layer_feats.items())
        kind = t + "".join(f"[{k}={v}]" for k, v in sorted(layer_feats.items()) if k != "inputs")
        info = rec.features = (
            f"count.{t}",
            f"flops_share.{t}",
            keys,
            kind,
            int(attrs.get("kernel", 1) or 1),
            int(attrs.get("stride", 1) or 1),
            t == ZERO_TYPE,
        )
    return info


def _shift(h: np.ndarray | None) -> np.ndarray | None:
    """A depth histogram one layer deeper (the deepest bin collects everything deeper). None = no path."""
    if h is None:
        return None
    out = np.empty_like(h)
    out[0] = 0.0
    out[1:] = h[:-1]
    out[-1] += h[-1]
    return out


def _compute_features(arch: Architecture) -> dict[str, float]:
    cost = arch.cost
    feats: dict[str, float] = {
        "n_nodes": float(len(arch.nodes)),
        "log_params": _log10p(cost.params),
        "log_macs": _log10p(cost.macs),
        "log_flops": _log10p(cost.flops),
        "log_weight_bytes": _log10p(cost.weight_bytes),
        "log_activation_bytes": _log10p(cost.activation_bytes),
        "log_peak_activation_bytes": _log10p(arch.peak_activation_bytes),
        "log_input_elements": _log10p(math.prod(arch.input_shape)),
        "output_units": float(arch.output_shape[0]),
    }
    total_flops = max(cost.flops, 1)
    records = arch.node_records()
    channels = [r.shape[0] for r in records if len(r.shape) == 3]
    feats["max_channels"] = float(max(channels, default=0))
    feats["mean_channels"] = float(np.mean(channels)) if channels else 0.0

    # per-node DP state, indexed by position (0 = the input): longest path (nodes, compute layers), number
    # of paths, of effective paths (not through a `zero` layer), effective-path histograms by compute depth
    # and by spatial depth (None: no effective path; arrays are never written after they are made, so a
    # layer that changes neither depth shares its input's), receptive field on an effective path (0 = none)
    # and the input stride one output step spans. One explicit loop over a node's inputs (not a generator
    # per quantity): this loop is most of the cost of scoring a new network.
    pos = {INPUT: 0}
    n = len(arch.nodes) + 1
    longest = [0] * n
    longest_compute = [0] * n
    paths = [1.0] + [0.0] * (n - 1)
    effective = [1.0] + [0.0] * (n - 1)
    first = np.zeros(DEPTH_BINS)
    first[0] = 1.0
    hc: list[np.ndarray | None] = [first] + [None] * (n - 1)
    hs: list[np.ndarray | None] = [first] + [None] * (n - 1)
    rf = [1.0] + [0.0] * (n - 1)
    jump = [1.0] * n
    kinds: list[str] = [""] * n
    zero = [False] * n
    in_pos: list[tuple[int, ...]] = [()] * n
    counts: dict[str, float] = {}
    counts_get = counts.get
    for i, (node, rec) in enumerate(zip(arch.nodes, records), start=1):
        pos[node.id] = i
        count_key, share_key, feat_keys, kind, kernel, stride, is_zero = _node_features(arch, node, rec)
        counts[count_key] = counts_get(count_key, 0.0) + 1.0
        c = rec.cost
        counts[share_key] = counts_get(share_key, 0.0) + c.flops / total_flops
        for key in feat_keys:
            counts[key] = counts_get(key, 0.0) + 1.0
        kinds[i] = kind
        zero[i] = is_zero
        is_compute = c.macs > 0
        inputs = node.inputs
        if len(inputs) == 1:
            j = pos[inputs[0]]
            in_pos[i] = (j,)
            longest[i] = 1 + longest[j]
            longest_compute[i] = int(is_compute) + longest_compute[j]
            paths[i] = paths[j]
            j_in = jump[j]
            if is_zero:
                jump[i] = j_in * stride
                continue  # no effective path goes through: histograms and receptive field stay empty
            effective[i] = 0.0 + effective[j]
            h_c, h_s, live = hc[j], hs[j], rf[j]
        else:
            ins = in_pos[i] = tuple(pos[s] for s in inputs)
            deepest = deepest_compute = 0
            n_paths = n_effective = j_in = live = 0.0
            h_c = h_s = None
            for j in ins:
                if longest[j] > deepest:
                    deepest = longest[j]
                if longest_compute[j] > deepest_compute:
                    deepest_compute = longest_compute[j]
                n_paths += paths[j]
                n_effective += effective[j]
                if jump[j] > j_in:
                    j_in = jump[j]
                if rf[j] > live:
                    live = rf[j]
                if hc[j] is not None:
                    h_c = hc[j] if h_c is None else h_c + hc[j]
                if hs[j] is not None:
                    h_s = hs[j] if h_s is None else h_s + hs[j]
            longest[i] = 1 + deepest
            longest_compute[i] = int(is_compute) + deepest_compute
            paths[i] = n_paths
            if is_zero:
                jump[i] = j_in * stride
                continue
            effective[i] = n_effective
        jump[i] = j_in * stride
        hc[i] = _shift(h_c) if is_compute else h_c
        hs[i] = _shift(h_s) if kernel > 1 else h_s
        rf[i] = live + (kernel - 1) * j_in if live > 0 else 0.0
    feats.update(counts)
    o = pos[arch.output]
    feats.update(_traffic(o, effective, in_pos, kinds, zero))
    feats["depth"] = float(longest[o])
    feats["compute_depth"] = float(longest_compute[o])
    feats["log_paths"] = _log10p(paths[o])
    feats["log_receptive_field"] = _log10p(rf[o])
    empty = np.zeros(DEPTH_BINS)
    h_c = empty if hc[o] is None else hc[o]
    feats.update(_path_stats("eff_compute", h_c))
    feats.update(_path_stats("eff_spatial", empty if hs[o] is None else hs[o]))
    feats["has_effective_path"] = float(h_c.sum() > 0)
    return feats


def _traffic(
    output: int, effective: list[float], in_pos: list[tuple[int, ...]], kinds: list[str], zero: list[bool]
) -> dict[str, float]:
    """Per layer kind (type + its embedding features, e.g. `conv2d[kernel=3]...`): how many of its layers an
    effective input -> output path crosses on average (paths through node n = effective paths into n (the
    forward pass, done by `_compute_features`) x paths out of n (a backward pass here); a `zero` layer ends
    every path). Nodes are given by position (0 = the input)."""
    total = effective[output]
    out: dict[str, float] = {}
    if total <= 0:
        return out
    n = len(effective)
    bwd = [0.0] * n
    bwd[output] = 1.0
    for i in range(n - 1, 0, -1):
        b = 0.0 if zero[i] else bwd[i]
        for j in in_pos[i]:
            bwd[j] += b
    for i in range(1, n):
        through = effective[i] * bwd[i]
        if through > 0:
            key = f"through.{kinds[i]}"
            out[key] = out.get(key, 0.0) + through / total
    return out


def architecture_features(arch: Architecture) -> dict[str, float]:
    """Name -> value features of one architecture (cached by content hash; do not mutate the result)."""
    key = arch.hash
    hit: dict[str, float] | None = _cache.get(key)
    if hit is None:
        hit = _cache[key] = _compute_features(arch)
    return hit


def kernel_features(arch: Architecture) -> dict[str, float]:
    """The runtime's view of a network, for additive time models: name -> value of the count of each kernel
    configuration (`cfg:<key>`, from `na_toolkit.timemodels.kernels.kernels_of`: conv+BN+ReLU fused, adds,
    pools ...) and per kernel kind the count, GFLOPs and MB moved (`kind:<kind>.count|gflops|mbytes`; these
    carry over to configurations no training network had). Cached by architecture hash."""
    hit: dict[str, float] | None = _kernel_cache.get(arch.hash)
    if hit is not None:
        return hit
    from ..timemodels.kernels import kernels_of

    out: dict[str, float] = {}
    for k in kernels_of(arch):
        cfg = k.config
        if cfg.kind == "free":
            continue  # views and identities: no kernel runs
        key = f"cfg:{cfg.key}"
        out[key] = out.get(key, 0.0) + 1.0
        f = cfg.features
        for name, value in (
            ("count", 1.0),
            ("gflops", f["flops"] / 1e9),
            ("mbytes", (f["in_bytes"] + f["out_bytes"] + f["weight_bytes"]) / 1e6),
        ):
            kk = f"kind:{cfg.kind}.{name}"
            out[kk] = out.get(kk, 0.0) + value
    _kernel_cache[arch.hash] = out
    return out


def clear_feature_caches() -> None:
    """Forget every architecture's cached features, and only those (the NB201 benchmark's cold scoring
    rate); `na_toolkit.caches.clear_caches()` empties them with every other registered cache."""
    _cache.clear()
    _kernel_cache.clear()


#: named feature sets a feature-based predictor can use
FEATURE_SETS = {"ir": architecture_features, "kernels": kernel_features}


def feature_set_function(feature_set: str):
    """The function computing one named feature set; DataError naming the known ones otherwise."""
    fn = FEATURE_SETS.get(feature_set)
    if fn is None:
        raise DataError(f"unknown feature set {feature_set!r}; known: {', '.join(FEATURE_SETS)}")
    return fn


def feature_matrix(archs: Sequence[Architecture], names: Sequence[str], feature_set: str = "ir") -> np.ndarray:
    """[n, len(names)]: each architecture's features of that set, 0 where it has none of a name."""
    fn = feature_set_function(feature_set)
    index = {n: i for i, n in enumerate(names)}
    X = np.zeros((len(archs), len(names)))
    for r, a in enumerate(archs):
        for name, v in fn(a).items():
            j = index.get(name)
            if j is not None:
                X[r, j] = v
    return X


def kernel_matrix(archs: Sequence[Architecture], names: Sequence[str]) -> np.ndarray:
    return feature_matrix(archs, names, "kernels")


def check_architectures(archs: Any) -> list[Architecture]:
    """`archs` as a list of Architectures, or a DataError saying what is wrong (`ir.architecture.architectures`)."""
    return architectures(archs, "archs")


class FeatureMatrix:
    """Turns architectures (+ dataset descriptors) into a matrix over a fixed list of feature names of one
    feature set (`FEATURE_SETS`)."""

    def __init__(
        self,
        names: Sequence[str],
        dataset_dim: int = 0,
        feature_set: str = "ir",
        dataset_columns: Sequence[int] | None = None,
    ):
        feature_set_function(feature_set)  # a clear error for an unknown set, now rather than at transform
        self.names = list(names)
        #: length of the descriptor vector the predictor takes (0: fit without descriptors)
        self.dataset_dim = int(dataset_dim)
        self.feature_set = feature_set
        #: the descriptor entries that are features (None: all; entries unknown in training are left out)
        self.dataset_columns = None if dataset_columns is None else [int(c) for c in dataset_columns]

    @classmethod
    def fit(cls, archs: Sequence[Architecture], datasets: Any = None, feature_set: str = "ir") -> FeatureMatrix:
        fn = feature_set_function(feature_set)
        names: set[str] = set()
        for a in archs:
            names.update(fn(a))
        dim, columns = 0, None
        if datasets is not None:
            rows = _dataset_rows(datasets, len(archs))
            dim = rows.shape[1]
            known = np.isfinite(rows).all(axis=0)
            if not known.all():
                columns = [int(c) for c in np.flatnonzero(known)]
        return cls(sorted(names), dim, feature_set, columns)

    @property
    def used_dataset_columns(self) -> list[int]:
        return list(range(self.dataset_dim)) if self.dataset_columns is None else self.dataset_columns

    @property
    def n_features(self) -> int:
        return len(self.names) + len(self.used_dataset_columns)

    @property
    def all_names(self) -> list[str]:
        return self.names + [f"dataset[{i}]" for i in self.used_dataset_columns]

    def transform(self, archs: Sequence[Architecture], datasets: Any = None) -> np.ndarray:
        X = feature_matrix(archs, self.names, self.feature_set)
        if self.dataset_dim:
            rows = dataset_matrix(datasets, len(archs), self.dataset_dim)
            used = self.used_dataset_columns
            if not np.isfinite(rows[:, used]).all():
                raise DataError(
                    "a dataset descriptor leaves a statistic unknown (NaN) that this predictor was trained on; "
                    "give the descriptor with every statistic of its training datasets"
                )
            X = np.hstack([X, rows[:, used]])
        return X

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "names": self.names,
            "dataset_dim": self.dataset_dim,
            "features_version": FEATURES_VERSION,
            "feature_set": self.feature_set,
        }
        if self.dataset_columns is not None:
            doc["dataset_columns"] = self.dataset_columns
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FeatureMatrix:
        names, dim, feature_set = doc["names"], doc.get("dataset_dim", 0), doc.get("feature_set", "ir")
        columns = doc.get("dataset_columns")
        # a saved predictor is user input: wrong types here would surface as a TypeError at prediction time
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"saved feature names must be a list of strings, got {str(names)[:80]}")
        if type(dim) is not int or not 0 <= dim <= 1_000_000:
            raise DataError(f"saved dataset_dim must be an integer >= 0, got {dim!r}")
        if not isinstance(feature_set, str):
            raise DataError(f"saved feature_set must be a string, got {feature_set!r}")
        if columns is not None and (
            not isinstance(columns, list) or not all(type(c) is int and 0 <= c < dim for c in columns)
        ):
            raise DataError(f"saved dataset_columns must be a list of integers in [0, {dim}), got {str(columns)[:80]}")
        return cls(names, dim, feature_set, columns)


#: a feature this far outside its training range (as a share of that range, at least DOMAIN_MIN_SPAN) counts
#: as outside the predictor's domain: a tree or GP answers there with its nearest training value, confidently
DOMAIN_MARGIN = 0.25
DOMAIN_MIN_SPAN = 1e-6


def feature_range(X: np.ndarray) -> np.ndarray:
    """[2, features]: the per-feature minimum and maximum of a training matrix, all `domain_warnings` reads
    of it (what a predictor that keeps no training matrix keeps of its domain)."""
    return np.stack([X.min(axis=0), X.max(axis=0)]) if len(X) else np.zeros((0, X.shape[1]))


def domain_warnings(
    features: FeatureMatrix, archs: Sequence[Architecture], X_train: np.ndarray | None = None, limit: int = 3
) -> list[list[str]]:
    """Per architecture, why a prediction for it is an extrapolation: features it has that no training
    network had (e.g. a layer type the predictor never saw), and features outside the training range by
    more than DOMAIN_MARGIN of that range (when the training matrix, or its `feature_range`, is known). At
    most `limit` reasons each, the furthest first; an empty list inside the domain."""
    fn = feature_set_function(features.feature_set)
    known = set(features.names)
    lo = hi = None
    if X_train is not None and X_train.ndim == 2 and X_train.shape[1] >= len(features.names) and len(X_train):
        lo, hi = X_train[:, : len(features.names)].min(axis=0), X_train[:, : len(features.names)].max(axis=0)
    X = feature_matrix(archs, features.names, features.feature_set) if lo is not None else None
    out: list[list[str]] = []
    for i, a in enumerate(archs):
        unseen = sorted(k for k, v in fn(a).items() if k not in known and v)
        labels = _kernel_labels(a) if any(k.startswith("cfg:") for k in unseen[:limit]) else {}
        reasons = [f"{labels.get(k, k)} = {fn(a)[k]:.4g} (never in training)" for k in unseen[:limit]]
        if X is not None and lo is not None and hi is not None:
            span = np.maximum(hi - lo, DOMAIN_MIN_SPAN)
            dist = np.maximum(lo - X[i], X[i] - hi) / span
            for j in np.argsort(-dist)[: max(limit - len(reasons), 0)]:
                if dist[j] > DOMAIN_MARGIN:
                    reasons.append(f"{features.names[j]} = {X[i, j]:.4g} (trained on {lo[j]:.4g}..{hi[j]:.4g})")
        out.append(reasons)
    return out


def _kernel_labels(arch: Architecture) -> dict[str, str]:
    """`cfg:<key>` kernel feature name -> a readable label of that kernel in `arch`: its layers with the
    attributes off their defaults, and its input shape (`kernel conv2d(filters=32) > batchnorm2d > relu on
    16x8x8`); the key itself spells every attribute as a Python dict."""
    from ..ir.layers import REQUIRED
    from ..timemodels.kernels import kernels_of

    def layer(node_id: str) -> str:
        specs = arch.layer_type(node_id).attrs
        shown = [
            f"{key}={value}"
            for key, value in arch.attrs(node_id).items()
            if (spec := specs.get(key)) is None or spec.default is REQUIRED or value != spec.default
        ]
        return arch.node(node_id).type + (f"({' '.join(shown)})" if shown else "")

    return {
        f"cfg:{k.key}": f"kernel {' > '.join(layer(n) for n in k.nodes)} on {'x'.join(map(str, k.in_shape))}"
        for k in kernels_of(arch)
    }
