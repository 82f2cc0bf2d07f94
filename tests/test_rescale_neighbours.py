"""Each network's latency factor from the measured networks most like it (search/rescale.py): the similarity of
two networks' layers, and the factor's two ends (a network measured already, one unlike every measured one)."""

from __future__ import annotations

import numpy as np
import pytest

from na_toolkit.errors import ConfigError
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.config import load_config
from na_toolkit.search.figure_sources import scale_lines
from na_toolkit.search.rescale import DEFAULT_RESCALE_NEIGHBOURS, LatencyScale, Neighbours, Signature, similarity
from na_toolkit.search.strategy import random_move

TK = load_toolkit()
SIMPLE = TK.seeds.get("simple-cnn").build(TK.layer_types)
RESNET = TK.seeds.get("resnet-cifar").build(TK.layer_types)
MOVES = [TK.moves.get(name) for name in ("scale", "insert_conv")]


def variants(arch, n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        step = random_move(arch, MOVES, rng)
        assert step is not None
        out.append(step[1])
    return out


def test_similarity_is_one_for_the_same_layers_and_shrinks_with_each_move():
    a = Signature.of(SIMPLE)
    assert similarity(a, Signature.of(SIMPLE)) == pytest.approx(1.0)
    assert similarity(a, Signature.of(RESNET)) == pytest.approx(0.0, abs=0.05)  # other shapes: hardly anything shared
    for child in variants(SIMPLE, 5):
        b = Signature.of(child)
        s = similarity(a, b)
        assert 0.0 <= s < 1.0
        assert s == pytest.approx(similarity(b, a))  # symmetric


def test_a_network_measured_alone_like_itself_gets_its_own_ratio_and_a_stranger_the_devices():
    own = Signature.of(SIMPLE)
    others = [Signature.of(RESNET)] * 2
    n = Neighbours(3, [own, *others], [2.0, 0.5, 0.5])  # the device's factor: their median, 0.5
    # resnet shares a little with simple-cnn (its first layers): the factor is that of simple-cnn's one
    # measurement, pulled towards resnet's by what they share
    sims = n.similarities(own)
    assert sims[0] == pytest.approx(1.0)
    w = sims
    expected = np.exp(np.log(0.5) + 1.0 * (w @ np.log([2.0, 0.5, 0.5]) / w.sum() - np.log(0.5)))
    assert n.factor(own) == pytest.approx(expected)
    alone = Neighbours(1, [own, Signature.of(RESNET)], [2.0, 0.5])
    assert alone.factor(own) == pytest.approx(2.0)  # k = 1: its own ratio exactly
    empty = Signature({}, {}, 0.0)  # shares nothing with any measured network: the median of 2.0 and 0.5
    assert alone.factor(empty) == pytest.approx(1.25)


def test_the_factor_lies_between_the_devices_and_the_neighbours_ratios():
    measured = variants(SIMPLE, 8, seed=1)
    rng = np.random.default_rng(0)
    ratios = np.exp(rng.normal(0, 0.5, len(measured)))
    scale = LatencyScale.of(ratios, neighbours=3)
    n = Neighbours(3, [Signature.of(a) for a in measured], ratios)
    for arch in variants(SIMPLE, 10, seed=2):
        f = n.factor(Signature.of(arch))
        lo, hi = min(ratios.min(), scale.scale), max(ratios.max(), scale.scale)
        assert lo - 1e-12 <= f <= hi + 1e-12
    assert scale.to_json()["neighbours"] == 3


def test_bad_neighbours_are_refused():
    sig = Signature.of(SIMPLE)
    with pytest.raises(ValueError, match="k >= 1"):
        Neighbours(0, [sig], [1.0])
    with pytest.raises(ValueError, match="1 signatures for 2 ratios"):
        Neighbours(1, [sig], [1.0, 2.0])


def device_doc(**extra):
    return {
        "name": "n",
        "seed_network": "simple-cnn",
        "evaluations": 4,
        "devices": {"cpu": {"time_model": {"name": "roofline", "options": {"device": "x86-cpu"}}, **extra}},
    }


MEASURE = {"measure": {"name": "onnxruntime"}}


def test_the_config_defaults_neighbours_where_estimates_are_rescaled_and_refuses_them_elsewhere():
    assert load_config(device_doc(**MEASURE)).device("cpu").rescale_neighbours == DEFAULT_RESCALE_NEIGHBOURS == 0
    assert load_config(device_doc(**MEASURE, rescale_neighbours=3)).device("cpu").rescale_neighbours == 3
    with pytest.raises(ConfigError, match=r"devices\.cpu\.rescale_neighbours: the device has no `measure`"):
        load_config(device_doc(rescale_neighbours=2))
    with pytest.raises(ConfigError, match=r"devices\.cpu\.rescale_neighbours: the device sets rescale_by_measure"):
        load_config(device_doc(**MEASURE, rescale_by_measure=False, rescale_neighbours=2))
    for bad in (-1, "three", 2.5):
        with pytest.raises(ConfigError, match=r"devices\.cpu\.rescale_neighbours"):
            load_config(device_doc(**MEASURE, rescale_neighbours=bad))


def test_the_report_line_says_when_each_network_had_its_own_factor():
    scale = LatencyScale.of([0.5, 1.0, 2.0], neighbours=3).to_json()
    (line,) = scale_lines({"latency_scales": {"cpu": scale}})
    assert line.endswith(
        "each network's factor moved towards those of its 3 most similar measured networks "
        "(devices.cpu.rescale_neighbours)"
    )
    (one,) = scale_lines({"latency_scales": {"cpu": {**scale, "neighbours": 0}}})
    assert one.endswith("devices.cpu.rescale_by_measure)") and "most similar" not in one
