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
from dataclasses import dataclass, field

import numpy as np

from .kernels import COST_FEATURES, KIND_FEATURES, Kernel, log_features, measurable

#: how far past the measured range (a share of that range, in log1p space for kernel features) a value
#: still counts as inside; the same margin as a predictor's (predictors/features.py, DOMAIN_MARGIN)
DOMAIN_MARGIN = 0.25
#: a feature the profile measured at one value only: any other value is outside (log1p(1) - log1p(0) / 4)
MIN_SPAN = 0.1
#: reasons listed per network, the furthest first
LIMIT = 4
#: kernels whose findings are memoised per domain
MEMO_SIZE = 200_000


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
    #: each kernel's findings, by kernel key (`_kernel_findings`); filled up to MEMO_SIZE, as the kernel
    #: regressors' own memo (learned.KernelLatencyModel) is
    _findings: dict[str, tuple[tuple[str, float, str], ...]] = field(default_factory=dict, compare=False, repr=False)

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
            for name, dist, why in self._kernel_findings(k):
                if dist > far.get(name, (0.0, ""))[0]:
                    far[name] = (dist, why)
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

    def _kernel_findings(self, k: Kernel) -> tuple[tuple[str, float, str], ...]:
        """(feature name, distance past the range, reason) of each feature of kernel `k` outside its kind's
        range; memoised by the kernel's key (networks of a search share most kernels, and a search estimates
        thousands of networks)."""
        found = self._findings.get(k.key)
        if found is not None:
            return found
        r = self.kinds.get(k.kind)
        found = ()
        if r is not None:
            raw = k.vector()
            x = np.asarray(log_features(raw))
            span = np.maximum(r.hi - r.lo, MIN_SPAN)
            dist = np.maximum(r.lo - x, x - r.hi) / span
            found = tuple(
                (
                    f"{k.kind}.{r.names[j]}",
                    float(dist[j]),
                    f"{k.kind}.{r.names[j]} = {raw[j]:.4g} (profile: {np.expm1(r.lo[j]):.4g}..{np.expm1(r.hi[j]):.4g})",
                )
                for j in np.flatnonzero(dist > DOMAIN_MARGIN)
            )
        if len(self._findings) < MEMO_SIZE:
            self._findings[k.key] = found
        return found


def domain_message(profile_name: str, reasons: Sequence[str]) -> str:
    return (
        f"outside what profile {profile_name!r} measured: {'; '.join(reasons)}; the latency is an extrapolation "
        "(profile networks like this one: `na-toolkit profile --seed-net FILE`)"
    )
