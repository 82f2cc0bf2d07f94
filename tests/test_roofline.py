"""The roofline time model against hand-computed numbers for a tiny network on a toy device, and its
qualitative laws: the compute/memory switch, batch scaling, training >= inference, monotone in FLOPs."""

from __future__ import annotations

import math

import pytest

from conftest import default_toolkit, get_seed, layer_types
from na_toolkit.errors import HardwareError, TimeModelError
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.timemodels import get_time_model
from na_toolkit.timemodels.base import TimeEstimate
from na_toolkit.timemodels.hwmodel import HardwareModel, known_hardware_models
from na_toolkit.timemodels.roofline import RooflineTimeModel, kernel_time

#: the hardware registry hardware model names are looked up in
HW = default_toolkit().hardware


def roofline(device, **options) -> RooflineTimeModel:
    """The roofline of a hardware model named in the toolkit's hardware registry."""
    return RooflineTimeModel(device, hardware_registry=HW, **options)


# A toy device with round numbers: 1 GFLOP/s, 100 MB/s, 1 us per launch, 10 W.
TOY = HardwareModel("toy", "cpu", {"fp32": 1e9, "fp16": 2e9}, 1e8, 2**30, 1e-6, power_w=10.0)
US = 1e-6


def tiny():
    """conv 3x3 (2->4 channels, bias) -> relu -> identity -> global avg pool -> flatten -> linear (4->3, bias)
    on a 2x8x8 input."""
    b = ArchitectureBuilder((2, 8, 8), name="tiny", layer_types=layer_types())
    x = b.layer("conv2d", b.input, id="c", filters=4, kernel=3, bias=True)
    x = b.layer("relu", x, id="r")
    x = b.layer("identity", x, id="i")
    x = b.layer("global_avg_pool", x, id="g")
    x = b.layer("flatten", x, id="f")
    b.layer("linear", x, id="l", units=3, bias=True)
    return b.build()


# Hand-computed per-layer costs of `tiny` for one sample (fp32):
#   conv: params 4*2*9+4 = 76 (304 B); FLOPs 2 * (4*8*8 outputs * 2*9) = 9216; in 2*8*8*4 = 512 B, out 1024 B
#   relu: 256 FLOPs; in 1024 B, out 1024 B          global avg pool: 256 FLOPs; in 1024 B, out 16 B
#   linear: params 15 (60 B); 24 FLOPs; in 16 B, out 12 B       identity, flatten: nothing
# Forward on TOY, batch 1, each kernel max(FLOPs / 1e9, bytes / 1e8) + 1 us:
#   conv  max(9.216, 18.40) + 1 = 19.40 us (memory)   relu max(0.256, 20.48) + 1 = 21.48 us (memory)
#   gap   max(0.256, 10.40) + 1 = 11.40 us (memory)   linear max(0.024, 0.88) + 1 = 1.88 us (memory)
FORWARD_US = {"c": 19.40, "r": 21.48, "g": 11.40, "l": 1.88}


def test_tiny_forward_matches_the_hand_computation():
    est = RooflineTimeModel(TOY).estimate(tiny(), batch_size=1)
    assert isinstance(est, TimeEstimate) and est.time_model == "roofline" and est.device == "toy"
    layers = {k["node"]: k for k in est.details["layers"]}
    assert list(layers) == ["c", "r", "g", "l"]  # identity and flatten move nothing: no kernel, no launch
    for node, want_us in FORWARD_US.items():
        assert layers[node]["time_s"] == pytest.approx(want_us * US, rel=1e-9), node
        assert layers[node]["bound"] == "memory"
    assert layers["c"]["flops"] == 9216 and layers["c"]["bytes"] == 304 + 512 + 1024
    assert est.latency_ms == pytest.approx(sum(FORWARD_US.values()) * 1e-3, rel=1e-9)  # 54.16 us
    assert est.details["forward"]["launches"] == 4
    # energy at the board power: 10 W x 54.16 us = 0.5416 mJ
    assert est.energy_mj == pytest.approx(0.5416, rel=1e-9)
    # inference memory: weights 304 + 60 B, plus the peak of live activations (relu's input and output, 2048 B)
    assert est.peak_memory_bytes == 364 + 2048


def test_tiny_training_step_matches_the_hand_computation():
    est = RooflineTimeModel(TOY, optimizer="momentum").estimate(tiny(), batch_size=1)
    # backward: layers with weights do 2x FLOPs and bytes in 2 kernels, the others 1x in 1 kernel
    #   conv max(18.432, 36.80) + 2 = 38.80   relu 21.48   gap 11.40   linear max(0.048, 1.76) + 2 = 3.76
    backward_us = 38.80 + 21.48 + 11.40 + 3.76
    # momentum update per weighted layer: read w, g, m and write w, m = 5 x 4 B per parameter, 4 FLOPs each
    #   conv 76 params: max(0.304, 15.2) + 1 = 16.2     linear 15 params: max(0.06, 3.0) + 1 = 4.0
    update_us = 16.2 + 4.0
    assert est.details["backward"]["time_s"] == pytest.approx(backward_us * US, rel=1e-9)
    assert est.details["optimizer_update"]["time_s"] == pytest.approx(update_us * US, rel=1e-9)
    assert est.train_step_ms == pytest.approx((sum(FORWARD_US.values()) + backward_us + update_us) * 1e-3, rel=1e-9)
    assert est.training_time_s(1000) == pytest.approx(est.train_step_ms, rel=1e-12)
    # training memory: weights 364 + grads 91*4 + momentum 91*4 + kept outputs (1024+1024+16+12) + input 512
    # + the largest layer's input+output gradients (relu, 2048)
    assert est.details["train_peak_memory_bytes"] == 364 + 364 + 364 + 2076 + 512 + 2048


def test_compute_bound_when_bandwidth_is_plentiful():
    fast_memory = HardwareModel("fast-mem", "cpu", {"fp32": 1e9}, 1e15, 2**30, 1e-6)
    est = RooflineTimeModel(fast_memory).estimate(tiny())
    conv = est.details["layers"][0]
    assert conv["bound"] == "compute"
    assert conv["time_s"] == pytest.approx(9216 / 1e9 + 1e-6, rel=1e-9)
    # and on TOY the same layer is memory-bound: the switch is the ridge point (FLOPs per byte)
    toy_conv = RooflineTimeModel(TOY).estimate(tiny()).details["layers"][0]
    assert toy_conv["bound"] == "memory"
    assert toy_conv["intensity_flops_per_byte"] == pytest.approx(9216 / 1840)
    assert (
        toy_conv["intensity_flops_per_byte"]
        < RooflineTimeModel(TOY).estimate(tiny()).details["ridge_point_flops_per_byte"]
        == 10
    )


def test_batch_scaling_reads_weights_once():
    no_launch = HardwareModel("toy0", "cpu", {"fp32": 1e12}, 1e8, 2**30, 0.0)
    model = RooflineTimeModel(no_launch)
    one, four = model.estimate(tiny(), 1), model.estimate(tiny(), 4)
    conv1, conv4 = one.details["layers"][0], four.details["layers"][0]
    # all memory-bound here: bytes = weights + batch x activations
    assert conv4["bytes"] == 304 + 4 * 1536 and conv1["bytes"] == 304 + 1536
    assert conv4["time_s"] / conv1["time_s"] == pytest.approx((304 + 4 * 1536) / (304 + 1536))
    assert one.latency_ms < four.latency_ms < 4 * one.latency_ms
    assert four.peak_memory_bytes == 364 + 4 * 2048
    assert four.energy_mj is None  # no power figure, no energy


def test_training_is_slower_than_inference_everywhere():
    archs = [get_seed(s) for s in ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")]
    for name in known_hardware_models(HW):
        model = roofline(name)
        for arch in archs:
            est = model.estimate(arch, batch_size=8)
            assert math.isfinite(est.latency_ms) and est.latency_ms > 0, name
            assert est.train_step_ms >= 2 * est.latency_ms, name  # backward alone is at least the forward
            assert est.details["train_peak_memory_bytes"] > est.peak_memory_bytes > arch.cost.weight_bytes


def _conv_net(filters: int, kernel: int = 3):
    b = ArchitectureBuilder((16, 32, 32), layer_types=layer_types())
    x = b.layer("conv2d", b.input, filters=filters, kernel=kernel)
    x = b.layer("relu", x)
    x = b.layer("global_avg_pool", x)
    x = b.layer("flatten", x)
    b.layer("linear", x, units=10)
    return b.build()


@pytest.mark.parametrize("device", ["x86-cpu", "h100-sxm", "raspberry-pi-4"])
def test_monotone_in_flops(device):
    """More FLOPs never make a network faster: a wider or larger-kernel convolution (FLOPs and bytes grow
    together) is never estimated below a narrower one. (Across unrelated networks FLOPs alone do not order
    roofline times: a 1x1 convolution with many filters moves more bytes than a 3x3 one with few.)"""
    model = roofline(device)
    for kernel in (1, 3, 5):
        nets = [_conv_net(f, kernel) for f in (8, 16, 32, 64, 128)]
        lat = [model.latency_ms(a) for a in nets]
        assert all(a < b for a, b in zip(lat, lat[1:])), (kernel, lat)
    for filters in (8, 64):
        lat = [model.latency_ms(_conv_net(filters, k)) for k in (1, 3, 5, 7)]
        assert all(a <= b for a, b in zip(lat, lat[1:])), (filters, lat)


def test_kernel_time_is_monotone_in_flops_and_bytes():
    times = [
        kernel_time("n", "t", f, b, 1, 1e12, 1e11, 2e-6).time_s for f in (0, 1e6, 1e8, 1e10) for b in (0, 1e5, 1e7, 1e9)
    ]
    grid = [times[i * 4 : (i + 1) * 4] for i in range(4)]
    for i in range(4):
        assert grid[i] == sorted(grid[i])  # more bytes, same FLOPs
        assert [grid[j][i] for j in range(4)] == sorted(grid[j][i] for j in range(4))  # more FLOPs, same bytes
    assert grid[0][0] == 2e-6  # nothing to do still costs the launch when a kernel is launched


def test_narrower_dtypes_and_measured_ceilings():
    arch = get_seed("resnet-cifar")
    fp32 = roofline("h100-sxm", dtype="fp32").estimate(arch, 256)
    bf16 = roofline("h100-sxm", dtype="bf16").estimate(arch, 256)
    assert bf16.latency_ms < fp32.latency_ms and bf16.peak_memory_bytes == pytest.approx(
        fp32.peak_memory_bytes / 2, rel=1e-6
    )
    datasheet = roofline("h100-sxm", dtype="bf16", ceilings="datasheet")
    assert datasheet.flops_per_s == pytest.approx(989.5e12) and datasheet.bytes_per_s == 3.35e12
    measured = roofline("h100-sxm", dtype="bf16")
    assert measured.flops_per_s == 7.98e14 and measured.bytes_per_s == 3.0e12
    assert measured.estimate(arch, 256).latency_ms > datasheet.estimate(arch, 256).latency_ms


def test_devices_and_options_are_checked():
    assert roofline("cpu").device == "x86-cpu"
    # names are looked up in the toolkit's hardware registry: given explicitly, or through the toolkit
    assert get_time_model("roofline", default_toolkit(), device="h100-sxm").hardware.name == "h100-sxm"
    with pytest.raises(HardwareError, match="'h100-sxm'.*hardware registry.*hardware_registry=toolkit.hardware"):
        RooflineTimeModel("h100-sxm")
    # the hint works as written
    assert RooflineTimeModel("h100-sxm", hardware_registry=default_toolkit().hardware).hardware.name == "h100-sxm"
    with pytest.raises(HardwareError, match="unknown hardware model 'tpu-v9'.*Known: .*h100-sxm") as info:
        roofline("tpu-v9")
    # a made-up device's own file named without its path: the message says how to give it
    assert "the path of its .toml file (e.g. tpu-v9.toml)" in str(info.value)
    assert "NA_TOOLKIT_HWMODELS_PATH" in str(info.value)
    with pytest.raises(HardwareError, match="raspberry-pi-4.*no peak for dtype 'fp16'.*fp32"):
        roofline("raspberry-pi-4", dtype="fp16")
    with pytest.raises(TimeModelError, match="unknown dtype 'fp12'"):
        roofline("h100-sxm", dtype="fp12")
    with pytest.raises(TimeModelError, match="optimizer"):
        roofline("h100-sxm", optimizer="lion")
    with pytest.raises(TimeModelError, match="optimiser. Did you mean .optimizer.. Known: device, dtype"):
        roofline("h100-sxm", optimiser="adam")
    with pytest.raises(TimeModelError, match="ceilings"):
        roofline("h100-sxm", ceilings="best")
    with pytest.raises(TimeModelError, match="batch_size"):
        roofline("h100-sxm").estimate(tiny(), batch_size=0)


def test_adam_costs_more_than_sgd_and_capacity_is_checked():
    arch = get_seed("resnet-cifar")
    sgd = roofline("jetson-orin-nano", optimizer="sgd").estimate(arch, 32)
    adam = roofline("jetson-orin-nano", optimizer="adam").estimate(arch, 32)
    assert adam.train_step_ms > sgd.train_step_ms and adam.latency_ms == sgd.latency_ms
    assert adam.details["train_peak_memory_bytes"] - sgd.details["train_peak_memory_bytes"] == 2 * 4 * arch.params
    huge = roofline("jetson-orin-nano").estimate(arch, 100_000)
    assert any("GiB, more than the 8.00 GiB" in w for w in huge.warnings), huge.warnings


def test_a_hardware_model_built_in_python_is_checked_before_it_divides():
    # a file is validated when read; a HardwareModel given as an object is not, and a zero rate used to crash
    # every estimate (ZeroDivisionError), a negative launch overhead or a NaN bandwidth to give nonsense latencies
    from dataclasses import replace

    bad = {
        "peak_flops_per_s.fp32 must be a finite number > 0, got 0.0": replace(TOY, peak_flops_per_s={"fp32": 0.0}),
        "memory_bandwidth_bytes_per_s must be .* > 0, got nan": replace(TOY, memory_bandwidth_bytes_per_s=math.nan),
        "measured_ceilings.memory_bandwidth_bytes_per_s .* got -1.0": replace(
            TOY, measured_memory_bandwidth_bytes_per_s=-1.0
        ),
        "launch_overhead_s must be a finite number >= 0, got -1e-06": replace(TOY, launch_overhead_s=-1e-6),
    }
    for message, model in bad.items():
        with pytest.raises(HardwareError, match=f"'toy': {message}"):
            RooflineTimeModel(device=model)
    # the datasheet ceilings alone are what is used (and checked) when asked for
    negative_ceiling = replace(TOY, measured_memory_bandwidth_bytes_per_s=-1.0)
    assert RooflineTimeModel(device=negative_ceiling, ceilings="datasheet").bytes_per_s == 1e8
    assert RooflineTimeModel(device=replace(TOY, launch_overhead_s=0.0)).estimate(tiny()).latency_ms > 0


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_training_memory_below_fp32_counts_the_fp32_master_weights(optimizer):
    """Mixed precision trains narrower weights and gradients but keeps an fp32 master copy of the weights
    (and fp32 optimizer state): a bf16 step needs 2 + 2 + 4 bytes per parameter besides the state, not 2 + 2."""
    from na_toolkit.timemodels.roofline import OPTIMIZER_STATE_PER_PARAM

    arch = get_seed("resnet-cifar")
    params, state = arch.cost.params, OPTIMIZER_STATE_PER_PARAM[optimizer]
    fp32 = roofline("h100-sxm", dtype="fp32", optimizer=optimizer).training_memory_bytes(arch, 64)
    bf16 = roofline("h100-sxm", dtype="bf16", optimizer=optimizer).training_memory_bytes(arch, 64)
    activations_fp32 = fp32 - params * (4 + 4 + 4 * state)  # fp32: the weights are the master copy
    assert bf16 == pytest.approx(params * (2 + 2 + 4 + 4 * state) + activations_fp32 / 2, abs=2)
