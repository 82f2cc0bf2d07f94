"""Few-shot latency: the prior of other devices, adaptation from few samples, no use of the target device's
data beyond its samples, persistence, bad input, and the benchmark command on a small table."""

from __future__ import annotations

import json

import numpy as np
import pytest

nb = pytest.importorskip("na_toolkit_nb201", reason="the NB201 plugin is not installed")

from conftest import default_toolkit, get_seed, layer_types  # noqa: E402
from na_toolkit.errors import DataError  # noqa: E402
from na_toolkit.predictors import load_predictor  # noqa: E402
from na_toolkit.predictors.fewshot import (  # noqa: E402
    ALPHA_GRID,
    WEIGHT_GRID,
    FewShotLatencyPredictor,
    LatencyPrior,
    kernel_features,
)

TARGET = "lat_gold_6226"


@pytest.fixture(scope="module")
def cells():
    table = nb.load_table()
    rows = np.random.default_rng(3).permutation(len(table))[:250]
    archs = [nb.nb201_architecture(table.arch_strs[i], layer_types=layer_types()) for i in rows]
    return table, rows, archs


@pytest.fixture(scope="module")
def prior(cells):
    table, rows, archs = cells
    others = {d: table.column(d)[rows] for d in table.devices if d != TARGET}
    return LatencyPrior.fit(archs, others, shots=20, meta_seeds=1)


def test_kernel_features_count_fused_kernels():
    f = kernel_features(nb.nb201_architecture(nb.RESNET_CELL, layer_types=layer_types()))
    # 15 cells x 2 convs (each ReLU-conv-BN: a standalone ReLU kernel + a fused conv-BN kernel), reductions
    # 2 x (2 convs + shortcut conv), the stem conv
    assert f["kind:conv.count"] == 15 * 2 + 2 * 3 + 1
    assert f["kind:add.count"] > 0 and not any(k.startswith("kind:free") for k in f)


def test_prior_excludes_the_target_and_meta_learns(prior):
    assert TARGET not in prior.devices and len(prior.devices) == 15
    assert prior.alpha in ALPHA_GRID and prior.weight in WEIGHT_GRID
    assert len(prior.meta_scores) == len(ALPHA_GRID) * len(WEIGHT_GRID)
    assert prior.without("lat_pixel2").devices == [d for d in prior.devices if d != "lat_pixel2"]


def test_twenty_samples_rank_the_rest_well(cells, prior):
    from scipy.stats import spearmanr

    table, rows, archs = cells
    y = table.column(TARGET)[rows]
    few = FewShotLatencyPredictor(prior).fit(archs[:20], y[:20])
    rho = spearmanr(few.predict(archs[20:]), y[20:])[0]
    alone = FewShotLatencyPredictor().fit(archs[:20], y[:20])
    rho_alone = spearmanr(alone.predict(archs[20:]), y[20:])[0]
    assert rho > 0.95, rho
    assert rho >= rho_alone - 0.01, (rho, rho_alone)
    assert few.alpha_ in ALPHA_GRID and few.weight_ in WEIGHT_GRID  # chosen by leave-one-out


def test_uses_nothing_of_the_target_beyond_its_samples(cells, prior):
    table, rows, archs = cells
    y = table.column(TARGET)[rows]
    a = FewShotLatencyPredictor(prior).fit(archs[:20], y[:20]).predict(archs[20:60])
    # the target's other latencies scrambled: the prior and the fit never saw them, so nothing changes
    scrambled = y.copy()
    scrambled[20:] = np.random.default_rng(0).permutation(scrambled[20:])
    b = FewShotLatencyPredictor(prior).fit(archs[:20], scrambled[:20]).predict(archs[20:60])
    np.testing.assert_array_equal(a, b)


def test_round_trip_with_the_prior(cells, prior, tmp_path):
    table, rows, archs = cells
    y = table.column(TARGET)[rows]
    few = FewShotLatencyPredictor(prior).fit(archs[:10], y[:10])
    path = tmp_path / "few.json"
    few.save(path)
    doc = json.loads(path.read_text())
    assert doc["state"]["prior"]["devices"] == prior.devices
    back = load_predictor(path, default_toolkit())
    np.testing.assert_allclose(back.predict(archs[10:30]), few.predict(archs[10:30]), rtol=1e-9)
    assert LatencyPrior.from_json(prior.to_json()).devices == prior.devices


def test_warns_outside_its_domain_as_the_other_predictors_do(cells, prior, tmp_path):
    """The samples' kernel features are its domain (`Predictor.domain_warnings`, the feature predictors' code):
    a kernel no sample had, or a count far past the samples', is named; a cell like the samples is not."""
    table, rows, archs = cells
    y = table.column(TARGET)[rows]
    for few in (FewShotLatencyPredictor().fit(archs[:8], y[:8]), FewShotLatencyPredictor(prior).fit(archs[:8], y[:8])):
        inside, cnn = few.domain_warnings([archs[0], get_seed("simple-cnn")])
        assert inside == [] and cnn and all("never in training" in r for r in cnn), cnn
        few.save(tmp_path / "few.json")
        assert load_predictor(tmp_path / "few.json", default_toolkit()).domain_warnings(
            [archs[0], get_seed("simple-cnn")]
        ) == [[], cnn]


def test_bad_input(cells):
    table, rows, archs = cells
    with pytest.raises(DataError, match="latencies for"):
        LatencyPrior.fit(archs[:50], {"lat_a": np.ones(49)})
    with pytest.raises(DataError, match="positive"):
        LatencyPrior.fit(archs[:50], {"lat_a": -np.ones(50)})
    with pytest.raises(DataError, match="at least 10"):
        LatencyPrior.fit(archs[:5], {"lat_a": np.ones(5)})
    with pytest.raises(DataError, match="at least 3"):
        FewShotLatencyPredictor().fit(archs[:2], [1.0, 2.0])
    with pytest.raises(DataError, match="positive"):
        FewShotLatencyPredictor().fit(archs[:4], [1.0, 2.0, 0.0, 3.0])
    doc = LatencyPrior.fit(archs[:20], {"lat_a": np.arange(1, 21.0), "lat_b": np.arange(2, 22.0)}).to_json()
    doc["features_version"] = 0
    with pytest.raises(DataError, match="features version"):
        LatencyPrior.from_json(doc)


def test_bench_command_on_a_small_table(tmp_path, run_cli, cells):
    table, rows, _archs = cells
    columns = ["lat_pixel2", "lat_pixel3", "lat_gold_6226", "lat_raspi4"]
    lines = [",".join(["arch_index", "arch_str", *columns])]
    for r in rows[:120]:
        lines.append(
            ",".join(
                [str(int(table.arch_index[r])), table.arch_strs[r], *(repr(float(table.column(c)[r])) for c in columns)]
            )
        )
    path = tmp_path / "mini.csv"
    path.write_text("\n".join(lines) + "\n")
    r = run_cli(
        "bench",
        "fewshot-latency",
        "--table",
        path,
        "--device",
        "pixel2,gold_6226",
        "--samples",
        "10",
        "--seeds",
        "2",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = r.json()
    assert set(out["spearman"]) == {"lat_pixel2", "lat_gold_6226"}
    assert out["prior"]["lat_pixel2"]["prior_devices"] == ["lat_pixel3", "lat_gold_6226", "lat_raspi4"]
    assert 0.5 < out["mean_spearman"] <= 1.0 and out["cells_scored"] == 110
    assert "baseline_onehot_ridge" in out and "no_prior" in out and out["params"]["samples"] == 10 and "machine" in out
