"""Few-shot device profiles: a new device from a few measured networks plus other devices' profiles
(`na-toolkit profile --fewshot 20 --prior A.json --prior B.json --out new.json`).

HELP (Lee et al., "HELP: hardware-adaptive efficient latency prediction for NAS via meta-learning", NeurIPS
2021) showed that other devices' latencies make a handful of measurements on a new device enough. Here the
prior devices need not have measured the same networks: each prior profile is turned into its learned time
model (learned.py: per-kernel regressors + network calibration), which predicts any network, and those
predictions are the new device's basis.

1. **Priors**: full profiles of other devices (`load_priors` refuses another schema, a few-shot profile, too
   few measurements, another batch size, or networks whose layer types this toolkit lacks). Each is embedded
   in the written profile with its content hash, so the profile is self-contained data (refit on load).
2. **Candidates**: `pool` networks sampled like a full profile's (`sampling.random_variants`: the seeds and
   random move sequences).
3. **Choice** (`choose_informative`): the k-center greedy of Gonzalez (1985), as used for active learning by
   Sener & Savarese ("Active learning for convolutional neural networks: a core-set approach", ICLR 2018),
   over the candidates' standardised `FewShotLatencyModel.features`: the priors' predicted log latencies, log
   FLOPs and log kernel count. It starts at the candidate nearest the centre and adds, each time, the
   candidate farthest from every one chosen: the chosen networks span the whole range the priors predict
   (the extremes pin the regression's slopes, where random draws cluster in the middle) and the kinds of
   network where the priors disagree.
4. **Measurement**: those networks only, with the profile's network protocol, checkpointed after each one
   (atomic; `--resume` measures the rest; the chosen hashes are stored, the pool is regenerated).
5. **Model** (`FewShotLatencyModel`, fitted each time the learned time model loads the profile): of two forms
   (fewshot_fit.py), the one with the smaller leave-one-out error on the measured networks (weighted by each
   one's `pool_share`: the candidates nearest to it): a ridge regression
   of log latency on the standardised features, or one prior's per-kernel-group times reweighed for this
   device (shrunk towards a common scale). The choice of step 3 also spreads the networks over each prior's
   share of time per kernel group, so that the second form sees every group's weight vary.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..caches import lru_dict
from ..errors import ArchitectureError, ProfileError
from ..ir.architecture import Architecture
from .fewshot_fit import group_shares, group_times, groups_fit, groups_loo, groups_predict, ridge, ridge_loo
from .kernels import Kernel, kernels_of, measurable
from .learned import GROUPS, MIN_NETWORKS, KernelLatencyModel, fit_profile
from .learned_domain import DOMAIN_MARGIN, MIN_SPAN
from .profile import DeviceProfile, FewShotPrior, FewShotSection, ProfileDeviceWarning, resolve_profile_path
from .profile_plan import ProfileOptions, check_new_out, make_time_model
from .profiler import ProfileBuilder
from .sampling import Variant, all_move_types, random_variants

if TYPE_CHECKING:
    from ..ir.layers import LayerTypeRegistry
    from ..registry import Registry
    from ..toolkit import Toolkit
    from .hardware import HardwareSource

#: fewest networks a few-shot profile measures (the leave-one-out choice of the ridge needs a few)
MIN_FEWSHOT = 5
#: fewest measured networks the few-shot model is fitted on (a profile stopped early may hold fewer)
MIN_FEWSHOT_NETWORKS = 3
#: the forms of the model (fewshot_fit.py); the one with the smallest leave-one-out error is fitted
FORMS: tuple[str, ...] = ("ridge", "groups")
SELECTION = "k-center greedy on standardised [log prior latencies, log FLOPs, log kernels, prior group shares]"
#: prior learned models by (content hash, seed, layer-type registry): a search and the profiler refit each once
_PRIOR_MODELS = lru_dict("timemodels.profile_fewshot.priors", 16)


# ---- priors ---------------------------------------------------------------------------------------------
def check_prior(prof: DeviceProfile, layer_types: LayerTypeRegistry, batch_size: int, where: str) -> None:
    """Raise ProfileError unless `prof` can serve as a prior of a few-shot profile at `batch_size`."""
    if prof.fewshot is not None:
        raise ProfileError(f"{where} is itself a few-shot profile; give the full profiles it was built from as priors")
    if len(prof.networks) < MIN_NETWORKS or len(prof.kernels) < 3:
        raise ProfileError(
            f"{where} holds {len(prof.kernels)} kernels and {len(prof.networks)} networks; a prior needs at least "
            f"3 kernels and {MIN_NETWORKS} networks (a complete `na-toolkit profile` of that device)"
        )
    if prof.batch_size != batch_size:
        raise ProfileError(
            f"{where} was measured at batch size {prof.batch_size}, this profile measures {batch_size}: "
            "priors must share the batch size (give --batch-size or other priors)"
        )
    for part, items in (("kernels", prof.kernels), ("networks", prof.networks)):
        for i, item in enumerate(items):
            try:
                Architecture.from_json(item.arch, layer_types=layer_types)
            except ArchitectureError as exc:
                raise ProfileError(
                    f"{where}: {part}[{i}] cannot be built with this toolkit's layer types ({exc}); install the "
                    "plugin that measured it or choose another prior"
                ) from None


def load_priors(
    refs: Sequence[str], layer_types: LayerTypeRegistry, batch_size: int, hardware: Registry[HardwareSource] | None
) -> list[DeviceProfile]:
    """The prior profiles named by `refs` (paths or profile names registered in `hardware`), checked."""
    if not refs:
        raise ProfileError("a few-shot profile needs at least one --prior (a full profile of another device)")
    priors: list[DeviceProfile] = []
    seen: dict[str, str] = {}
    for ref in refs:
        path = resolve_profile_path(ref, hardware)
        prof = DeviceProfile.load(path)
        where = f"prior {str(ref)!r}"
        check_prior(prof, layer_types, batch_size, where)
        digest = prof.content_hash()
        if digest in seen:
            raise ProfileError(f"{where} is the same profile as prior {seen[digest]!r}: give each prior once")
        seen[digest] = str(ref)
        priors.append(prof)
    return priors


def prior_model(prof: DeviceProfile, layer_types: LayerTypeRegistry, seed: int = 0) -> KernelLatencyModel:
    """The learned model of a prior profile (fitted once per process)."""
    key = (prof.content_hash(), seed, id(layer_types))
    hit = _PRIOR_MODELS.get(key)
    if hit is None or hit[0] is not layer_types:  # the entry holds its registry: an id is never reused while cached
        hit = _PRIOR_MODELS[key] = (layer_types, fit_profile(prof, layer_types, seed=seed))
    return hit[1]


# ---- the model ------------------------------------------------------------------------------------------
class FewShotLatencyModel:
    """Latency of the few-shot device, in the form whose leave-one-out error on the measured networks is the
    smallest (fewshot_fit.py): `ridge` (log t = b + c · z, z the features standardised over the measured
    networks) or `groups` of one prior (its per-kernel-group times reweighed, shrunk to one scale). Predicts
    whole networks from their kernels, like `KernelLatencyModel.predict_networks` (the learned time model calls
    either). scikit-learn style: learned state ends in `_`, `fit_networks` returns self; `forms` restricts the
    choice (the benchmark's ablations)."""

    def __init__(
        self,
        priors: Sequence[KernelLatencyModel],
        prior_names: Sequence[str] = (),
        forms: Sequence[str] = FORMS,
    ):
        self.priors = list(priors)
        self.prior_names = list(prior_names)
        unknown = sorted(set(forms) - set(FORMS))
        if unknown or not forms:
            raise ValueError(f"forms must be a non-empty subset of {FORMS}, got {list(forms)}")
        self.forms = tuple(forms)

    def features(self, arch_kernels: Sequence[Sequence[Kernel]]) -> np.ndarray:
        """Per network: each prior's predicted log latency, log FLOPs and log kernel count (measurable
        kernels: what a runtime executes)."""
        cols = [np.log(np.maximum(m.predict_networks(arch_kernels), 1e-9)) for m in self.priors]
        flops = [sum(k.feature("flops") for k in ks if measurable(k)) for ks in arch_kernels]
        count = [sum(1 for k in ks if measurable(k)) for ks in arch_kernels]
        cols.append(np.log1p(np.asarray(flops, float)))
        cols.append(np.log(np.maximum(np.asarray(count, float), 1.0)))
        return np.column_stack(cols)

    def selection_features(self, arch_kernels: Sequence[Sequence[Kernel]]) -> np.ndarray:
        """What `choose_informative` spreads the measured networks over: `features` and each prior's share of
        time per kernel group (so that the groups form sees every group's weight vary)."""
        ks = [list(k) for k in arch_kernels]
        return np.column_stack([self.features(ks)] + [group_shares(m, ks) for m in self.priors])

    def fit_networks(
        self, arch_kernels: Sequence[Sequence[Kernel]], y_ms: np.ndarray, weights: Sequence[float] | None = None
    ) -> FewShotLatencyModel:
        """Fit on the measured networks; `weights` (e.g. `FewShotSection.pool_share`) weigh each network's
        leave-one-out error in the choice of form and strength (default: equal)."""
        y_ms = np.asarray(y_ms, float)
        if len(y_ms) < 3:
            raise ProfileError(f"a few-shot model needs at least 3 measured networks, got {len(y_ms)}")
        ks = [list(k) for k in arch_kernels]
        F = self.features(ks)
        self.mean_, self.scale_ = F.mean(axis=0), F.std(axis=0)
        self.range_ = np.stack([F.min(axis=0), F.max(axis=0)])
        self.scale_[self.scale_ == 0] = 1.0
        Z, y = (F - self.mean_) / self.scale_, np.log(y_ms)
        w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
        if w.shape != y.shape or not np.all(w >= 0) or w.sum() <= 0:
            raise ProfileError(f"few-shot weights must be {len(y)} numbers >= 0, not all 0; got {list(w)}")
        w = w * len(w) / w.sum()  # mean 1: the errors stay per network
        self.weighted_ = weights is not None
        self.loo_errors_: dict[str, float] = {}
        ridge_err, self.alpha_ = ridge_loo(Z, y, w)
        self.coef_, self.intercept_ = ridge(Z, y, self.alpha_)
        if "ridge" in self.forms:
            self.loo_errors_["ridge"] = ridge_err / len(y)
        self.form_, self.group_prior_, self.lambda_, self.group_params_ = "ridge", -1, 0.0, np.zeros(0)
        best = self.loo_errors_.get("ridge", np.inf)
        if "groups" in self.forms:
            chosen_TN = None
            for j, prior in enumerate(self.priors):
                TN = group_times(prior, ks)
                err, lam = groups_loo(TN, y_ms, w)
                self.loo_errors_[f"groups:{self._prior_name(j)}"] = err / len(y)
                if err / len(y) < best:
                    best, self.form_, self.group_prior_, self.lambda_, chosen_TN = err / len(y), "groups", j, lam, TN
            if chosen_TN is not None:
                self.group_params_ = groups_fit(chosen_TN, y_ms, self.lambda_)
        return self

    def _prior_name(self, j: int) -> str:
        return self.prior_names[j] if j < len(self.prior_names) else f"prior {j}"

    @property
    def chosen_form(self) -> str:
        """The form fitted, as the benchmark and `hw show` print it: `ridge` or `groups:<prior>`."""
        return "ridge" if self.form_ == "ridge" else f"groups:{self._prior_name(self.group_prior_)}"

    def describe_fit(self) -> dict[str, object]:
        """The fitted form and what chose it, JSON-ready: `form`, the ridge's `alpha`, the groups form's
        `lambda` and per-group `group_weights` (relative to the prior's own, `scale` the common one), and each
        candidate form's leave-one-out RMS log error (`loo_rms_log`)."""
        doc: dict[str, object] = {
            "form": self.chosen_form,
            "loo_weighted_by_pool_share": self.weighted_,
            "alpha": self.alpha_,
            "loo_rms_log": {k: float(np.sqrt(v)) for k, v in self.loo_errors_.items()},
        }
        if self.form_ == "groups":
            G = len(GROUPS)
            doc["lambda"] = self.lambda_
            doc["scale"] = float(self.group_params_[G])
            doc["group_weights"] = {g: float(w) for g, w in zip(GROUPS, self.group_params_[:G])}
        return doc

    def predict_networks(self, arch_kernels: Sequence[Sequence[Kernel]]) -> np.ndarray:
        ks = [list(k) for k in arch_kernels]
        return self._predict(ks)

    def _predict(self, arch_kernels: list[list[Kernel]], F: np.ndarray | None = None) -> np.ndarray:
        """The fitted form's latencies; `F` (`features`) where the caller has them: the groups form needs
        only its prior's group times, not every prior's prediction."""
        if self.form_ == "groups":
            return groups_predict(group_times(self.priors[self.group_prior_], arch_kernels), self.group_params_)
        F = self.features(arch_kernels) if F is None else F
        return np.exp((F - self.mean_) / self.scale_ @ self.coef_ + self.intercept_)

    def predict_networks_explained(
        self, arch_kernels: Sequence[Sequence[Kernel]]
    ) -> tuple[np.ndarray, list[list[str]]]:
        """`predict_networks`, and per network the features (a prior's predicted log latency, log FLOPs, log
        kernel count) past the range of the measured networks by more than DOMAIN_MARGIN of it: there the fit
        extrapolates. The features (each prior's prediction) are computed once for both."""
        names = [f"{p} predicts" for p in self.prior_names] + ["FLOPs", "kernels"]
        ks = [list(k) for k in arch_kernels]
        F = self.features(ks)
        lo, hi = self.range_
        span = np.maximum(hi - lo, MIN_SPAN)
        scale = [np.exp] * len(self.prior_names) + [np.expm1, np.exp]
        out = []
        for row in F:
            far = np.maximum(lo - row, row - hi) / span
            out.append(
                [
                    f"{names[j]} {scale[j](row[j]):.4g} "
                    f"(measured networks: {scale[j](lo[j]):.4g}..{scale[j](hi[j]):.4g})"
                    for j in np.argsort(-far)
                    if far[j] > DOMAIN_MARGIN
                ]
            )
        return self._predict(ks, F), out

    def get_params(self, deep: bool = True) -> dict[str, object]:
        return {"priors": self.priors, "prior_names": self.prior_names, "forms": self.forms}


def fit_fewshot_profile(
    profile: DeviceProfile, layer_types: LayerTypeRegistry, seed: int = 0, statistic: str | None = None
) -> FewShotLatencyModel:
    """The latency model of a few-shot profile: its priors' learned models, adapted to its networks' `statistic`
    (default the profile's; the priors predict theirs, a feature whose scale the fit absorbs)."""
    if len(profile.networks) < MIN_FEWSHOT_NETWORKS:
        raise ProfileError(
            f"few-shot profile {profile.name!r} holds {len(profile.networks)} measured networks; its model needs "
            f"at least {MIN_FEWSHOT_NETWORKS}: continue it with `na-toolkit profile --resume`"
        )
    priors = profile.prior_profiles()
    models = [prior_model(p, layer_types, seed) for p in priors]
    kernels = [
        kernels_of(profile.record_arch(f"networks[{i}]", n.arch, layer_types)) for i, n in enumerate(profile.networks)
    ]
    y = np.array([n.latency_ms(statistic or profile.statistic) for n in profile.networks])
    return FewShotLatencyModel(models, [p.name for p in priors]).fit_networks(kernels, y, measured_shares(profile))


def measured_shares(profile: DeviceProfile) -> list[float] | None:
    """The pool share of each measured network of a few-shot `profile`, in `networks` order (None for a
    profile written before shares were stored)."""
    section = profile.fewshot
    if section is None or section.pool_share is None:
        return None
    share = dict(zip(section.chosen, section.pool_share))
    return [float(share.get(n.hash, 1)) for n in profile.networks]


def fit_summary(profile: DeviceProfile, layer_types: LayerTypeRegistry) -> dict[str, object] | None:
    """What the learned time model fits from a few-shot `profile` (`FewShotLatencyModel.describe_fit`), for
    `profile` and `hw show`; None while it holds fewer than 3 measured networks."""
    if profile.fewshot is None or len(profile.networks) < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileDeviceWarning)  # the priors are other devices by design
        return fit_fewshot_profile(profile, layer_types).describe_fit()


def fit_summary_line(doc: dict[str, object]) -> str:
    """One line of `fit_summary`: the form, its weights, and the leave-one-out errors that chose it."""
    loo = doc["loo_rms_log"]
    assert isinstance(loo, dict)
    errors = ", ".join(f"{name} {err:.3f}" for name, err in sorted(loo.items(), key=lambda kv: kv[1]))
    form = str(doc["form"])
    if form.startswith("groups:"):
        weights = doc["group_weights"]
        assert isinstance(weights, dict)
        form = f"kernel groups of {form[7:]} reweighed (" + ", ".join(f"{g} x{w:.3g}" for g, w in weights.items()) + ")"
    return f"{form}; chosen by leave-one-out RMS log error: {errors}"


def _standardised(features: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit spread (a constant column: centred only)."""
    F = np.asarray(features, float)
    scale = F.std(axis=0)
    scale[scale == 0] = 1.0
    return (F - F.mean(axis=0)) / scale


def choose_informative(features: np.ndarray, n: int) -> list[int]:
    """Indices of `n` rows of `features` by the k-center greedy (see the module docstring) on the
    standardised columns: first the row nearest the centre, then each time the row farthest from all chosen."""
    Z = _standardised(features)
    first = int(np.argmin((Z**2).sum(axis=1)))
    chosen = [first]
    dist = ((Z - Z[first]) ** 2).sum(axis=1)
    while len(chosen) < min(n, len(Z)):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0:  # only duplicates of chosen rows are left
            break
        chosen.append(nxt)
        dist = np.minimum(dist, ((Z - Z[nxt]) ** 2).sum(axis=1))
    return chosen


def pool_shares(features: np.ndarray, chosen: Sequence[int]) -> list[int]:
    """Per chosen row (in `chosen` order): how many rows of `features` are nearest to it (standardised as
    `choose_informative` does). The chosen networks are the pool's extremes and corners, not a sample of it:
    weighing each one's leave-one-out error by the candidates it stands for judges a fit on the pool."""
    Z = _standardised(features)
    C = Z[list(chosen)]
    nearest = np.argmin(((Z[:, None, :] - C[None, :, :]) ** 2).sum(axis=2), axis=1)
    return [int(c) for c in np.bincount(nearest, minlength=len(C))]


# ---- building one ---------------------------------------------------------------------------------------
class FewShotProfileBuilder(ProfileBuilder):
    """Builds (or resumes) a few-shot profile: `ProfileOptions.fewshot` networks chosen with the priors'
    learned models among `pool` candidates, measured with the network protocol; see the module docstring."""

    def run(self) -> DeviceProfile:
        o = self.o
        lt = self.toolkit.layer_types
        if o.resume:
            prof = self._load_fewshot()
            assert prof.fewshot is not None
            seeds = self._resumed_seeds(prof)
            if set(prof.fewshot.chosen) <= prof.network_hashes() | {f.get("hash") for f in prof.failures}:
                with self._measuring():  # nothing left to measure: a complete file stays exactly as it was read
                    prof.complete, prof.stopped = True, ""
                    self._checkpoint(prof, force=True, final=True)
                return prof
            priors = prof.prior_profiles()
        else:
            if o.fewshot < MIN_FEWSHOT:
                raise ProfileError(f"--fewshot must be >= {MIN_FEWSHOT}, got {o.fewshot}")
            if o.pool < o.fewshot:
                raise ProfileError(f"--pool ({o.pool}) must be at least --fewshot ({o.fewshot})")
            check_new_out(o.out)
            priors = load_priors(o.priors, lt, o.batch_size, self.toolkit.hardware)
            seeds = self._new_seeds()
            prof = self._new_profile(seeds)
        models = [prior_model(p, lt) for p in priors]
        pool = random_variants(
            seeds,
            o.pool,
            np.random.default_rng(o.rng_seed),
            o.max_moves,
            move_types=all_move_types(self.toolkit),
            max_flops=o.max_flops,
        )
        if prof.fewshot is None:
            F = FewShotLatencyModel(models).selection_features([kernels_of(v.arch) for v in pool])
            picked = choose_informative(F, o.fewshot)
            chosen = [pool[i] for i in picked]
            prof.fewshot = FewShotSection(
                n=o.fewshot,
                pool=len(pool),
                selection=SELECTION,
                chosen=[v.arch.hash for v in chosen],
                pool_share=pool_shares(F, picked),
                priors=[
                    FewShotPrior(
                        name=p.name,
                        content_hash=p.content_hash(),
                        device=p.device_name,
                        runtime=p.runtime_name,
                        profile=p.to_json(),
                    )
                    for p in priors
                ],
            )
            self.log(f"chose {len(chosen)} of {len(pool)} candidate networks ({SELECTION})")
        else:
            chosen = self._regenerated(prof.fewshot, pool)
        tm = make_time_model(o.runtime, o.device, o.network_settings, o.threads, o.statistic)
        self._reference = max(seeds.values(), key=lambda a: a.flops)
        done = prof.network_hashes() | {f.get("hash") for f in prof.failures}
        todo = [v for v in chosen if v.arch.hash not in done]
        with self._measuring():
            self._checkpoint(prof, force=True)
            bar = self._progress(len(todo), "few-shot networks")
            for v in todo:
                if self._should_stop():
                    break
                self._measure_network(prof, v, tm, "fewshot")
                bar.update(1)
                self._checkpoint(prof)
                self._speed_check(prof, tm)
            if todo:
                self._remeasure_slow_spells(prof, tm, tm)
            prof.complete = not self._stop_reason
            prof.stopped = self._stop_reason
            self._checkpoint(prof, force=True, final=True)
        return prof

    def _load_fewshot(self) -> DeviceProfile:
        o = self.o
        if not o.out.exists():
            raise ProfileError(f"--resume: {str(o.out)!r} does not exist; run without --resume to start it")
        prof = DeviceProfile.load(o.out)
        if prof.fewshot is None:
            raise ProfileError(f"{str(o.out)!r} is a full profile, not a few-shot one: resume it without --fewshot")
        self._take_stored(prof)  # the stored plan wins, as for a full profile
        if o.priors:  # priors given again must be the stored ones
            given = {
                p.content_hash()
                for p in load_priors(o.priors, self.toolkit.layer_types, prof.batch_size, self.toolkit.hardware)
            }
            stored = {p.content_hash for p in prof.fewshot.priors}
            if given != stored:
                raise ProfileError(
                    f"--prior differs from the priors {str(o.out)!r} was started with "
                    f"({', '.join(p.name for p in prof.fewshot.priors)}); resume without --prior"
                )
        o.fewshot, o.pool = prof.fewshot.n, int(prof.plan.get("pool", prof.fewshot.pool))
        return prof

    def _regenerated(self, section: FewShotSection, pool: list[Variant]) -> list[Variant]:
        by_hash = {v.arch.hash: v for v in pool}
        missing = [h for h in section.chosen if h not in by_hash]
        if missing:
            raise ProfileError(
                f"{str(self.o.out)!r}: {len(missing)} chosen networks (e.g. {missing[0][:12]}) are not among the "
                "regenerated candidates (other seeds, moves or toolkit version): start a new few-shot profile"
            )
        return [by_hash[h] for h in section.chosen]


def builder_for(options: ProfileOptions, toolkit: Toolkit, log: Callable[[str], None] | None = None) -> ProfileBuilder:
    """The builder of `options`: few-shot with --fewshot or when resuming a few-shot profile, else full;
    `log`: where its progress messages go (`ProfileBuilder`)."""
    fewshot = options.fewshot > 0 or bool(options.priors)
    if options.resume and not fewshot and Path(options.out).exists():
        fewshot = DeviceProfile.load(options.out).fewshot is not None
    if not fewshot:
        return ProfileBuilder(options, toolkit, log)
    return FewShotProfileBuilder(options, toolkit, log)
