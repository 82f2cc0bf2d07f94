"""The few-shot latency model's two forms (timemodels/fewshot_fit.py): the ridge on the priors' whole-network
predictions, and one prior's kernel groups reweighed for the new device; leave-one-out chooses. Real priors
(the shipped profiles' learned models), real networks; the new device's latencies are either another real
device's measurements (the committed AMD EPYC profile) or built from a prior's group times with known
weights, so the fit can be checked against the truth."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import default_toolkit
from na_toolkit.errors import ProfileError
from na_toolkit.timemodels.fewshot_fit import LAMBDA_GRID, group_shares, group_times
from na_toolkit.timemodels.kernels import kernels_of
from na_toolkit.timemodels.learned import GROUPS, profile_data
from na_toolkit.timemodels.profile import DeviceProfile
from na_toolkit.timemodels.profile_fewshot import FewShotLatencyModel, choose_informative, pool_shares, prior_model
from na_toolkit.timemodels.sampling import all_move_types, random_variants

REPO = Path(__file__).resolve().parents[1]


def _prior(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # measured on another device
        prof = DeviceProfile.load(REPO / "profiles" / f"{name}.json")
    return prior_model(prof, default_toolkit().layer_types)


@pytest.fixture(scope="module")
def xeon():
    return _prior("example-cpu")


@pytest.fixture(scope="module")
def pool():
    tk = default_toolkit()
    seeds = {s: tk.seed(s) for s in ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")}
    variants = random_variants(seeds, 120, np.random.default_rng(5), 4, move_types=all_move_types(tk))
    return [kernels_of(v.arch) for v in variants]


def within(pred: np.ndarray, truth: np.ndarray, tol: float) -> float:
    return float(np.mean(np.abs(pred / truth - 1) <= tol))


def test_a_device_that_prices_one_kernel_group_otherwise_is_learned_group_by_group(xeon, pool):
    """A device on which depthwise convolutions cost half and the rest 1.5x what the prior says (per unit of
    the prior's time), 5% noise: the groups form is chosen, recovers the depthwise weight relative to the
    convolutions' (not the rest's: its small per-kernel times trade against the per-kernel term) and
    predicts unseen networks within 10%; the ridge on the same 20 networks cannot."""
    TN = group_times(xeon, pool)
    weights = {"conv": 1.0, "dwconv": 0.5, "add_fused": 1.0, "add": 1.0, "rest": 1.5}
    w = np.array([weights[g] for g in GROUPS])
    noise = np.exp(np.random.default_rng(0).normal(0, 0.05, len(pool)))
    truth = (TN[:, : len(GROUPS)] @ w + 0.002) * noise
    model = FewShotLatencyModel([xeon], ["xeon"])
    chosen = choose_informative(model.selection_features(pool), 20)
    rest = np.setdiff1d(np.arange(len(pool)), chosen)
    fit = model.fit_networks([pool[i] for i in chosen], truth[chosen])
    doc = fit.describe_fit()
    assert doc["form"] == "groups:xeon" and doc["lambda"] in LAMBDA_GRID
    assert set(doc["loo_rms_log"]) == {"ridge", "groups:xeon"}
    assert doc["loo_rms_log"]["groups:xeon"] < doc["loo_rms_log"]["ridge"]
    got = doc["group_weights"]
    assert got["dwconv"] / got["conv"] == pytest.approx(0.5, rel=0.2)
    new = fit.predict_networks([pool[i] for i in rest])
    ridge = FewShotLatencyModel([xeon], ["xeon"], ("ridge",)).fit_networks([pool[i] for i in chosen], truth[chosen])
    old = ridge.predict_networks([pool[i] for i in rest])
    assert ridge.describe_fit()["form"] == "ridge" and "lambda" not in ridge.describe_fit()
    assert within(new, truth[rest], 0.10) >= 0.9
    assert within(new, truth[rest], 0.10) > within(old, truth[rest], 0.10)


def test_the_choice_spreads_the_networks_over_the_group_shares(xeon, pool):
    """The chosen 20 reach both ends of the depthwise share (mobilenet variants and plain convolutions)."""
    model = FewShotLatencyModel([xeon], ["xeon"])
    F = model.selection_features(pool)
    assert F.shape == (len(pool), model.features(pool).shape[1] + len(GROUPS))
    shares = group_shares(xeon, pool)
    assert np.allclose(shares.sum(axis=1), 1.0)
    dw = shares[:, GROUPS.index("dwconv")]
    chosen = choose_informative(F, 20)
    assert dw[chosen].max() >= np.quantile(dw, 0.9) and dw[chosen].min() == dw.min()


@pytest.mark.slow  # fits the priors' models on their full profiles
@pytest.mark.parametrize(
    "target, priors",
    [
        ("benchmarks/profiles/latency-amd-epyc.json", ("profiles/example-cpu.json", "profiles/h200-torch-b1.json")),
        ("profiles/example-cpu.json", ("benchmarks/profiles/latency-amd-epyc.json", "profiles/h200-torch-b1.json")),
    ],
    ids=["amd-epyc", "xeon"],
)
def test_on_a_real_other_device_this_method_beats_the_previous_one(target, priors):
    """A real device's measured networks as the pool (a committed profile), two other devices' profiles as
    priors: 20 chosen, the rest scored. 0.4.0's method (group shares in the choice, the form by leave-one-out)
    against 0.3.0's (the choice on the features alone, the ridge): docs/time_models.md gives the figures over
    resampled pools."""
    tk = default_toolkit()
    models = []
    for path in priors:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # measured on another device
            models.append(prior_model(DeviceProfile.load(REPO / path), tk.layer_types))
    data = profile_data(DeviceProfile.load(REPO / target), tk.layer_types)
    ks, y = data.network_kernels, data.network_y_ms
    names = ["cpu", "gpu"]
    model = FewShotLatencyModel(models, names)
    chosen = choose_informative(model.selection_features(ks), 20)
    fit = model.fit_networks([ks[i] for i in chosen], y[chosen])
    previous = FewShotLatencyModel(models, names, ("ridge",))
    before = choose_informative(previous.features(ks), 20)
    previous.fit_networks([ks[i] for i in before], y[before])
    rest = np.setdiff1d(np.arange(len(y)), np.union1d(chosen, before))  # scored on networks neither measured
    now = within(fit.predict_networks([ks[i] for i in rest]), y[rest], 0.2)
    then = within(previous.predict_networks([ks[i] for i in rest]), y[rest], 0.2)
    assert fit.describe_fit()["form"] == "groups:cpu"  # the CPU prior's groups, not the GPU's
    assert now >= 0.85 and now > then + 0.05, (now, then)


def test_forms_must_be_known():
    with pytest.raises(ValueError, match=r"forms must be a non-empty subset of \('ridge', 'groups'\), got \['lasso'\]"):
        FewShotLatencyModel([], forms=("lasso",))


def test_pool_shares_weigh_the_leave_one_out_errors(xeon, pool):
    """The chosen networks are the pool's extremes: each one's leave-one-out error counts as many times as the
    candidates it stands for. The shares add up to the pool; equal weights are the unweighted fit."""
    model = FewShotLatencyModel([xeon], ["xeon"])
    F = model.selection_features(pool)
    chosen = choose_informative(F, 12)
    shares = pool_shares(F, chosen)
    assert sum(shares) == len(pool) and min(shares) >= 1 and max(shares) > min(shares)
    truth = group_times(xeon, pool)[:, : len(GROUPS)].sum(axis=1) * 1.3
    ks, y = [pool[i] for i in chosen], truth[chosen]
    plain = FewShotLatencyModel([xeon], ["xeon"]).fit_networks(ks, y)
    equal = FewShotLatencyModel([xeon], ["xeon"]).fit_networks(ks, y, [2.0] * 12)
    weighted = FewShotLatencyModel([xeon], ["xeon"]).fit_networks(ks, y, shares)
    assert equal.loo_errors_ == pytest.approx(plain.loo_errors_)
    assert weighted.describe_fit()["loo_weighted_by_pool_share"] is True
    assert plain.describe_fit()["loo_weighted_by_pool_share"] is False
    assert weighted.loo_errors_ != pytest.approx(plain.loo_errors_)
    with pytest.raises(ProfileError, match=r"few-shot weights must be 12 numbers >= 0, not all 0"):
        FewShotLatencyModel([xeon], ["xeon"]).fit_networks(ks, y, [0.0] * 12)
