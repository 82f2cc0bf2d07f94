"""`bench latency --heldout-seed`: how well a profile built from some seeds predicts networks of others.

The held-out seeds are read as `na-toolkit profile --seed-net` reads its seeds (a registered name, an IR
.json or an .onnx file); an unknown name, a missing file or a seed bigger than the profile measures is refused
in one line before anything is built or measured; without the option the held-out networks are variants of
the profile's own seeds, the same networks as before the option existed. The result splits the learned
model's figures by seed and by its own outside-the-profile warning, and the splits add up.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import default_toolkit
from na_toolkit.bench.latency import configure, measure_heldout
from na_toolkit.bench.latency_heldout import (
    FIGURES,
    accuracy,
    check_seed_flops,
    drift_figures,
    drift_reference,
    given_seeds,
    learned_split,
    pass_figures,
    profile_seeds,
    rescaled_figures,
)
from na_toolkit.errors import ConfigError
from na_toolkit.files import strict_json_text
from na_toolkit.ir.architecture import Architecture
from na_toolkit.search.strategy import random_move
from na_toolkit.timemodels.profile import DeviceProfile
from na_toolkit.timemodels.profile_plan import DEFAULT_SEEDS
from na_toolkit.timemodels.sampling import load_seed

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_CPU = REPO / "profiles" / "example-cpu.json"


def test_heldout_seed_is_repeatable_and_absent_by_default():
    parser = argparse.ArgumentParser()
    configure(parser)
    assert parser.parse_args([]).heldout_seeds is None
    args = parser.parse_args(["--heldout-seed", "simple-cnn", "--heldout-seed", "net.onnx"])
    assert args.heldout_seeds == ["simple-cnn", "net.onnx"]


def test_an_unknown_seed_name_is_the_usual_did_you_mean_error(run_cli):
    line = run_cli("bench", "latency", "--heldout-seed", "resnet-cifr", timeout=120).error_line()
    assert line.startswith("na-toolkit: error: --heldout-seed: unknown seed network 'resnet-cifr'. Did you mean")
    assert "'resnet-cifar'" in line


def test_a_seed_file_that_does_not_exist_is_refused(run_cli, tmp_path):
    missing = tmp_path / "family.onnx"
    line = run_cli("bench", "latency", "--heldout-seed", str(missing), timeout=120).error_line()
    assert line == f"na-toolkit: error: --heldout-seed: file {str(missing)!r} does not exist"


def test_a_seed_bigger_than_the_profile_measures_is_refused_before_a_profile_is_built(run_cli):
    # no --profile: a profile would be built first (minutes); the limit is the one it would be built with
    line = run_cli("bench", "latency", "--heldout-seed", "simple-cnn", "--heldout-seed", "resnet18").error_line()
    flops = default_toolkit().seed("resnet18").flops
    assert line.startswith(
        f"na-toolkit: error: --heldout-seed 'resnet18' is {flops / 1e6:.0f} MFLOPs, over the profile's limit of "
        "2000 MFLOPs (plan.max_flops"
    )
    assert "Give a smaller network of that family" in line


def test_the_profiles_own_seed_over_its_limit_is_named_as_such():
    toolkit = default_toolkit()
    seeds = {"resnet-cifar": toolkit.seed("resnet-cifar")}
    check_seed_flops(seeds, 1e9, "the profile's seed network")  # 82 MFLOPs: within
    check_seed_flops(seeds, None, "the profile's seed network")  # a profile that records no limit
    with pytest.raises(ConfigError, match=r"^the profile's seed network 'resnet-cifar' is 82 MFLOPs, over the "):
        check_seed_flops(seeds, 50e6, "the profile's seed network")


def test_out_may_not_overwrite_a_heldout_seed_file(run_cli, tmp_path):
    seed = tmp_path / "family.json"
    default_toolkit().seed("simple-cnn").save(seed)
    before = seed.read_text()
    line = run_cli("bench", "latency", "--heldout-seed", str(seed), "--out", str(seed), timeout=120).error_line()
    assert "it is the input" in line and seed.read_text() == before


def test_by_default_the_heldout_seeds_are_the_profiles_own_and_the_same_networks_as_before():
    """The default held-out networks are random variants of the profile's seeds; for the shipped profile (and
    any built by `na-toolkit profile`'s defaults) those are the default seeds, in order, as the same networks:
    random_variants then draws the same held-out set as when the held-out seeds were always DEFAULT_SEEDS."""
    toolkit = default_toolkit()
    profile = DeviceProfile.load(EXAMPLE_CPU)
    before = {s: load_seed(s, toolkit) for s in DEFAULT_SEEDS}
    own = profile_seeds(profile, toolkit)
    assert [(k, a.hash) for k, a in own.items()] == [(k, a.hash) for k, a in before.items()]
    assert given_seeds(None, toolkit) is None and given_seeds([], toolkit) is None
    # a profile that names no seeds (written before plans recorded them): the profile command's defaults
    profile.plan = {k: v for k, v in profile.plan.items() if k != "seeds"}
    assert list(profile_seeds(profile, toolkit)) == list(DEFAULT_SEEDS)


def test_empty_and_small_splits_are_null_not_nan():
    truth = np.array([1.0, 2.0, 4.0, 8.0])
    pred = truth * np.array([1.05, 0.9, 1.3, 1.0])
    split = learned_split(pred, truth, ["a", "a", "a", "b"], [[], [], [], ["conv.h = 96"]], ["a", "b", "c"])
    assert split["by_seed"]["c"] is None
    small = split["by_seed"]["b"]
    assert small["networks"] == 1 and small["outside_profile_share"] == 1.0
    assert all(small[k] is None for k in FIGURES)
    assert split["by_seed"]["a"] == {
        "networks": 3,
        **accuracy(pred[:3], truth[:3]),
        "latency_ms_median": 2.0,
        "outside_profile_share": 0.0,
    }
    none_flagged = learned_split(pred, truth, ["a"] * 4, [[]] * 4, ["a"])["outside_profile"]
    assert none_flagged["share"] == 0.0 and none_flagged["outside"] is None
    assert "NaN" not in strict_json_text(split)


@pytest.mark.slow  # one CLI run: the shipped profile, 10 held-out networks measured once with --quick (~15 s)
def test_the_splits_by_seed_and_by_the_outside_profile_warning_add_up(run_cli, tmp_path):
    """Variants of simple-cnn (given as an IR file: the profile's own seed, so in the family) and of
    mobilenetv3-small (hardswish and squeeze-excitation, which no kernel of the profile holds: out of the
    family, and flagged) measured here: every count adds up to the held-out set, and each figure is the one
    the dumped measurements and predictions give."""
    seed_file = tmp_path / "simple.json"
    default_toolkit().seed("simple-cnn").save(seed_file)
    dump_path = tmp_path / "dump.json"
    res = run_cli(
        "bench", "latency", "--profile", str(EXAMPLE_CPU), "--heldout-seed", str(seed_file),
        "--heldout-seed", "mobilenetv3-small", "--heldout", "10", "--repeats", "1", "--max-moves", "2", "--quick",
        "--json", "--dump", str(dump_path),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc, dump = res.json(), json.loads(dump_path.read_text())
    labels = [str(seed_file), "mobilenetv3-small"]
    assert doc["params"]["heldout_seeds"] == labels
    held = doc["heldout"]
    assert held["networks"] == len(dump) == 10
    assert held["profile_seeds"] == list(DEFAULT_SEEDS)
    assert held["out_of_family"] == ["mobilenetv3-small"]
    counts = {s: sum(d["seed"] == s for d in dump) for s in labels}
    assert {s: v["networks"] for s, v in held["seeds"].items()} == counts and sum(counts.values()) == 10
    assert all(n >= 3 for n in counts.values())  # both seeds' figures are reported

    learned = doc["learned"]
    truth = np.array([d["truth_ms"] for d in dump])
    pred = np.array([d["learned_ms"] for d in dump])
    flagged = np.array([bool(d["outside_profile_domain"]) for d in dump])
    assert flagged[[d["seed"] == "mobilenetv3-small" for d in dump]].all()  # layer types the profile never had
    assert learned["mape"] == pytest.approx(accuracy(pred, truth)["mape"])
    for s in labels:
        idx = [i for i, d in enumerate(dump) if d["seed"] == s]
        by = learned["by_seed"][s]
        assert by["networks"] == counts[s]
        assert by["mape"] == pytest.approx(accuracy(pred[idx], truth[idx])["mape"])
        assert by["outside_profile_share"] == pytest.approx(flagged[idx].mean())
    outside = learned["outside_profile"]
    assert outside["share"] == pytest.approx(flagged.mean())
    parts = [p for p in (outside["inside"], outside["outside"]) if p is not None]
    assert sum(p["networks"] for p in parts) == 10
    assert outside["outside"]["networks"] == int(flagged.sum())
    assert outside["outside"]["mape"] == pytest.approx(accuracy(pred[flagged], truth[flagged])["mape"])
    # the profile's networks measured again among them: the drift, and the figures had the machine not drifted
    drift = doc["drift"]
    assert drift["networks"] == 24 and "_reference_ms" not in doc["measurement"]
    # a search's rescaling played on them: after 5 measured (10 or 20 would leave too few to score)
    rescaled = doc["learned_rescaled_by_measure"]
    archs = [Architecture.from_json(d["arch"], default_toolkit().layer_types) for d in dump]
    again = rescaled_figures(pred, truth, archs, [d["seed"] for d in dump], doc["params"]["rng_seed"])
    assert set(rescaled) == {"5"} and rescaled == again  # no seed holds 5 + 3 networks: no `by_seed`
    assert set(rescaled["5"]["neighbours"]) == {"within_10pct", "within_20pct", "mape"}
    # one pass: nothing to compare a pass with
    assert doc["measurement"]["pass_agreement"] is None and learned["vs_one_pass"] is None
    ratio = drift["now_over_profile"]
    assert 0 < ratio["p10"] <= ratio["median"] <= ratio["p90"]
    rescaled = accuracy(pred * ratio["median"], truth)
    assert drift["learned_rescaled"] == pytest.approx(rescaled)
    # the learned model without its residual step, on the same truth
    assert isinstance(learned["residual_kept"], bool)
    assert set(doc["learned_calibration_only"]) == set(FIGURES)


def test_reference_networks_are_measured_among_the_heldout_ones_and_kept_apart():
    """Three small networks held out, two big ones as the reference: each comes back where it belongs (the big
    ones are an order of magnitude slower), and the figures count only the held-out ones."""
    from na_toolkit.timemodels.measure import MeasureSettings

    tk = default_toolkit()
    small = [tk.seed("simple-cnn")] * 3
    big = [tk.seed("resnet-cifar")] * 2
    truth, figures = measure_heldout(small, "cpu", 2, MeasureSettings.quick(), "min", 1, big)
    ref = figures.pop("_reference_ms")
    assert len(truth) == 3 and len(ref) == 2 and figures["networks"] == 3 and len(figures.pop("_per_pass")) == 3
    assert ref.min() > 5 * truth.max(), (truth, ref)
    json.loads(strict_json_text(figures))  # what is left is JSON


def test_the_drift_reference_is_the_profiles_own_networks_at_their_profile_latency():
    tk = default_toolkit()
    profile = DeviceProfile.load(EXAMPLE_CPU)
    ref = drift_reference(profile, tk, 5, 0)
    assert ref == drift_reference(profile, tk, 5, 0) and len(ref) == 5  # deterministic
    by_hash = {n.hash: n.latency_ms(profile.statistic) for n in profile.networks}
    assert all(by_hash[a.hash] == ms for a, ms in ref)
    assert drift_reference(profile, tk, 0, 0) == [] and drift_figures([], [], [1.0], [1.0]) == {"networks": 0}
    # now twice as slow as in the profile: the rescaled predictions are the measured ones
    doc = drift_figures([1.0, 2.0, 4.0], [2.0, 4.0, 8.0], np.array([1.0, 3.0]), np.array([2.0, 6.0]))
    assert doc["now_over_profile"]["median"] == 2.0 and doc["learned_rescaled"]["within_10pct"] == 1.0


def test_one_pass_against_another_is_the_measurements_own_ceiling():
    """Four networks measured here in two passes: `pass_agreement` is each pass scored as the prediction of
    the other (both ways, averaged), `vs_one_pass` a prediction scored against each pass; a pass that failed
    to measure is left out of the pairs it is in, and one pass gives no figures."""
    from na_toolkit.timemodels.measure import MeasureSettings

    tk = default_toolkit()
    archs = [tk.seed("simple-cnn"), tk.seed("resnet-cifar")] * 2
    _, figures = measure_heldout(archs, "cpu", 2, MeasureSettings.quick(), "min", 1)
    per_pass = figures.pop("_per_pass")
    P = np.array([[p["min_ms"] for p in passes] for passes in per_pass])
    seeds = ["simple-cnn", "resnet-cifar"] * 2
    agree, one = pass_figures(per_pass, "min", P[:, 0], seeds)
    assert agree is not None and one is not None and agree["passes"] == 2
    both_ways = [accuracy(P[:, 0], P[:, 1]), accuracy(P[:, 1], P[:, 0])]
    for k in ("within_10pct", "within_20pct", "mape"):
        assert agree[k] == pytest.approx(np.mean([d[k] for d in both_ways]))
        # the prediction is pass 0 itself: perfect against it, as good as pass 0 against pass 1
        assert one[k] == pytest.approx(np.mean([1.0 if k != "mape" else 0.0, both_ways[0][k]]))
    assert agree["by_seed"] == {"resnet-cifar": None, "simple-cnn": None}  # two networks each: too few
    # a failed pass is left out: three networks remain in the pairs
    per_pass[0][1] = {}
    agree, one = pass_figures(per_pass, "min", P[:, 0], seeds)
    assert agree["within_10pct"] == pytest.approx(
        np.mean([accuracy(P[1:, 0], P[1:, 1])["within_10pct"], accuracy(P[1:, 1], P[1:, 0])["within_10pct"]])
    )
    assert pass_figures([p[:1] for p in per_pass], "min", P[:, 0], seeds) == (None, None)


def variants_of(seed: str, n: int) -> list[Architecture]:
    tk = default_toolkit()
    start = tk.seeds.get(seed).build(tk.layer_types)
    moves = [tk.moves.get(m) for m in ("scale", "insert_conv")]
    rng = np.random.default_rng(0)
    return [random_move(start, moves, rng)[1] for _ in range(n)]


def test_the_rescaled_figures_scale_the_unmeasured_by_what_the_measured_give():
    """A model that predicts every network 20% high, and a truth with no other error: once any network is
    measured both factors (the median, and each network's from its most similar measured ones) are 1/1.2 and
    the rest are predicted exactly, also within each seed's networks."""
    truth = np.linspace(0.01, 2.0, 60)
    archs = variants_of("simple-cnn", 30) + variants_of("resnet-cifar", 30)
    seeds = ["simple-cnn"] * 30 + ["resnet-cifar"] * 30
    figures = rescaled_figures(truth * 1.2, truth, archs, seeds, 0)
    assert set(figures) == {"5", "10", "20", "by_seed"} and set(figures["by_seed"]) == {"5", "10", "20"}
    for doc in [figures[k] for k in ("5", "10", "20")] + list(figures["by_seed"].values()):
        for played in (doc, doc["neighbours"]):
            assert played["within_10pct"] == 1.0 and played["mape"] == pytest.approx(0.0, abs=1e-12)
    assert figures["5"]["scale"] == pytest.approx(1 / 1.2)
    by_seed = figures["by_seed"]["5"]
    assert by_seed["budget_agreement"] == by_seed["neighbours"]["budget_agreement"] == 1.0
    assert by_seed["unscaled"]["mape"] == pytest.approx(0.2) and by_seed["unscaled"]["budget_agreement"] < 1.0
    few = list(range(6)) + list(range(30, 36))
    small = rescaled_figures(truth[few] * 1.2, truth[few], [archs[i] for i in few], [seeds[i] for i in few], 0)
    assert set(small) == {"5"}  # 10 would leave 2 to score, and one seed cannot spare 5 + 3


def test_each_networks_factor_follows_the_measured_networks_most_like_it():
    """Two families that the model gets wrong by different factors, measured and predicted together: the
    median factor is off for both, each network's own factor (from its family's networks, the ones most like
    it) is right."""
    archs = variants_of("simple-cnn", 20) + variants_of("resnet-cifar", 20)
    truth = np.linspace(0.5, 1.5, 40)
    pred = truth * np.where(np.arange(40) < 20, 1.5, 0.75)
    figures = rescaled_figures(pred, truth, archs, ["a"] * 40, 0)["20"]
    assert figures["neighbours"]["within_10pct"] > figures["within_10pct"] + 0.3
