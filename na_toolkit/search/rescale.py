"""Rescaling a device's estimated latencies by the run's own measurements (`Scorer.rescale`).

Two levels, both learnt at each refit from the evaluated networks that have a measured latency and an
estimate:

- the device's factor (`LatencyScale`): the median of measured over estimated latency. A profile's machine
  drifts by a few per cent between sessions, a roofline of a datasheet by a factor; one number takes that out.
- each network's own factor (`Neighbours`, `devices.NAME.rescale_neighbours = k`, off by default): a time
  model's error is not one factor across networks (a roofline misprices depthwise convolutions otherwise than
  dense ones, small layers otherwise than large), and the networks a search scores are mostly a move or two
  from the ones it has measured. So a network's log factor moves from the device's towards the
  similarity-weighted mean log ratio of the k measured networks most like it, by how alike the closest is:

      log f(x) = log g + s · (Σ_j w_j log r_j / Σ_j w_j − log g),   w_j = sim(x, j) over the k, s = max_j w_j

  A network measured already gets about its own ratio (s = 1), one unlike every measured network the
  device's factor (s = 0).

`sim(x, y)` is the share of the costlier network's cost that the two have in common: layers count as the
same when they have the same type, attributes and input shapes (however many of each the two share), each
weighted by FLOPs + 8 · bytes it moves (a time proxy at a CPU's balance of about 8 FLOP per byte of memory
traffic; what the similarity is used for moved by under a point when the weight had a per-layer overhead
term or none, on `bench latency`'s held-out networks).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..ir.architecture import Architecture

#: measured networks a device needs before its time model's latency estimates are rescaled
MIN_RESCALE_NETWORKS = 3
#: `devices.NAME.rescale_neighbours` when the config names none: off (docs/search.md has why)
DEFAULT_RESCALE_NEIGHBOURS = 0
#: the neighbours `bench latency` plays (and a good start for the option)
SUGGESTED_RESCALE_NEIGHBOURS = 3
#: a layer's weight in the similarity: FLOPs + this many times the bytes it moves
BYTE_WEIGHT = 8.0


@dataclass(frozen=True)
class LatencyScale:
    """The factor a device's latency estimates are multiplied by: the median of measured over estimated
    latency of `networks` evaluated networks, with the ratios' p10 and p90 (their spread: how far one
    network's estimate may still be off). `neighbours` > 0: each network's factor moves from this one towards
    its most similar measured networks' (`Neighbours`)."""

    scale: float
    networks: int
    ratio_p10: float
    ratio_p90: float
    neighbours: int = 0

    @classmethod
    def of(cls, ratios: Sequence[float], neighbours: int = 0) -> LatencyScale:
        r = np.asarray(ratios, dtype=float)
        p10, p90 = np.percentile(r, 10), np.percentile(r, 90)
        return cls(float(np.median(r)), len(r), float(p10), float(p90), neighbours)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Signature:
    """A network's layers for the similarity: how many of each (type, attributes, input shapes), each one's
    weight, and the total."""

    counts: dict[str, int]
    weights: dict[str, float]
    total: float

    @classmethod
    def of(cls, arch: Architecture) -> Signature:
        counts: Counter[str] = Counter()
        weights: dict[str, float] = {}
        for node in arch.nodes:
            key = repr((node.type, sorted(arch.attrs(node.id).items()), arch.in_shapes(node.id)))
            cost = arch.cost.per_node[node.id]
            counts[key] += 1
            weights[key] = float(cost.flops) + BYTE_WEIGHT * float(cost.memory_bytes)
        return cls(dict(counts), weights, sum(c * weights[k] for k, c in counts.items()))


def similarity(a: Signature, b: Signature) -> float:
    """The share of the costlier network's weight the two have in common (0: nothing, 1: the same layers)."""
    shared = sum(min(c, b.counts[k]) * a.weights[k] for k, c in a.counts.items() if k in b.counts)
    denominator = max(a.total, b.total)
    return shared / denominator if denominator > 0 else 0.0


class Neighbours:
    """Each network's factor from the `k` measured networks most like it (the module docstring's formula).
    `signatures` and `ratios` (measured over estimated) are the measured networks'; the device's factor is
    their median, as `LatencyScale` takes it."""

    def __init__(self, k: int, signatures: Sequence[Signature], ratios: Sequence[float]):
        if k < 1:
            raise ValueError(f"Neighbours needs k >= 1, got {k}")
        if len(signatures) != len(ratios):
            raise ValueError(f"{len(signatures)} signatures for {len(ratios)} ratios")
        self.k = k
        self.log_ratios = np.log(np.asarray(ratios, dtype=float))
        self.log_scale = float(np.log(np.median(ratios)))
        self.totals = np.array([s.total for s in signatures], dtype=float)
        #: layer key -> column; `counts[j, col]`: how many of that layer measured network j has
        self.columns: dict[str, int] = {}
        for s in signatures:
            for key in s.counts:
                self.columns.setdefault(key, len(self.columns))
        self.counts = np.zeros((len(signatures), len(self.columns)))
        for j, s in enumerate(signatures):
            for key, count in s.counts.items():
                self.counts[j, self.columns[key]] = count

    def similarities(self, sig: Signature) -> np.ndarray:
        """`similarity(sig, j)` for every measured network j (layers no measured network has share nothing)."""
        keys = [key for key in sig.counts if key in self.columns]
        cols = [self.columns[key] for key in keys]
        mine = np.array([sig.counts[key] for key in keys], dtype=float)
        weights = np.array([sig.weights[key] for key in keys], dtype=float)
        shared = np.minimum(self.counts[:, cols], mine) @ weights if keys else np.zeros(len(self.totals))
        denominator = np.maximum(self.totals, sig.total)
        return np.divide(shared, denominator, out=np.zeros_like(shared), where=denominator > 0)

    def factor(self, sig: Signature) -> float:
        """The factor of the network `sig` describes."""
        sims = self.similarities(sig)
        top = np.argsort(-sims, kind="stable")[: self.k]
        w = sims[top]
        closest = float(w.max()) if len(w) else 0.0
        if closest <= 0.0:
            return float(np.exp(self.log_scale))
        local = float(w @ self.log_ratios[top] / w.sum())
        return float(np.exp(self.log_scale + closest * (local - self.log_scale)))
