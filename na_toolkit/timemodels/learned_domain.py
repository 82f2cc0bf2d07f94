"""What a device profile measured, and whether a network lies inside it: the learned time model's domain.

A learned model's kernel regressors are a cost-linear base times boosted trees; past the shapes a profile
measured, the trees answer with their nearest measured value and only the base extrapolates, and the network
calibration's per-kernel terms extrapolate linearly in the kernel count. Such a prediction is an
extrapolation, and the estimate says so (`TimeEstimate.warnings`, `details["outside_profile_domain"]`), as
a predictor does for a network outside its training data (docs/predictors.md):

- a layer type no kernel of the profile contained (a plugin's op, hardswish in a profile of ReLU networks);
- a kernel kind the profile has fewer than 3 kernels of (predicted by a cost-only base over all kernels);
- a kernel feature (input shape, channels, kernel size, FLOPs, bytes) outside the range of the profile's
  kernels of that kind by more than `DOMAIN_MARGIN` of that range, in the log space the trees see;
- more kernels in one calibration group (conv, depthwise conv, adds, the rest) than any profiled network
  had, by more than `DOMAIN_MARGIN` of the range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .kernels import COST_FEATURES, KIND_FEATURES, Kernel, log_features, measurable

#: how far past the measured range (a share of that range, in log1p space for kernel features) a value
#: still counts as inside; the same margin as a predictor's (predictors/features.py, DOMAIN_MARGIN)
DOMAIN_MARGIN = 0.25
#: a feature the profile measured at one value only: any other value is outside (log1p(1) - log1p(0) / 4)
MIN_SPAN = 0.1
#: reasons listed per network, the furthest first
LIMIT = 4


@dataclass(frozen=True)
class KindRange:
    names: tuple[str, ...]
    lo: np.ndarray
    hi: np.ndarray
    count: int


@dataclass(frozen=True)
class ProfileDomain:
    """Per kernel kind the range of its log features, the layer types measured, and the range of each
    calibration group's kernel count over the profile's networks."""

    kinds: dict[str, KindRange]
    layer_types: frozenset[str]
    keys: frozenset[str]
    groups: tuple[str, ...]
    count_lo: np.ndarray
    count_hi: np.ndarray

    @classmethod
    def of(
        cls, kernels: Sequence[Kernel], network_counts: np.ndarray, groups: Sequence[str], min_kernels: int = 3
    ) -> ProfileDomain:
        """From a profile's kernels and its networks' kernel counts per group (rows: networks)."""
        by_kind: dict[str, list[list[float]]] = {}
        types: set[str] = set()
        for k in kernels:
            by_kind.setdefault(k.kind, []).append(log_features(k.vector()))
            types.update(t for t, _ in k.layers)
        kinds = {}
        for kind, rows in by_kind.items():
            if len(rows) >= min_kernels:
                X = np.asarray(rows, float)
                kinds[kind] = KindRange(KIND_FEATURES[kind] + COST_FEATURES, X.min(axis=0), X.max(axis=0), len(rows))
        counts = np.asarray(network_counts, float).reshape(-1, len(groups))
        lo = counts.min(axis=0) if len(counts) else np.zeros(len(groups))
        hi = counts.max(axis=0) if len(counts) else np.zeros(len(groups))
        return cls(kinds, frozenset(types), frozenset(k.key for k in kernels), tuple(groups), lo, hi)

    def reasons(self, kernels: Sequence[Kernel], counts: np.ndarray) -> list[str]:
        """Why predicting the network of `kernels` (with `counts` kernels per group) is an extrapolation;
        empty inside the domain. At most LIMIT reasons, unmeasured layer types and kinds first."""
        out: list[str] = []
        measured = [k for k in kernels if measurable(k)]
        unseen = sorted({t for k in measured for t, _ in k.layers} - self.layer_types)
        if unseen:
            out.append(f"layer type {', '.join(unseen)} never measured in the profile (guessed from FLOPs and bytes)")
        # a kind the profile has too few kernels of (a configuration it did not measure; its layer types not
        # already named above)
        missing = sorted(
            {k.kind for k in measured if k.key not in self.keys and not {t for t, _ in k.layers} & set(unseen)}
            - set(self.kinds)
        )
        if missing:
            out.append(f"kernel kind {', '.join(missing)} has under 3 kernels in the profile (a cost-only guess)")
        far: dict[str, tuple[float, str]] = {}  # per feature name: the furthest kernel's distance and reason
        for k in measured:
            r = self.kinds.get(k.kind)
            if r is None:
                continue
            raw = k.vector()
            x = np.asarray(log_features(raw))
            span = np.maximum(r.hi - r.lo, MIN_SPAN)
            dist = np.maximum(r.lo - x, x - r.hi) / span
            for j in np.flatnonzero(dist > DOMAIN_MARGIN):
                name = f"{k.kind}.{r.names[j]}"
                if dist[j] > far.get(name, (0.0, ""))[0]:
                    lo, hi = np.expm1(r.lo[j]), np.expm1(r.hi[j])
                    far[name] = (float(dist[j]), f"{name} = {raw[j]:.4g} (profile: {lo:.4g}..{hi:.4g})")
        span = np.maximum(self.count_hi - self.count_lo, 1.0)
        over = (np.asarray(counts, float) - self.count_hi) / span
        for g in np.flatnonzero(over > DOMAIN_MARGIN):
            far[f"n_{self.groups[g]}"] = (
                float(over[g]),
                f"{int(counts[g])} {self.groups[g]} kernels (profile networks: {int(self.count_lo[g])}.."
                f"{int(self.count_hi[g])})",
            )
        out += [why for _, why in sorted(far.values(), key=lambda t: -t[0])]
        return out[:LIMIT]


def domain_message(profile_name: str, reasons: Sequence[str]) -> str:
    return (
        f"outside what profile {profile_name!r} measured: {'; '.join(reasons)}; the latency is an extrapolation "
        "(profile networks like this one: `na-toolkit profile --seed-net FILE`)"
    )
