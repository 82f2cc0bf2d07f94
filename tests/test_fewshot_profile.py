"""Few-shot device profiles (`na-toolkit profile --fewshot N --prior ...`): real measurements on this CPU
(tiny networks, --quick minimums), the shipped profiles of other devices as priors, the CLI in real
subprocesses; the written profile in the learned time model and in a search; resume; bad priors."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import default_toolkit
from na_toolkit.errors import ProfileError
from na_toolkit.timemodels.kernels import kernels_of
from na_toolkit.timemodels.learned import LearnedTimeModel
from na_toolkit.timemodels.profile import DeviceProfile
from na_toolkit.timemodels.profile_fewshot import (
    FewShotLatencyModel,
    choose_informative,
    load_priors,
    prior_model,
)
from na_toolkit.timemodels.sampling import all_move_types, random_variants

REPO = Path(__file__).resolve().parents[1]
CPU_PRIOR = REPO / "profiles" / "example-cpu.json"  # an Intel Xeon, ONNX Runtime
GPU_PRIOR = REPO / "profiles" / "h200-torch-b1.json"  # an H200, torch
SMALL = ("--seed-net", "simple-cnn", "--max-moves", "3", "--pool", "30", "--quick", "--no-progress")
N = 6


@pytest.fixture(scope="module")
def priors(tmp_path_factory) -> list[Path]:
    """The shipped profiles' first measurements (real ones, fewer: each CLI run fits the priors' models)."""
    folder = tmp_path_factory.mktemp("priors")
    out = []
    for path, name in ((CPU_PRIOR, "xeon"), (GPU_PRIOR, "h200")):
        doc = json.loads(path.read_text())
        doc["kernels"], doc["networks"] = doc["kernels"][:150], doc["networks"][:30]
        out.append(_write(folder / f"{name}.json", doc))
    return out


def fewshot_args(out: Path, priors: list[Path], *extra: str) -> tuple[str, ...]:
    return (
        "profile",
        "--fewshot",
        str(N),
        *(a for p in priors for a in ("--prior", str(p))),
        "--out",
        str(out),
        *SMALL,
        *extra,
    )


@pytest.fixture(scope="module")
def fewshot_profile(tmp_path_factory, run_cli, priors) -> Path:
    out = tmp_path_factory.mktemp("fewshot") / "new.json"
    res = run_cli(*fewshot_args(out, priors), "--json")
    assert res.returncode == 0, res.stderr
    doc = res.json()
    assert doc["complete"] is True and doc["networks"] == N and doc["kernels"] == 0
    # the form its learned model fits, and the leave-one-out errors that chose it
    model = doc["fewshot"]["model"]
    assert model["form"] in model["loo_rms_log"] and set(model["loo_rms_log"]) >= {"ridge"}
    assert model["loo_rms_log"][model["form"]] == min(model["loo_rms_log"].values())
    return out


def test_hw_show_names_the_form_of_a_fewshot_model(fewshot_profile, run_cli):
    text = run_cli("hw", "show", str(fewshot_profile))
    assert text.returncode == 0, text.stderr
    line = next(ln for ln in text.stdout.splitlines() if ln.startswith("few-shot model"))
    assert "chosen by leave-one-out RMS log error: " in line and "ridge " in line
    doc = run_cli("hw", "show", str(fewshot_profile), "--json").json()
    assert doc["fewshot_model"]["form"] in doc["fewshot_model"]["loo_rms_log"]
    full = run_cli("hw", "show", "example-cpu", "--json").json()
    assert "fewshot_model" not in full  # a full profile fits no few-shot model


def test_a_complete_fewshot_profile_is_said_to_be_usable(fewshot_profile, run_cli):
    """The audit: `profile` called every few-shot profile "not usable yet: 0 kernels measured ...; continue it
    with --resume" (a few-shot profile has no kernels by design), complete or not."""
    res = run_cli("profile", "--out", str(fewshot_profile), "--resume", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "use it: time_model = " in res.stdout and "not usable" not in res.stdout, res.stdout
    assert "--resume" not in res.stdout
    shown = run_cli("hw", "show", str(fewshot_profile))
    assert "use it: time_model = " in shown.stdout and "not usable" not in shown.stdout, shown.stdout


def learned(path: Path) -> LearnedTimeModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # priors of other devices
        return LearnedTimeModel.from_toolkit(default_toolkit(), device=str(path))


@pytest.mark.slow  # CLI subprocesses that fit the priors' models
def test_fewshot_profile_says_what_it_is_and_loads_in_the_learned_time_model(fewshot_profile, priors):
    doc = json.loads(fewshot_profile.read_text())
    section = doc["fewshot"]
    assert section["n"] == N and section["pool"] == 30 and "k-center" in section["selection"]
    # each chosen network's share of the pool (the candidates nearest to it): they add up to the pool
    assert len(section["pool_share"]) == N and sum(section["pool_share"]) == 30 and min(section["pool_share"]) >= 1
    # the priors by content hash: exactly the files given, embedded whole
    hashes = [p["content_hash"] for p in section["priors"]]
    assert hashes == [DeviceProfile.load(p).content_hash() for p in priors]
    assert [p["device"] for p in section["priors"]] == ["Intel(R) Xeon(R) Processor @ 2.50GHz", "NVIDIA H200"]
    prof = DeviceProfile.load(fewshot_profile)
    assert [n.hash for n in prof.networks] == section["chosen"]
    assert {n.phase for n in prof.networks} == {"fewshot"} and prof.kernels == []
    assert prof.plan["fewshot"] == N and prof.statistic == "min"
    # the learned time model fits the few-shot model and predicts any network
    model = learned(fewshot_profile)
    assert isinstance(model.model, FewShotLatencyModel) and model.model.prior_names == [
        "example-cpu",
        "gpu-profile-h200-sxm",
    ]
    archs = prof.architectures(default_toolkit().layer_types)
    measured = np.array([n.latency_ms("min") for n in prof.networks])
    predicted = model.predict_ms(archs)
    assert np.all(np.isfinite(predicted)) and np.all(predicted > 0)
    # a ridge through 6 noisy tiny-network measurements: on them it is close (factor 1.5 at the median)
    assert float(np.median(np.abs(np.log(predicted / measured)))) < math.log(1.5)
    other = default_toolkit().seed("resnet-cifar")  # a network family none of the measured ones is from
    est = model.estimate(other)
    assert est.latency_ms > 0 and est.time_model == "learned" and est.device == "new"


@pytest.mark.slow
def test_fewshot_profile_drives_a_search(fewshot_profile, tmp_path, run_cli):
    pytest.importorskip("na_toolkit_nb201", reason="the table evaluator keeps the search free of training")
    (tmp_path / "search.toml").write_text(
        f"""
name = "fewshot"
seed_network = "nb201"
dataset = "c10"
evaluations = 6
output = "runs"

[search]
per_round = 3
moves = ["set_edge_op"]

[strategy]
name = "random"

[evaluator]
name = "nb201-table"

[predictors]
accuracy = {{ name = "bayesian-ridge" }}

[devices.cpu]
device = "cpu"
time_model = {{ name = "learned", options = {{ device = "{fewshot_profile}" }} }}
budgets = {{ latency_ms = 1.0 }}
"""
    )
    res = run_cli("search", "search.toml", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    text = json.dumps(res.json())
    assert "latency_ms@cpu" in text


def test_the_chosen_networks_span_what_the_priors_predict(priors):
    tk = default_toolkit()
    seeds = {s: tk.seed(s) for s in ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")}
    pool = random_variants(seeds, 90, np.random.default_rng(3), 4, move_types=all_move_types(tk))
    prior = load_priors([str(priors[0])], tk.layer_types, 1, tk.hardware)[0]
    F = FewShotLatencyModel([prior_model(prior, tk.layer_types)]).features([kernels_of(v.arch) for v in pool])
    chosen = choose_informative(F, 12)
    assert len(set(chosen)) == 12
    predicted = F[:, 0]  # the prior's log latency
    span = np.ptp(predicted[chosen]) / np.ptp(predicted)
    assert span > 0.9, span  # the extremes are in: k-center reaches the ends of the range
    # and three of the twelve cover both ends' quarters at least
    lo, hi = np.quantile(predicted, [0.25, 0.75])
    assert (predicted[chosen] <= lo).sum() >= 3 and (predicted[chosen] >= hi).sum() >= 3


@pytest.mark.slow
def test_resume_keeps_what_was_measured_and_a_complete_profile_as_it_was(tmp_path, run_cli, priors):
    out = tmp_path / "partial.json"
    res = run_cli(*fewshot_args(out, priors[:1], "--time-budget-s", "0"))
    assert res.returncode == 0, res.stderr
    part = DeviceProfile.load(out)
    assert not part.complete and "time budget" in part.stopped
    assert part.fewshot is not None and len(part.fewshot.chosen) == N and part.networks == []
    assert (
        run_cli(*fewshot_args(out, priors[:1]))
        .error_line()
        .endswith("pass --resume to continue it or choose another --out")
    )
    # a resume needs no --prior (the priors are in the file) and measures the chosen networks
    res = run_cli("profile", "--out", str(out), "--resume", "--no-progress", "--json")
    assert res.returncode == 0, res.stderr
    done = DeviceProfile.load(out)
    assert done.complete and [n.hash for n in done.networks] == part.fewshot.chosen
    before = out.read_bytes()
    res = run_cli("profile", "--out", str(out), "--resume", "--no-progress")
    assert res.returncode == 0 and out.read_bytes() == before  # nothing left: the file is left as it was
    # other priors than the stored ones are refused on resume
    err = run_cli("profile", "--out", str(out), "--resume", "--prior", priors[1]).error_line()
    assert "--prior differs from the priors" in err
    # so are a typed --pool or --fewshot other than the stored, and the arguments of a full profile
    err = run_cli("profile", "--out", str(out), "--resume", "--pool", "40").error_line()
    assert "--pool 40 conflicts with" in err and "started with --pool 30" in err
    err = run_cli("profile", "--out", str(out), "--resume", "--fewshot", str(N + 1)).error_line()
    assert f"--fewshot {N + 1} conflicts with" in err and f"started with --fewshot {N}" in err
    err = run_cli("profile", "--out", str(out), "--resume", "--samples", "9").error_line()
    assert "--samples does not apply to" in err and "a few-shot profile" in err


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.slow  # CLI subprocesses that fit the priors' models
def test_bad_priors_are_one_line_errors(tmp_path, run_cli, priors):
    out = tmp_path / "new.json"
    base = json.loads(priors[0].read_text())
    cases = {
        "another schema": (
            _write(tmp_path / "other.json", {"schema": "na_toolkit.run", "x": 1}),
            "not a na_toolkit device profile",
        ),
        "empty": (_write(tmp_path / "empty.json", {**base, "kernels": [], "networks": []}), "a prior needs at least"),
    }
    for name, (path, expected) in cases.items():
        err = run_cli("profile", "--fewshot", "5", "--prior", str(path), "--out", str(out), *SMALL).error_line()
        assert expected in err, (name, err)
    assert not out.exists()  # nothing written for a refused prior
    assert "--prior needs --fewshot" in run_cli("profile", "--prior", "example-cpu", "--out", str(out)).error_line()
    # --pool without --fewshot: a full profile measures every network it plans, so it was silently ignored
    assert (
        "--pool chooses a few-shot profile's networks: it needs --fewshot N"
        in run_cli("profile", "--pool", "50", "--out", str(out)).error_line()
    )
    assert not out.exists()


def test_bad_priors_in_the_python_api(tmp_path, priors):
    tk = default_toolkit()
    base = json.loads(priors[0].read_text())
    with pytest.raises(ProfileError, match="batch size 8, this profile measures 1"):
        load_priors([str(_write(tmp_path / "b8.json", {**base, "batch_size": 8}))], tk.layer_types, 1, tk.hardware)
    with pytest.raises(ProfileError, match="needs at least one --prior"):
        load_priors([], tk.layer_types, 1, tk.hardware)
    alien = json.loads(priors[0].read_text())
    alien["networks"][0]["arch"]["nodes"][1]["type"] = "npu_fused_block"  # a layer type of a plugin not installed
    with pytest.raises(ProfileError, match=r"networks\[0\] cannot be built with this toolkit's layer types"):
        load_priors([str(_write(tmp_path / "alien.json", alien))], tk.layer_types, 1, tk.hardware)
    with pytest.raises(ProfileError, match="give each prior once"):
        load_priors([str(priors[0]), str(_write(tmp_path / "copy.json", base))], tk.layer_types, 1, tk.hardware)
    with pytest.raises(ProfileError, match="not a na_toolkit device profile"):
        load_priors([str(_write(tmp_path / "list.json", []))], tk.layer_types, 1, tk.hardware)


@pytest.mark.slow  # CLI subprocesses that fit the priors' models
def test_an_edited_embedded_prior_is_refused_on_load(fewshot_profile, tmp_path):
    doc = json.loads(fewshot_profile.read_text())
    doc["fewshot"]["priors"][0]["profile"]["networks"][0]["measurement"]["min_ms"] *= 2
    with pytest.raises(ProfileError, match=r"fewshot.priors\[0\] \('example-cpu'\) is not the full profile"):
        DeviceProfile.load(_write(tmp_path / "edited.json", doc))


def test_a_fewshot_estimate_far_past_its_measured_networks_is_flagged(fewshot_profile):
    """The few-shot fit is log-linear in its features: past the measured networks' range it extrapolates, and
    the estimate says which feature is out (an ImageNet ResNet-18 against simple-cnn variants)."""
    model = learned(fewshot_profile)
    inside = model.profile.record_arch("networks[0]", model.profile.networks[0].arch, default_toolkit().layer_types)
    assert model.estimate(inside).details["outside_profile_domain"] == []
    est = model.estimate(default_toolkit().seed("resnet18"))
    reasons = est.details["outside_profile_domain"]
    assert any(r.startswith("FLOPs ") and "(measured networks: " in r for r in reasons), reasons
    assert any("outside what profile" in w for w in est.warnings)


@pytest.mark.slow  # a (quick) full profile, a few-shot one, held-out measurements: about 20 s
def test_the_fewshot_benchmark_runs_end_to_end_with_its_ablations(tmp_path, run_cli):
    res = run_cli(
        *("bench", "fewshot-profile", "--quick", "--samples", "10", "--adaptive-rounds", "0", "--heldout", "10"),
        *("--pool", "30", "--fewshot", "5", "--repeats", "1", "--work-dir", str(tmp_path), "--json"),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    doc = res.json()
    doc = doc.get("results", doc)
    for name in ("fewshot", "full", "random_choice", "no_prior", "ridge_only", "groups_only", "previous_method"):
        assert 0.0 <= doc[name]["within_20pct"] <= 1.0 and -1.0 <= doc[name]["spearman"] <= 1.0, name
    few = doc["fewshot"]
    assert few["measured_networks"] == 5 and few["within_20pct"] == doc["within_20pct"]
    # the form the leave-one-out chose, and every candidate's error beside it
    assert few["form"] in few["loo_rms_log"] and set(few["loo_rms_log"]) == {
        "ridge",
        "groups:example-cpu",
        "groups:gpu-profile-h200-sxm",
    }
    assert few["loo_rms_log"][few["form"]] == min(few["loo_rms_log"].values())
    assert doc["heldout"]["networks"] == 10 and (tmp_path / "fewshot.json").exists()


def test_a_profile_written_before_pool_shares_loads_and_fits_unweighted(fewshot_profile, tmp_path):
    doc = json.loads(fewshot_profile.read_text())
    del doc["fewshot"]["pool_share"]
    old = _write(tmp_path / "old.json", doc)
    prof = DeviceProfile.load(old)
    assert prof.fewshot is not None and prof.fewshot.pool_share is None
    assert "pool_share" not in prof.to_json()["fewshot"]  # saved again, it stays as it was
    assert learned(old).model.describe_fit()["loo_weighted_by_pool_share"] is False
    assert learned(fewshot_profile).model.describe_fit()["loo_weighted_by_pool_share"] is True
