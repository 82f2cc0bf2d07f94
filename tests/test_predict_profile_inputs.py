"""Saved predictors are reproducible (no unseeded model is saved or loaded), training networks that differ
in no feature are one DataError, hardware-model files honour the umask, and SIGTERM saves a partial
profile as Ctrl-C does."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time

import numpy as np
import pytest

from conftest import default_toolkit, layer_types
from na_toolkit.errors import DataError
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.predictors import load_predictor, make_predictor
from na_toolkit.predictors.base import Predictor
from na_toolkit.timemodels.hwmodel import load_hardware_model, read_hardware_model, save_hardware_model
from na_toolkit.timemodels.profile import DeviceProfile
from test_profile import running_profile

TK = default_toolkit()


def cnn(width: int, depth: int) -> object:
    b = ArchitectureBuilder((1, 8, 8), name=f"cnn-{width}-{depth}", layer_types=layer_types())
    x = b.input
    for _ in range(depth):
        x = b.layer("relu", b.layer("conv2d", x, filters=width, kernel=3))
    x = b.layer("flatten", b.layer("global_avg_pool", x))
    b.layer("linear", x, units=10)
    return b.build()


@pytest.fixture(scope="module")
def data():
    archs = [cnn(w, d) for w in (4, 8, 16, 32) for d in (1, 2, 3)]
    return archs, np.array([float(a.params) for a in archs])


# ---- saved predictors are reproducible: no unseeded model is saved, loaded, or left unseeded by predict fit
@pytest.mark.parametrize("name", ["random-forest", "extra-trees", "gp"])
def test_an_unseeded_predictor_is_not_saved(name, data):
    archs, y = data
    model = make_predictor(name, {"random_state": None, **({"n_estimators": 5} if name != "gp" else {})}, TK)
    model.fit(archs, y)
    with pytest.raises(DataError, match=f"predictor '{name}' has random_state none: loading refits it"):
        model.to_json()
    model.set_params(random_state=3)
    model.fit(archs, y)
    again = Predictor.from_json(json.loads(json.dumps(model.to_json())), default_toolkit())
    np.testing.assert_array_equal(again.predict(archs), model.predict(archs))


def test_a_saved_unseeded_predictor_is_refused_on_load(data, tmp_path):
    archs, y = data
    model = make_predictor("random-forest", {"n_estimators": 5}, TK)
    model.fit(archs, y)
    doc = model.to_json()
    doc["params"]["random_state"] = None  # as predict fit wrote it before it seeded the model
    path = tmp_path / "rs.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"saved predictor 'random-forest' was fit unseeded \(random_state null\)"):
        load_predictor(path, default_toolkit())


def test_predict_fit_seeds_random_state_none_with_its_seed(data, tmp_path, run_cli):
    archs, y = data
    lines = [json.dumps({"arch": a.to_json(), "y": float(v)}) for a, v in zip(archs, y)]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    fit = ["predict", "fit", "--data", tmp_path / "d.jsonl", "--target", "y", "--predictor", "random-forest"]
    fit += ["--param", "random_state=null", "--param", "n_estimators=10"]
    res = run_cli(*fit, "--seed", "7", "--out", tmp_path / "rs.json")
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "rs.json").read_text())["params"]["random_state"] == 7
    (tmp_path / "a.json").write_text(json.dumps(archs[5].to_json()))
    outs = {run_cli("predict", tmp_path / "a.json", "--model", tmp_path / "rs.json").stdout for _ in range(3)}
    assert len(outs) == 1 and "y" in outs.pop()


# ---- training networks that differ in no feature: one DataError for the predictors that standardise them --
@pytest.mark.parametrize("name", ["gp", "bayesian-ridge", "kernel-ridge"])
def test_identical_training_networks_are_one_data_error(name, tmp_path, run_cli):
    data = tmp_path / "dup.jsonl"
    data.write_text("".join(json.dumps({"arch": "simple-cnn", "y": y}) + "\n" for y in (0.5, 0.6, 0.7)))
    res = run_cli("predict", "fit", "--data", data, "--target", "y", "--predictor", name, "--out", tmp_path / "x.json")
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "na-toolkit: error: the 3 training networks do not differ in any feature (all identical, as this "
        "predictor sees them); fit on networks that differ"
    )
    assert not (tmp_path / "x.json").exists()


def test_tree_predictors_still_fit_identical_networks(tmp_path, run_cli):
    data = tmp_path / "dup.jsonl"
    data.write_text("".join(json.dumps({"arch": "simple-cnn", "y": y}) + "\n" for y in (0.5, 0.6, 0.7)))
    out = tmp_path / "x.json"
    res = run_cli("predict", "fit", "--data", data, "--target", "y", "--predictor", "random-forest", "--out", out)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("fit random-forest on 3 samples of y in ") and res.stdout.endswith(f" -> {out}\n")
    # the saved forest stands for the three labels of the one network: a figure between them
    (predicted,) = load_predictor(out, default_toolkit()).predict([default_toolkit().seed("simple-cnn")])
    assert 0.5 <= predicted <= 0.7


# ---- hardware-model files: written with the umask's mode, as every other output --------------------------
def test_saved_hardware_model_honours_the_umask(tmp_path):
    model = load_hardware_model("h100-sxm", default_toolkit().hardware)
    old = os.umask(0o022)
    try:
        path = save_hardware_model(model, tmp_path / "mine.toml")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert read_hardware_model(path).to_dict()["name"] == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.toml"]  # no temporary file left


# ---- SIGTERM during `profile`: saved and marked interrupted, like Ctrl-C ----------------------------------
def test_sigterm_saves_the_partial_profile_marked_terminated(tmp_path):
    out = tmp_path / "partial.json"
    cmd = [sys.executable, "-m", "na_toolkit.cli.main", "profile", "--out", str(out), "--samples", "40"]
    cmd += ["--adaptive-rounds", "0", "--seed-net", "simple-cnn", "--quick", "--no-progress", "--max-moves", "3"]
    cmd += ["--json"]
    proc = running_profile(cmd, out)
    try:
        seen = len(DeviceProfile.load(out).networks)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = DeviceProfile.load(out)
    assert not partial.complete and partial.stopped == "terminated", stderr  # SIGTERM: exit 143, docs/cli.md
    assert proc.returncode == 143 and stderr.rstrip().endswith("na-toolkit: terminated")
    assert seen <= len(partial.networks) < 40  # the measurements up to the signal are kept
    assert "terminated: finishing the current measurement" in stderr and "SIGTERM again" in stderr
    assert '"terminated"' in stdout  # --json still prints the summary


def test_profiler_restores_the_previous_signal_handlers():
    from na_toolkit.timemodels.profiler import ProfileBuilder

    def mine(signum, frame):  # pragma: no cover - never called
        pass

    old_int, old_term = signal.signal(signal.SIGINT, mine), signal.signal(signal.SIGTERM, mine)
    try:
        prof = ProfileBuilder.__new__(ProfileBuilder)
        prof._bar = None
        prof._stop_reason = ""
        prof.log = lambda msg: None
        with prof._measuring():
            assert signal.getsignal(signal.SIGTERM) == prof._on_sigint
            assert signal.getsignal(signal.SIGINT) == prof._on_sigint
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            assert prof._stop_reason == "terminated"
            with pytest.raises(KeyboardInterrupt):  # a second one stops now
                prof._on_sigint(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
