"""The learned time model: fitted from a device profile when loaded (no pickles), predicts networks it
never saw, fast; the fast tree evaluator equals scikit-learn's."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest

from conftest import REPO_ROOT, default_toolkit, get_seed
from na_toolkit.errors import ProfileError, TimeModelError, UnknownComponentError
from na_toolkit.ir.architecture import Architecture
from na_toolkit.timemodels import get_time_model
from na_toolkit.timemodels.learned import KernelLatencyModel, LearnedTimeModel, TreeEnsemble, profile_data
from na_toolkit.timemodels.measure import MeasureSettings
from na_toolkit.timemodels.profile import DeviceProfile, ProfileDeviceWarning, resolve_profile_path
from na_toolkit.timemodels.profiler import ProfileBuilder, ProfileOptions
from na_toolkit.timemodels.sampling import all_move_types, load_seed, random_variants

QUICK = MeasureSettings.quick(min_runs=8, max_time_s=0.2, rel_tolerance=0.05)
TK = default_toolkit()
LT = TK.layer_types


def learned(device, **options) -> LearnedTimeModel:
    """The learned model of a profile (a path, a DeviceProfile, or a name in the toolkit's registry)."""
    return LearnedTimeModel.from_toolkit(TK, device=device, **options)


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory) -> DeviceProfile:
    out = tmp_path_factory.mktemp("learned") / "tiny.json"
    options = ProfileOptions(
        out=out,
        samples=8,
        seeds=("simple-cnn",),
        max_moves=3,
        adaptive_rounds=0,
        progress=False,
        kernel_settings=QUICK,
        network_settings=QUICK,
    )
    ProfileBuilder(options, TK, log=lambda msg: None).run()
    return DeviceProfile.load(out)


@pytest.fixture(scope="module")
def example() -> LearnedTimeModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileDeviceWarning)  # the committed profile may be of another CPU
        return learned("example-cpu")


def test_fits_a_tiny_profile_from_its_json_alone(tiny_profile):
    doc = json.loads(tiny_profile.path.read_text())  # data only: architectures and numbers
    assert set(doc) >= {"kernels", "networks", "device", "software", "runtime"}
    model = LearnedTimeModel(tiny_profile.path, layer_types=LT)  # no registry needed for a path
    assert model.device == tiny_profile.name
    # in-sample sanity: the calibrated kernel sums reproduce the profile's own networks
    data = profile_data(tiny_profile, LT)
    pred = model.model.predict_networks(data.network_kernels)
    rel = np.abs(pred - data.network_y_ms) / data.network_y_ms
    assert np.median(rel) < 0.25, rel
    # deterministic: a second fit from the same file predicts the same
    again = learned(tiny_profile.path)
    arch = get_seed("simple-cnn")
    assert again.estimate(arch).latency_ms == model.estimate(arch).latency_ms


def test_predicts_unseen_networks_close_to_their_measurement(example):
    from na_toolkit.timemodels.onnxruntime_tm import OnnxRuntimeTimeModel

    profile = example.profile
    seeds = {s: load_seed(s, TK) for s in ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")}
    variants = random_variants(
        seeds,
        6,
        np.random.default_rng(2024),
        4,
        move_types=all_move_types(TK),
        exclude=profile.network_hashes(),
        include_seeds=False,
    )
    archs = [v.arch for v in variants]
    assert not ({a.hash for a in archs} & profile.network_hashes())
    # measured the way the profile measured its networks
    tm = OnnxRuntimeTimeModel(
        settings=MeasureSettings.from_json(profile.settings["network"]), statistic=profile.statistic
    )
    measured = np.array([tm.estimate(a).latency_ms for a in archs])
    predicted = example.predict_ms(archs)
    from scipy.stats import spearmanr

    # a sanity bound: the committed profile was measured on another day, maybe another machine state
    assert spearmanr(predicted, measured).statistic > 0.8
    # The machine's speed today (a shared 2-core box: 30-60% swings) is one global factor; past it, the
    # profile must still place each network's latency within 35% (median).
    speed = np.median(measured / predicted)
    assert 0.25 < speed < 4.0
    assert np.median(np.abs(predicted * speed - measured) / measured) < 0.35
    est = example.estimate(archs[0])
    assert est.time_model == "learned" and est.device == "example-cpu" and est.latency_ms == pytest.approx(predicted[0])
    assert est.details["kernels"] > 0 and est.peak_memory_bytes > 0


def test_prediction_rate(example):
    seeds = {s: load_seed(s, TK) for s in ("resnet-cifar", "mobilenetv2-cifar")}
    archs = [v.arch for v in random_variants(seeds, 40, np.random.default_rng(7), 4, move_types=all_move_types(TK))]
    for a in archs:  # the first query of a new kernel configuration evaluates the trees
        example.estimate(a)
    t0 = time.thread_time()  # CPU time: the rate of the model, not of a busy machine's scheduler
    for a in archs:
        example.estimate(a)
    rate = len(archs) / max(time.thread_time() - t0, 1e-9)
    # a guard against an order-of-magnitude regression, not a speed figure (those live in benchmarks): about
    # 1,000/s here alone, 687/s on the first pass, and 482/s once under the full suite's load, which failed 500
    assert rate >= 100, f"{rate:.0f} predictions/s"


def test_fast_tree_evaluation_equals_scikit_learn():
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 5, (300, 6))
    y = np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + rng.normal(0, 0.1, 300)
    gbr = GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=0).fit(X, y)
    Xt = rng.uniform(-1, 6, (50, 6))
    assert np.allclose(TreeEnsemble(gbr).predict(Xt), gbr.predict(Xt), rtol=1e-9, atol=1e-9)


def test_kernel_model_is_scikit_learn_style():
    m = KernelLatencyModel(boost=False)
    assert m.get_params() == {"boost": False, "calibrate": True, "seed": 0, "residual": True}
    from na_toolkit.errors import NotFittedError

    with pytest.raises(NotFittedError, match=r"KernelLatencyModel is not fitted: call fit\(\) or load a profile"):
        m.predict_networks([[]])


def test_errors(tmp_path, tiny_profile, example):
    with pytest.raises(TimeModelError, match="batch size 1"):
        example.estimate(get_seed("simple-cnn"), batch_size=8)
    with pytest.raises(UnknownComponentError, match="unknown device profile 'example-cpux'.*example-cpu"):
        resolve_profile_path("example-cpux", TK.hardware)
    with pytest.raises(ProfileError, match="hardware registry"):
        resolve_profile_path("example-cpu")  # a name needs the registry
    with pytest.raises(ProfileError, match="does not exist"):
        learned(tmp_path / "missing.json")
    doc = json.loads(tiny_profile.path.read_text())
    doc["kernels"] = doc["kernels"][:1]
    few = tmp_path / "few.json"
    few.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match="at least 3"):
        learned(few)
    doc = json.loads(tiny_profile.path.read_text())
    doc["device"]["name"] = "Imaginary CPU 9000"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    with pytest.warns(ProfileDeviceWarning, match="Imaginary CPU 9000"):
        model = learned(other)
    assert "Imaginary CPU 9000" in model.estimate(get_seed("simple-cnn")).warnings[0]


def test_registered_and_built_by_name():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileDeviceWarning)
        tm = get_time_model("learned", TK, device="example-cpu")
    assert isinstance(tm, LearnedTimeModel) and tm.profile.name == "example-cpu"


@pytest.mark.parametrize("name", ["h200-torch-b1", "h200-ort-b1"])
def test_committed_h200_profile_predicts_its_held_out_networks(tmp_path, name):
    # profiles/h200-torch-b1.json was measured on an NVIDIA H200 (torch, CUDA events, batch 1) by
    # benchmarks/gpu_check.sh, profiles/h200-ort-b1.json (ONNX Runtime's CUDA provider, wall clock, batch 1)
    # by benchmarks/gpu_latency.sh. Fitted on half of its networks (and all kernels), the learned model must
    # place the other half: batch-1 GPU latency is mostly per-layer framework and launch overhead, which the
    # roofline of the datasheet misses by ~5x (benchmarks/gpu-check-h200.json) and the profile's kernels capture.
    from scipy.stats import spearmanr

    from na_toolkit.ir.architecture import Architecture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileDeviceWarning)
        profile = DeviceProfile.load(resolve_profile_path(name, TK.hardware))
    assert profile.device["name"] == "NVIDIA H200" and profile.batch_size == 1
    nets = sorted(profile.networks, key=lambda n: n.hash)
    train, held = nets[::2], nets[1::2]
    doc = json.loads(profile.path.read_text())
    keep = {n.hash for n in train}
    doc["networks"] = [n for n in doc["networks"] if n["hash"] in keep]
    path = tmp_path / "h200-half.json"
    path.write_text(json.dumps(doc))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileDeviceWarning)
        model = learned(path)
    measured = np.array([n.latency_ms(profile.statistic) for n in held])
    predicted = model.predict_ms([Architecture.from_json(n.arch, layer_types=LT) for n in held])
    ratio = predicted / measured
    # the card's own speed wandered +-25% during the profile (its speed checks): loose bounds
    # (h200-torch-b1, this split: median ratio 0.90, 96% within 50%, Spearman 0.92)
    assert 0.7 < np.median(ratio) < 1.4
    assert np.mean(np.abs(ratio - 1) <= 0.5) >= 0.8
    assert spearmanr(predicted, measured).statistic > 0.6
    if name == "h200-ort-b1":
        # one session's measurements, without the between-session noise of benchmarks/latency-h200-ort.json
        # (this split: median ratio 1.00, 91% within 10%, Spearman 0.92)
        assert np.mean(np.abs(ratio - 1) <= 0.1) >= 0.8


def test_slow_spells_are_measured_again_unless_most_items_fall_in_them(tiny_profile, tmp_path):
    from na_toolkit.timemodels.profiler import make_time_model

    prof = DeviceProfile.load(tiny_profile.path)  # a fresh copy: the fixture's stays untouched
    logs: list[str] = []
    builder = ProfileBuilder(
        ProfileOptions(out=tmp_path / "p.json", progress=False, kernel_settings=QUICK, network_settings=QUICK),
        TK,
        log=logs.append,
    )
    builder._t_start = time.perf_counter()
    tm = make_time_model("onnxruntime", "cpu", QUICK)
    items = [*prof.kernels, *prof.networks]
    # the fixture's own profiling may have measured some items again already (a slow spell of this machine
    # while it ran: CI once saw it): count what these calls add
    counts = [r.remeasured for r in items]
    # most items flagged: the device is unsteady (the H200 case), nothing is measured twice
    prof.speed_checks = [[0.9, 1.40], [15.9, 2.12], [31.0, 2.14]]
    builder._suspects = items[: 3 * len(items) // 4]
    builder._remeasure_slow_spells(prof, tm, tm)
    assert [r.remeasured for r in items] == counts
    assert "unsteady" in logs[-1] and "1.4 and 2.14 ms" in logs[-1]
    # a few flagged: a brief slow spell, those are measured again (the lower value is kept)
    before = [r.latency_ms(prof.statistic) for r in items[:2]]
    builder._suspects = items[:2]
    builder._remeasure_slow_spells(prof, tm, tm)
    assert [r.remeasured for r in items[:2]] == [c + 1 for c in counts[:2]] and "measuring them again" in logs[-1]
    assert all(r.latency_ms(prof.statistic) <= b for r, b in zip(items[:2], before))


def test_a_gpu_profile_on_a_machine_without_that_gpu_says_so():
    import warnings

    from na_toolkit.timemodels.devices import describe_device
    from na_toolkit.timemodels.profile import DeviceProfile, check_device

    if not describe_device("cuda:0").endswith("(unknown GPU)"):
        pytest.skip("this machine has a GPU: the profile's device is compared by name instead")
    profile = DeviceProfile.load(REPO_ROOT / "profiles" / "h200-torch-b1.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        message = check_device(profile)
    assert message is not None and message.endswith(
        "but this machine has no cuda:0 (no GPU that torch or NVML can see)"
    )


def test_a_network_outside_what_the_profile_measured_is_flagged_one_inside_is_not(tiny_profile, tmp_path):
    """The tiny profile measured simple-cnn variants only (1x8x8 inputs, no adds, no hardswish): a ResNet on
    32x32 inputs and a net with hardswish are extrapolations, and the estimate says so, naming what is out;
    a network the profile measured is inside and carries no such warning."""
    import torch

    from na_toolkit.ir.torch_import import from_torch

    model = learned(tiny_profile.path)
    inside = Architecture.from_json(tiny_profile.networks[0].arch, layer_types=LT)
    est = model.estimate(inside)
    assert est.details["outside_profile_domain"] == [] and est.warnings == ()

    est = model.estimate(get_seed("resnet-cifar"))
    reasons = est.details["outside_profile_domain"]
    assert any(r.startswith("conv.h = 32 (profile: ") for r in reasons), reasons
    assert any("outside what profile" in w and "extrapolation" in w for w in est.warnings), est.warnings

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Hardswish(), torch.nn.Flatten(), torch.nn.Linear(512, 10)
    )
    hard = from_torch(net.eval(), torch.randn(1, 1, 8, 8), LT)
    reasons = model.estimate(hard).details["outside_profile_domain"]
    assert reasons[0].startswith("layer type hardswish never measured in the profile"), reasons


def test_a_profile_record_this_toolkit_cannot_build_names_the_file_and_record(tiny_profile, tmp_path):
    doc = json.loads(tiny_profile.path.read_text())
    doc["networks"][1]["arch"]["nodes"][0]["type"] = "frobnicate"  # a plugin's layer type, or an edit
    bad = tmp_path / "edited.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match=r"edited\.json.*networks\[1\]\.arch cannot be built here.*frobnicate"):
        learned(bad)


def test_a_hardware_model_or_local_device_given_as_a_profile_says_what_to_use():
    with pytest.raises(ProfileError, match="'x86-cpu' is a hardware model .*not a device profile.*roofline"):
        get_time_model("learned", TK, device="x86-cpu")
    with pytest.raises(ProfileError, match=r"'cpu' names a local device.*`na-toolkit profile --device cpu --out"):
        get_time_model("learned", TK, device="cpu")


def test_adaptive_neighbours_of_a_large_kernel_keep_its_scale():
    """The adaptive sampler explores around a badly predicted kernel; for an ImageNet-sized seed's kernel
    (the stem conv on 3x224x224) a spatial neighbour is half of it (112 px), not 64 px whatever its size."""
    from na_toolkit.timemodels.kernels import kernels_of, neighbour_kernel_architectures

    conv = next(k for k in kernels_of(get_seed("resnet18")) if k.kind == "conv" and k.in_shape[1] == 224)
    others = neighbour_kernel_architectures(conv, np.random.default_rng(0), 12, layer_types=LT)
    sizes = {a.input_shape[1:] for a in others} - {conv.in_shape[1:]}
    assert sizes == {(112, 112)}, sizes


def test_per_kernel_overheads_never_exceed_the_cheapest_kernel_of_their_group(example):
    """The calibration's per-kernel term of a group is bounded below by minus the cheapest kernel of that
    group measured alone: unbounded, it traded off against its group's sum (the committed Xeon profile's
    fusable adds came out at -88 us each, its cheapest add predicted at 10 us; a quick profile of this
    project's CPU at batch 4: -227 us per depthwise conv), so a network of a few small kernels of that group
    was predicted at a fraction of its latency (a MobileNet-v1-like net at 64 px: -60%)."""
    from na_toolkit.timemodels.kernels import measurable
    from na_toolkit.timemodels.learned import GROUPS, _group

    model = example.model
    data = profile_data(example.profile, LT)
    cheapest = dict.fromkeys(GROUPS, np.inf)
    for ks in data.network_kernels:
        for k, t in zip(ks, model.predict_kernels(ks)):
            if measurable(k):
                cheapest[_group(k)] = min(cheapest[_group(k)], t)
    per_kernel = dict(zip(GROUPS, model.calibration_[len(GROUPS) : 2 * len(GROUPS)]))
    assert all(per_kernel[g] >= -cheapest[g] - 1e-9 for g in GROUPS), (per_kernel, cheapest)
