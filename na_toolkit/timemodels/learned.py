"""The `learned` time model: predicts a network's latency on a profiled device without running it.

Fitted from a device profile each time it is loaded (artifacts hold data, never pickled models):

1. Per-kernel regressors (nn-Meter, Zhang et al. MobiSys 2021): for each kernel kind (kernels.py) a base
   model `t = a*FLOPs + b*bytes + c` (non-negative least squares, relative-error weights), times a
   gradient-boosted correction of log(t / base) on the kernel's features (shapes, attributes, cost). The
   base keeps predictions sensible outside the sampled range, the trees learn what the roofline-like base
   cannot (a runtime's algorithm choice per shape, depthwise convs, small-tensor overheads).
2. A calibration of whole-network overheads, fitted on the profile's networks: the measured latency
   regressed on the summed kernel predictions per kernel group (conv, depthwise conv, adds a runtime can
   fold into the conv before them, other adds, the rest) and the number of kernels per group, plus a
   constant (least squares on relative errors, sum coefficients >= 0, then refitted without the networks
   whose residual is an outlier: a measurement taken while the machine was busy must not bend the fit).
   A kernel measured alone pays a session call and layout reorders that it does not pay inside a network
   (the per-kernel count terms come out negative), and fusions across kernels (an add folded into its
   conv) make some groups cheaper in context (their sum coefficients).
3. A boosted correction of the calibrated latency on the network's make-up, kept only where cross-validation on
   the profile's networks says it helps and applied within their range (learned_residual.py).

`LearnedTimeModel(device=<profile path or DeviceProfile>, layer_types=...)`, or by profile name with the
toolkit's registries: `LearnedTimeModel.from_toolkit(toolkit, device="example-cpu")`. A profile of another
device than this machine's warns with both names (its predictions describe that device).
"""

from __future__ import annotations

import warnings as _warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import ConfigDict, Field

from .. import validation
from ..errors import DeviceWarning, NotFittedError, ProfileError, TimeModelError
from ..ir.architecture import Architecture
from .base import FigureSource, TimeEstimate, TimeModel
from .fitting import FLOOR_SHARE, MIN_NETWORKS, calibrated, floor_share, nnls_relative, robust_relative_lstsq
from .kernels import COST_FEATURES, Kernel, kernels_of, log_features, measurable
from .learned_domain import ProfileDomain, domain_message
from .learned_residual import NetworkResidual
from .measured import analytic_peak_memory_bytes, check_statistic, take_options
from .profile import DeviceProfile, ProfileDeviceWarning, check_device, resolve_profile_path
from .roofline import RooflineTimeModel
from .trees import TreeEnsemble

if TYPE_CHECKING:
    from typing import Self

    from ..ir.layers import LayerTypeRegistry
    from ..registry import Registry
    from ..toolkit import Toolkit
    from .hardware import HardwareSource
    from .profile_fewshot import FewShotLatencyModel

#: kernel groups of the network calibration (each gets its own coefficients)
GROUPS = ("conv", "dwconv", "add_fused", "add", "rest")
MIN_KERNELS_PER_KIND = 12


def _group(kernel: Kernel) -> str:
    if kernel.kind == "conv":
        return "dwconv" if kernel.feature("depthwise") else "conv"
    if kernel.kind == "add":
        return "add_fused" if kernel.fusable else "add"
    return "rest"


@dataclass
class KindModel:
    """Latency of one kernel kind: a non-negative linear base on cost, times a boosted log-correction."""

    kind: str
    base_coef: np.ndarray
    booster: Any = None

    @staticmethod
    def base_matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
        # rows hold KIND_FEATURES then COST_FEATURES (flops, in_bytes, out_bytes, weight_bytes)
        c = np.asarray(rows, dtype=float)[:, -len(COST_FEATURES) :]
        return np.column_stack([c[:, 0] * 1e-9, (c[:, 1] + c[:, 2] + c[:, 3]) * 1e-9, np.ones(len(c))])

    @classmethod
    def fit(cls, kind: str, rows: list[list[float]], y_ms: np.ndarray, boost: bool = True, seed: int = 0) -> KindModel:
        B = cls.base_matrix(rows)
        coef = nnls_relative(B, y_ms, 1.0 / y_ms)
        if not np.any(coef > 0):
            coef = np.array([0.0, 0.0, float(np.median(y_ms))])
        model = cls(kind, coef)
        if boost and len(y_ms) >= MIN_KERNELS_PER_KIND:
            from sklearn.ensemble import GradientBoostingRegressor

            base = np.maximum(B @ coef, 1e-6)
            gbr = GradientBoostingRegressor(
                loss="squared_error",
                n_estimators=150,
                max_depth=3,
                learning_rate=0.08,
                subsample=0.8,
                min_samples_leaf=3,
                random_state=seed,
            )
            gbr.fit(np.asarray([log_features(r) for r in rows]), np.log(y_ms / base))
            model.booster = TreeEnsemble(gbr)
        return model

    def predict(self, rows: list[list[float]]) -> np.ndarray:
        base = np.maximum(self.base_matrix(rows) @ self.base_coef, 1e-6)
        if self.booster is None:
            return base
        return base * np.exp(self.booster.predict(np.asarray([log_features(r) for r in rows])))


def _kernel_rows(kernels: Sequence[Kernel]) -> dict[str, tuple[list[int], list[list[float]]]]:
    out: dict[str, tuple[list[int], list[list[float]]]] = {}
    for i, k in enumerate(kernels):
        idx, rows = out.setdefault(k.kind, ([], []))
        idx.append(i)
        rows.append(k.vector())
    return out


class KernelLatencyModel:
    """Per-kind kernel regressors + the network calibration (see the module docstring). scikit-learn
    style: parameters in __init__, learned state ends in `_`, `fit` returns self."""

    def __init__(self, boost: bool = True, calibrate: bool = True, seed: int = 0, residual: bool = True):
        self.boost = boost
        self.calibrate = calibrate
        self.seed = seed
        self.residual = residual

    # ---- kernels ------------------------------------------------------------------------------------
    def fit_kernels(self, kernels: Sequence[Kernel], y_ms: np.ndarray) -> KernelLatencyModel:
        y_ms = np.asarray(y_ms, dtype=float)
        self.kinds_: dict[str, KindModel] = {}
        # a fallback for kinds the profile has (too) few of: the base model over every kernel's cost
        all_rows = [k.vector()[-len(COST_FEATURES) :] for k in kernels]
        self.fallback_ = KindModel.fit("any", all_rows, y_ms, boost=False)
        for kind, (idx, rows) in _kernel_rows(kernels).items():
            if len(idx) >= 3:
                self.kinds_[kind] = KindModel.fit(kind, rows, y_ms[idx], boost=self.boost, seed=self.seed)
        self._memo: dict[str, float] = {}
        return self

    def predict_kernels(self, kernels: Sequence[Kernel]) -> np.ndarray:
        if not hasattr(self, "kinds_"):
            raise NotFittedError("KernelLatencyModel is not fitted: call fit() or load a profile")
        out = np.zeros(len(kernels))
        todo: list[int] = []
        for i, k in enumerate(kernels):
            if not measurable(k):
                continue
            hit = self._memo.get(k.key)
            if hit is None:
                todo.append(i)
            else:
                out[i] = hit
        if todo:
            for kind, (idx, rows) in _kernel_rows([kernels[i] for i in todo]).items():
                model = self.kinds_.get(kind)
                if model is None:
                    pred = self.fallback_.predict([r[-len(COST_FEATURES) :] for r in rows])
                else:
                    pred = model.predict(rows)
                for j, p in zip(idx, pred):
                    i = todo[j]
                    out[i] = p
                    if len(self._memo) < 200_000:
                        self._memo[kernels[i].key] = float(p)
        return out

    # ---- networks -----------------------------------------------------------------------------------
    def network_features(self, arch_kernels: Sequence[Sequence[Kernel]]) -> np.ndarray:
        """Per network: summed kernel predictions per group, kernel count per group, 1."""
        flat = [k for ks in arch_kernels for k in ks]
        pred = self.predict_kernels(flat)
        G = len(GROUPS)
        rows = np.zeros((len(arch_kernels), 2 * G + 1))
        pos = 0
        for r, ks in enumerate(arch_kernels):
            for k in ks:
                if measurable(k):
                    g = GROUPS.index(_group(k))
                    rows[r, g] += pred[pos]
                    rows[r, G + g] += 1
                pos += 1
            rows[r, -1] = 1.0
        return rows

    def fit_networks(self, arch_kernels: Sequence[Sequence[Kernel]], y_ms: np.ndarray) -> KernelLatencyModel:
        y_ms = np.asarray(y_ms, dtype=float)
        X = self.network_features(arch_kernels)
        self.calibration_ = self._identity_coef()
        self.calibration_outliers_ = 0
        self.floor_share_ = FLOOR_SHARE
        self.residual_: NetworkResidual | None = None
        if self.calibrate and len(y_ms) >= MIN_NETWORKS:
            # a kernel inside a network saves at most what the cheapest one of its group takes alone: an
            # unbounded per-kernel term traded against its group's sum (collinear in networks of one family)
            # made a network of many small kernels of that group negative
            cheapest = np.full(len(GROUPS), np.inf)
            for ks in arch_kernels:
                for k, t in zip(ks, self.predict_kernels(ks)):
                    g = GROUPS.index(_group(k))
                    cheapest[g] = min(cheapest[g], t) if measurable(k) else cheapest[g]
            lower = -np.where(np.isfinite(cheapest), cheapest, 0.0)
            self.calibration_, self.calibration_outliers_ = robust_relative_lstsq(X, y_ms, len(GROUPS), lower)
            self.floor_share_ = share = floor_share(X, y_ms, len(GROUPS))
            if self.residual:  # step 3, where cross-validation says it helps (learned_residual.py)
                G = len(GROUPS)
                refit = lambda rows: robust_relative_lstsq(X[rows], y_ms[rows], G, lower)[0]  # noqa: E731
                calib = lambda X_, coef: calibrated(X_, coef, share)  # noqa: E731
                self.residual_ = NetworkResidual.fit(X, y_ms, G, self.calibration_, refit, calib, self.seed)
        return self

    def _identity_coef(self) -> np.ndarray:
        coef = np.zeros(2 * len(GROUPS) + 1)
        coef[: len(GROUPS)] = 1.0
        return coef

    def predict_networks(self, arch_kernels: Sequence[Sequence[Kernel]]) -> np.ndarray:
        if not hasattr(self, "calibration_"):
            raise NotFittedError("KernelLatencyModel is not fitted: call fit() or load a profile")
        return self._calibrated(self.network_features(arch_kernels))

    def _calibrated(self, X: np.ndarray) -> np.ndarray:
        base = self.calibration_only(X)
        residual = getattr(self, "residual_", None)
        return base if residual is None else base * residual.factor(X)

    def calibration_only(self, X: np.ndarray) -> np.ndarray:
        """The latencies of networks `X` (`network_features`) by the calibration alone (step 2, floored),
        without the residual correction: the ablation `bench latency` reports."""
        return calibrated(X, self.calibration_, getattr(self, "floor_share_", FLOOR_SHARE))

    def fit(
        self,
        kernels: Sequence[Kernel],
        kernel_y_ms: np.ndarray,
        arch_kernels: Sequence[Sequence[Kernel]],
        network_y_ms: np.ndarray,
    ) -> KernelLatencyModel:
        self.fit_kernels(kernels, kernel_y_ms).fit_networks(arch_kernels, network_y_ms)
        counts = self.network_features(arch_kernels)[:, len(GROUPS) : 2 * len(GROUPS)]
        self.domain_ = ProfileDomain.of(kernels, counts, GROUPS)
        return self

    def predict_networks_explained(
        self, arch_kernels: Sequence[Sequence[Kernel]]
    ) -> tuple[np.ndarray, list[list[str]]]:
        """`predict_networks`, and per network why its prediction is an extrapolation (learned_domain.py); also
        when the calibrated value fell below the floor (`floor_share` of the kernel sum: the overhead terms ran
        away). The network features are computed once for both."""
        if not hasattr(self, "calibration_"):
            raise NotFittedError("KernelLatencyModel is not fitted: call fit() or load a profile")
        X = self.network_features(arch_kernels)
        domain = getattr(self, "domain_", None)
        out = [
            [] if domain is None else domain.reasons(ks, x[len(GROUPS) : 2 * len(GROUPS)])
            for ks, x in zip(arch_kernels, X)
        ]
        share = getattr(self, "floor_share_", FLOOR_SHARE)
        for reasons, x in zip(out, X):
            if x @ self.calibration_ < share * x[: len(GROUPS)].sum():
                reasons.append(
                    f"the network calibration predicted under {share:.0%} of the kernel sum, less than any network "
                    "of the profile took (floored there)"
                )
        return self._calibrated(X), out

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"boost": self.boost, "calibrate": self.calibrate, "seed": self.seed, "residual": self.residual}


# ---- from a profile -------------------------------------------------------------------------------------
@dataclass
class ProfileData:
    kernels: list[Kernel]
    kernel_keys: list[str]
    kernel_y_ms: np.ndarray
    network_kernels: list[list[Kernel]]
    network_hashes: list[str]
    network_y_ms: np.ndarray


def profile_data(profile: DeviceProfile, layer_types: LayerTypeRegistry, statistic: str | None = None) -> ProfileData:
    """Kernels and networks of a profile, re-derived from their architectures (built with `layer_types`;
    features are computed by this version of kernels.py, never read from the file). Latencies are the
    profile's statistic."""
    stat = statistic or profile.statistic
    ks, keys, ky = [], [], []
    for i, rec in enumerate(profile.kernels):
        arch = profile.record_arch(f"kernels[{i}]", rec.arch, layer_types)
        kernel = kernels_of(arch)[0]
        ks.append(kernel)
        keys.append(rec.key)
        ky.append(rec.latency_ms(stat))
    nk, nh, ny = [], [], []
    for i, net in enumerate(profile.networks):
        arch = profile.record_arch(f"networks[{i}]", net.arch, layer_types)
        nk.append(kernels_of(arch))
        nh.append(net.hash)
        ny.append(net.latency_ms(stat))
    return ProfileData(ks, keys, np.asarray(ky, float), nk, nh, np.asarray(ny, float))


def fit_profile(
    profile: DeviceProfile, layer_types: LayerTypeRegistry, statistic: str | None = None, **params: Any
) -> KernelLatencyModel:
    """The latency model of a full profile, fitted on its records' `statistic` (default the profile's)."""
    data = profile_data(profile, layer_types, statistic)
    if len(data.kernels) < 3:
        raise ProfileError(
            f"profile {profile.name!r} holds {len(data.kernels)} kernel measurements; the learned model needs at "
            "least 3 (profile longer or --resume it)"
        )
    return KernelLatencyModel(**params).fit(data.kernels, data.kernel_y_ms, data.network_kernels, data.network_y_ms)


class LearnedTimeModel(TimeModel):
    name = "learned"
    description = "learned from a device profile: per-kernel regressors summed over the network + overhead calibration"
    measures = False

    OPTIONS = {"boost": True, "calibrate": True, "seed": 0, "check_device": True, "train_hardware": None,
               "train_calibration": None, "statistic": None}  # fmt: skip

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        device: str = Field("example-cpu", description="device profile name or JSON path")
        boost: bool = Field(True, description="boosted log-corrections per kernel kind")
        calibrate: bool = Field(True, description="calibrate the network overhead on the profile's networks")
        seed: int = Field(0, description="seed of the regressors")
        check_device: bool = Field(True, description="warn when the profile was measured on another device")
        train_hardware: str | None = Field(
            None, description="hardware model whose roofline gives the training step (CPU profile: x86-cpu)"
        )
        train_calibration: dict[str, Any] | None = Field(None, description="that roofline's TrainCalibration table")
        statistic: Literal["median", "p10", "min"] | None = Field(
            None,
            description="which statistic of its profile's records it predicts (default: a search's measure's, "
            "else the profile's)",
        )

    def __init__(
        self,
        device: str | Path | DeviceProfile = "example-cpu",
        *,
        layer_types: LayerTypeRegistry,
        hardware_registry: Registry[HardwareSource] | None = None,
        **options: Any,
    ):
        """`device`: a profile, the path of a profile file, or a profile name looked up in
        `hardware_registry` (the toolkit's; `from_toolkit` passes it). `layer_types`: the registry the
        profile's networks are built with."""
        opts = take_options(self.name, options, self.OPTIONS)
        if isinstance(device, DeviceProfile):
            profile = device
        else:
            profile = DeviceProfile.load(resolve_profile_path(device, hardware_registry))
        super().__init__(device=profile.name, **opts)
        self.profile = profile
        #: what it predicts: a search gives it its measure's (search/components.py); every record has each
        self.statistic: str = check_statistic(opts["statistic"] or profile.statistic)
        profile.require_statistic(self.statistic)
        self.device_warning: str | None = None
        if opts["check_device"]:
            with _warnings.catch_warnings(record=True) as caught:
                _warnings.simplefilter("always", ProfileDeviceWarning)
                self.device_warning = check_device(profile)
            for w in caught:  # re-issue from here so the caller sees it once, with its own filters
                _warnings.warn(str(w.message), ProfileDeviceWarning, stacklevel=2)
        if len(profile.networks) < MIN_NETWORKS:
            _warnings.warn(
                f"profile {profile.name!r} has {len(profile.networks)} network measurements (< {MIN_NETWORKS}): "
                "no overhead calibration, kernel sums only",
                DeviceWarning,
                stacklevel=2,
            )
        self.model: KernelLatencyModel | FewShotLatencyModel
        if profile.fewshot is not None:  # a few-shot profile: its priors' models adapted to its networks
            from .profile_fewshot import fit_fewshot_profile

            self.model = fit_fewshot_profile(profile, layer_types, seed=opts["seed"], statistic=self.statistic)
        else:
            fit = {k: opts[k] for k in ("boost", "calibrate", "seed")}
            self.model = fit_profile(profile, layer_types, self.statistic, **fit)
        # the training step: a roofline's (the profile measures inference only)
        train_hw = opts["train_hardware"]
        if train_hw is None and profile.device.get("kind") == "cpu" and hardware_registry is not None:
            train_hw = "x86-cpu"  # a name: resolved in the registry (without one, give train_hardware)
        self.train_roofline = (
            RooflineTimeModel(
                train_hw, train_calibration=opts["train_calibration"], hardware_registry=hardware_registry
            )
            if train_hw is not None
            else None
        )

    @classmethod
    def from_toolkit(cls, toolkit: Toolkit, **options: Any) -> Self:
        """Profile names are looked up in `toolkit.hardware`; the networks are built with its layer types."""
        return cls(layer_types=toolkit.layer_types, hardware_registry=toolkit.hardware, **options)

    @property
    def batch_size(self) -> int:
        return self.profile.batch_size

    def _check_batch(self, batch_size: int) -> None:
        if batch_size != self.profile.batch_size:
            raise TimeModelError(
                f"profile {self.profile.name!r} was measured at batch size {self.profile.batch_size}, "
                f"not {batch_size}; build a profile with `na-toolkit profile --batch-size {batch_size}`"
            )

    def predict_ms(self, archs: Sequence[Architecture], batch_size: int = 1) -> np.ndarray:
        """Latencies (ms) of many architectures at once (one regressor call per kernel kind)."""
        self._check_batch(batch_size)
        return self.model.predict_networks([kernels_of(a) for a in archs])

    def figure_source(self, figure: str) -> FigureSource | None:
        """The latency: an estimate of the statistic of the profile's records the model was fitted on (and
        predicts), named as a measured latency's is: "estimated median"."""
        src = super().figure_source(figure)
        if figure != "latency_ms" or src is None:
            return src
        return replace(src, how=f"{src.how}, fitted on its {self.statistic} latencies", statistic=self.statistic)

    def train_step_source(self) -> str | None:
        if self.train_roofline is None:
            return None  # a GPU profile names no hardware model: set train_hardware
        # a profile measures inference; a runtime's inference latency says little of a framework's training step
        return f"the {self.train_roofline.hardware.name} roofline's: {self.train_roofline.train_step_source()}"

    def train_step_ms(self, arch: Architecture, batch_size: int) -> float:
        """The training step of `train_hardware`'s roofline (with `train_calibration`) at any batch size."""
        if self.train_roofline is None:
            raise TimeModelError(
                f"learned ({self.profile.name}): no training step: its profile measures inference only; give the "
                "option train_hardware (a hardware model name, or a .toml path) whose roofline gives the step"
            )
        return self.train_roofline.train_step_ms(arch, batch_size)

    def estimate(self, arch: Architecture, batch_size: int = 1) -> TimeEstimate:
        self.check_request(arch, batch_size)
        self._check_batch(batch_size)
        kernels = kernels_of(arch)
        predicted, reasons = self.model.predict_networks_explained([kernels])
        latency, outside = float(predicted[0]), reasons[0]
        warns = [self.device_warning] if self.device_warning else []
        warns += [domain_message(self.profile.name, outside)] if outside else []
        train_ms = self.train_roofline.train_step_ms(arch, batch_size) if self.train_roofline is not None else None
        return TimeEstimate(
            time_model=self.name,
            device=self.profile.name,
            batch_size=batch_size,
            latency_ms=latency,
            train_step_ms=train_ms,
            peak_memory_bytes=analytic_peak_memory_bytes(arch, batch_size),
            warnings=tuple(warns),
            details={
                "profile": self.profile.name,
                "profile_device": self.profile.device_name,
                "runtime": self.profile.runtime_name,
                "statistic": self.statistic,
                "kernels": len([k for k in kernels if measurable(k)]),
                "outside_profile_domain": outside,
            },
        )
