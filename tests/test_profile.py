"""Device profiles: the `na-toolkit profile` command in real subprocesses (small --samples, --quick
minimums), Ctrl-C and --resume, atomic checkpoints, and the errors of bad profiles."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, interruptible
from na_toolkit.errors import ProfileError
from na_toolkit.timemodels.profile import (
    PROFILE_SCHEMA_VERSION,
    DeviceProfile,
    ProfileDeviceWarning,
    check_device,
)

REPO = Path(__file__).resolve().parents[1]
SMALL = ("--seed-net", "simple-cnn", "--quick", "--no-progress", "--max-moves", "3")


@pytest.fixture(scope="module")
def small_profile(tmp_path_factory, run_cli) -> Path:
    out = tmp_path_factory.mktemp("profile") / "small.json"
    res = run_cli("profile", "--out", out, "--samples", "5", "--adaptive-rounds", "1", *SMALL)
    assert res.returncode == 0, res.stderr
    assert "complete" in res.stdout
    return out


def test_profile_command_writes_a_complete_schema_versioned_profile(small_profile):
    doc = json.loads(small_profile.read_text())
    assert doc["schema"] == "na_toolkit.device_profile" and doc["schema_version"] == PROFILE_SCHEMA_VERSION
    assert doc["complete"] is True and doc["stopped"] == ""
    prof = DeviceProfile.load(small_profile)
    assert len(prof.networks) >= 5 and len(prof.kernels) >= 5
    # device and software description
    from na_toolkit.machine import cpu_model

    assert prof.device["cpu_model"] == cpu_model() == prof.device_name
    assert prof.device["cores"] == os.cpu_count()
    assert {"onnxruntime", "numpy"} <= set(prof.software["libraries"])
    assert prof.runtime["name"] == "onnxruntime" and prof.runtime["intra_op_threads"] == 1
    assert prof.nvml["status"]  # "ok" or "nvml unavailable: ..."
    # raw measurements: every network is an architecture with its measurement; kernels are configurations
    for rec in prof.networks:
        assert rec.measurement["min_ms"] <= rec.measurement["median_ms"] <= rec.measurement["p90_ms"]
        assert rec.seed == "simple-cnn"
    phases = {k.phase for k in prof.kernels} | {n.phase for n in prof.networks}
    assert "initial" in phases
    assert len({k.key for k in prof.kernels}) == len(prof.kernels)  # each configuration measured once


def running_profile(cmd: list[str], out: Path) -> subprocess.Popen:
    """`cmd` (a `na-toolkit profile` writing `out`) started and, once a checkpoint holds a couple of networks,
    still running: for the caller to stop with a signal (it is killed here if it cannot get that far)."""
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible
    )

    def checkpointed() -> int:  # a checkpoint is written atomically: one that does not load is a failure
        return len(DeviceProfile.load(out).networks) if out.exists() else 0

    try:
        deadline = time.monotonic() + 120
        while checkpointed() < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the profile finished before it could be stopped"
        assert checkpointed() >= 2, "no checkpoint holding two networks within 120 s"
    except BaseException:
        proc.kill()
        raise
    return proc


def test_sigint_keeps_a_valid_partial_profile_and_resume_completes_it(tmp_path):
    out = tmp_path / "partial.json"
    cmd = [
        sys.executable,
        "-m",
        "na_toolkit.cli.main",
        "profile",
        "--out",
        str(out),
        "--samples",
        "40",
        "--adaptive-rounds",
        "0",
        *SMALL,
    ]
    proc = running_profile(cmd, out)
    try:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    partial = DeviceProfile.load(out)
    assert not partial.complete and partial.stopped == "interrupted"
    assert "continue with --resume" in stdout
    measured = {n.hash for n in partial.networks}
    assert 2 <= len(measured) < 40
    assert not list(tmp_path.glob(".*.tmp-*"))  # no temp file left behind

    res = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    done = DeviceProfile.load(out)
    assert done.complete
    hashes = [n.hash for n in done.networks]
    assert len(hashes) == len(set(hashes)) == 41  # the seed and 40 variants: nothing measured twice, nothing lost
    assert measured <= set(hashes)
    assert done.elapsed_s >= partial.elapsed_s


def test_sigterm_keeps_a_resumable_profile_and_exits_143_as_documented(tmp_path):
    """The audit: SIGTERM was taken for a Ctrl-C (exit 130, stopped "interrupted", no line); docs/cli.md says
    SIGTERM prints `na-toolkit: terminated` and exits 143. The measurements are saved and resumable."""
    out = tmp_path / "partial.json"
    cmd = [sys.executable, "-m", "na_toolkit", "profile", "--out", str(out), "--samples", "40"]
    proc = running_profile([*cmd, "--adaptive-rounds", "0", *SMALL], out)
    try:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert stderr.splitlines()[-1] == "na-toolkit: terminated", stderr
    partial = DeviceProfile.load(out)
    assert not partial.complete and partial.stopped == "terminated"
    assert "partial (terminated; continue with --resume)" in stdout
    res = subprocess.run(
        [*cmd[:-2], "--resume", "--time-budget-s", "0"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stderr and len(DeviceProfile.load(out).networks) == len(partial.networks)


def test_every_seed_is_measured_besides_the_samples_and_an_older_plan_keeps_its_count(tmp_path, run_cli):
    """The audit: --samples counted the seeds, so `--seed-net simple-cnn --seed-net resnet-cifar --samples 1`
    never measured resnet-cifar though plan.seeds listed it. Every seed is measured, then --samples variants;
    a plan made before (no `seeds_beside_samples`) keeps its count, so it resumes to the networks it planned."""
    from conftest import get_seed
    from na_toolkit.timemodels.profile_plan import SEEDS_BESIDE_SAMPLES, initial_count

    out = tmp_path / "p.json"
    seeds = ("--seed-net", "simple-cnn", "--seed-net", "resnet-cifar")
    res = run_cli("profile", "--out", out, *seeds, "--samples", "1", "--adaptive-rounds", "0", *SMALL[2:])
    assert res.returncode == 0, res.stderr
    prof = DeviceProfile.load(out)
    assert prof.complete and prof.plan[SEEDS_BESIDE_SAMPLES] is True
    assert [n.moves for n in prof.networks][:2] == [[], []] and len(prof.networks) == 3
    assert {get_seed("simple-cnn").hash, get_seed("resnet-cifar").hash} <= {n.hash for n in prof.networks}
    two = {"a": get_seed("simple-cnn"), "b": get_seed("resnet-cifar")}
    assert initial_count({"samples": 80, SEEDS_BESIDE_SAMPLES: True}, 80, two) == 82
    assert initial_count({"samples": 80}, 80, two) == 80  # profiles/example-cpu.json's plan, as it was measured


def test_time_budget_stops_with_a_resumable_profile(tmp_path, run_cli):
    out = tmp_path / "budget.json"
    res = run_cli("profile", "--out", out, "--samples", "50", "--time-budget-s", "0.5", *SMALL)
    assert res.returncode == 0, res.stderr
    prof = DeviceProfile.load(out)
    assert not prof.complete and prof.stopped.startswith("time budget")


def test_existing_output_needs_resume(small_profile, run_cli):
    line = run_cli("profile", "--out", small_profile, *SMALL).error_line()
    assert "exists" in line and "--resume" in line


def test_an_existing_file_that_is_no_profile_is_named_not_offered_a_resume(tmp_path, run_cli):
    # before: "'edge-npu.toml' exists; pass --resume to continue it", and the resume said the file was damaged
    model = tmp_path / "edge-npu.toml"
    model.write_text((REPO_ROOT / "hwmodels" / "x86-cpu.toml").read_text())
    line = run_cli("profile", "--out", model, *SMALL).error_line()
    assert "is an existing hardware model, not a device profile; choose another --out" in line
    line = run_cli("profile", "--out", model, "--resume").error_line()
    assert "is a hardware model, not a device profile" in line and "damaged" not in line
    assert model.read_text() == (REPO_ROOT / "hwmodels" / "x86-cpu.toml").read_text()


def test_a_seed_network_over_the_plans_flops_cap_is_warned_about_and_a_profile_not_ready_says_so(tmp_path, run_cli):
    """resnet50 (7.75 GFLOPs) over the 2 GFLOPs cap is measured but none of its variants: a warning says so.
    The profile stopped before measuring anything is no profile to use yet, and says so instead of `use it:`."""
    out = tmp_path / "p.json"
    res = run_cli("profile", "--out", out, "--seed-net", "resnet50", "--seed-net", "simple-cnn", "--time-budget-s", "0")
    assert res.returncode == 0, res.stderr
    assert "warning: seed network resnet50 (7.75 GFLOPs) is over the plan's max_flops of 2 GFLOPs" in res.stderr
    assert "simple-cnn (" not in res.stderr
    assert "not usable yet: 0 kernels measured" in res.stdout and "use it:" not in res.stdout
    shown = run_cli("hw", "show", out)
    assert "records keep none yet" in shown.stdout and "not usable yet" in shown.stdout, shown.stdout


def test_a_complete_profile_of_too_few_networks_is_not_sent_to_resume(tmp_path, run_cli):
    """The audit: a complete profile of < 5 networks was told "continue it with --resume", which measures
    nothing more on a complete profile; it is told to make a new profile with more --samples."""
    from na_toolkit.cli.profile import readiness

    small = tmp_path / "small.json"
    for res in (
        run_cli("profile", "--out", small, "--samples", "2", "--adaptive-rounds", "0", *SMALL),
        run_cli("profile", "--out", small, "--resume", "--no-progress"),  # complete: nothing more measured
        run_cli("hw", "show", small),
    ):
        assert res.returncode == 0, res.stderr
        assert re.search(r"only \d networks measured \(fewer than 5\)", res.stdout), res.stdout
        assert "use it: time_model" in res.stdout and "continue it with --resume" not in res.stdout
        assert "new profile with more --samples" in res.stdout
    assert DeviceProfile.load(small).complete
    # a partial one is sent to --resume; a few-shot one is usable without kernels
    assert "continue it with --resume" in str(readiness(10, 2, complete=False)[1])
    assert readiness(0, 6, complete=True, fewshot=True) == (True, None)
    usable, note = readiness(0, 2, complete=True, fewshot=True)
    assert not usable and "larger --fewshot" in str(note) and "--resume" not in str(note)


@pytest.mark.parametrize("seconds", ["-5", "nan", "inf"])
def test_a_time_budget_that_is_no_number_of_seconds_is_refused_before_measuring(tmp_path, run_cli, seconds):
    out = tmp_path / "p.json"
    res = run_cli("profile", "--device", "cpu", "--out", out, "--time-budget-s", seconds)
    assert res.returncode == 2 and "--time-budget-s must be a number of seconds >= 0" in res.error_line()
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "bounds"),
    [
        ("--rng-seed", "-1", "[0, 9223372036854775807]"),
        ("--samples", "99999999999999999999", "[0, 1000000]"),
        ("--max-moves", "5000", "[1, 1000]"),
        ("--adaptive-rounds", "99999999999999999999", "[0, 1000]"),
        ("--batch-size", "100000", "[1, 65536]"),
        ("--threads", "2000", "[1, 1024]"),
        ("--pool", "99999999999999999999", "[1, 1000000]"),
    ],
)
def test_a_count_past_what_a_profile_keeps_is_refused_naming_the_option_before_measuring(
    tmp_path, run_cli, option, value, bounds
):
    # the profile refused its own plan once the kernels were set up: a pydantic traceback, exit 1
    out = tmp_path / "p.json"
    res = run_cli("profile", "--device", "cpu", "--out", out, option, value, "--time-budget-s", "0")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.error_line() == f"na-toolkit: error: {option} must be a whole number in {bounds}, got {value}"
    assert not out.exists()


def test_corrupt_and_wrong_version_profiles_are_profile_errors(tmp_path, small_profile, run_cli):
    bad = tmp_path / "corrupt.json"
    bad.write_text('{"schema": "na_toolkit.device_profile", "kern')
    damaged = r"profile '.*corrupt.json' is not valid JSON: .*; the file is damaged: measure it again"
    with pytest.raises(ProfileError, match=damaged):
        DeviceProfile.load(bad)
    assert re.search(damaged, run_cli("profile", "--out", bad, "--resume", *SMALL).error_line())

    doc = json.loads(small_profile.read_text())
    doc["schema_version"] = PROFILE_SCHEMA_VERSION + 1
    old = tmp_path / "future.json"
    old.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match="schema_version"):
        DeviceProfile.load(old)

    doc = json.loads(small_profile.read_text())
    doc["networks"][0]["measurement"] = {"median_ms": -1}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match=r"networks\[0\].*positive 'median_ms'"):
        DeviceProfile.load(broken)

    doc = json.loads(small_profile.read_text())
    doc["kernels"][0]["latency"] = 1.0  # a key the format does not have: named by its path
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match=r"typo\.json.*kernels\[0\]\.latency: unknown key"):
        DeviceProfile.load(typo)

    for bad in ([{"hash": "x", "arch": {}}], [], {"simple-cnn": {}}):
        doc = json.loads(small_profile.read_text())
        doc["plan"]["seed_networks"] = bad
        seeds = tmp_path / "seeds.json"
        seeds.write_text(json.dumps(doc))
        with pytest.raises(ProfileError, match=r"seeds\.json.*plan\.seed_networks must be a list of \{hash, arch\}"):
            DeviceProfile.load(seeds)

    not_a_profile = tmp_path / "arch.json"
    not_a_profile.write_text(json.dumps({"nodes": []}))
    with pytest.raises(ProfileError, match="not a na_toolkit device profile"):
        DeviceProfile.load(not_a_profile)


def test_profile_of_another_device_warns_with_both_names_and_is_not_resumed(tmp_path, small_profile, run_cli):
    doc = json.loads(small_profile.read_text())
    doc["device"]["name"] = "Imaginary CPU 9000"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    prof = DeviceProfile.load(other)
    with pytest.warns(ProfileDeviceWarning) as caught:
        msg = check_device(prof)
    from na_toolkit.machine import cpu_model

    assert "Imaginary CPU 9000" in msg and cpu_model() in msg
    assert str(caught[0].message).startswith(msg)
    line = run_cli("profile", "--out", other, "--resume", *SMALL).error_line()
    assert "Imaginary CPU 9000" in line and cpu_model() in line


@pytest.mark.parametrize(
    "path, value",
    [
        (("runtime", "versions", "onnxruntime"), "1.20.0"),
        (("software", "libraries", "onnxruntime"), "1.20.0"),
        (("device", "cores"), 64),
        (("runtime", "inter_op_threads"), 4),
    ],
)
def test_a_resume_on_another_runtime_version_or_core_count_is_refused(tmp_path, small_profile, run_cli, path, value):
    """The audit: a resume appended new measurements under the old labels when the runtime version or the
    core count differed (only the device name was checked): one profile would mix two setups' latencies."""
    doc = json.loads(small_profile.read_text())
    doc["complete"], doc["stopped"] = False, "interrupted"
    *parents, key = path
    record = doc
    for part in parents:
        record = record[part]
    here, record[key] = record[key], value
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    before = other.read_bytes()
    line = run_cli("profile", "--out", other, "--resume", "--no-progress").error_line()
    assert f"its {'.'.join(path)} is {value!r}, this machine's is {here!r}" in line, line
    assert "start a new profile with another --out" in line
    assert other.read_bytes() == before


@pytest.mark.parametrize(
    "path, value, allowed",
    [
        (("runtime", "name"), "tensorflow", "allowed: onnxruntime, torch"),
        (("runtime", "intra_op_threads"), "two", "allowed: a whole number >= 1"),
        (("runtime", "statistic"), "mean", "allowed: median, p10, min"),
        (("device", "kind"), "cuda", "allowed: 'cpu' (device.device is 'cpu')"),
        (("device", "device"), "tpu:0", "allowed: cpu, cuda or cuda:N"),
    ],
)
def test_a_hand_edited_runtime_or_device_field_is_named_with_the_allowed_values(
    tmp_path, small_profile, path, value, allowed
):
    """The audit: these edits were taken silently, or blamed on another field (runtime.statistic = "mean" as
    "kernels[0].measurement needs a positive 'mean_ms'"), or named without the file (device.device)."""
    doc = json.loads(small_profile.read_text())
    doc[path[0]][path[1]] = value
    bad = tmp_path / "edited.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ProfileError) as err:
        DeviceProfile.load(bad)
    msg = str(err.value)
    assert str(bad) in msg and f"{'.'.join(path)} is {value!r}; {allowed}" in msg, msg


def test_bad_arguments_are_one_line_errors(tmp_path, run_cli):
    assert (
        "unknown seed network"
        in run_cli("profile", "--out", tmp_path / "x.json", "--seed-net", "nope", "--quick").error_line()
    )
    assert "unknown local device" in run_cli("profile", "--out", tmp_path / "y.json", "--device", "tpu:0").error_line()
    assert "does not exist" in run_cli("profile", "--out", tmp_path / "z.json", "--resume").error_line()
    from na_toolkit.timemodels.onnxruntime_tm import available_providers

    if "CUDAExecutionProvider" not in available_providers():  # a GPU profile never falls back to the CPU
        line = run_cli("profile", "--out", tmp_path / "g.json", "--device", "cuda:0", "--quick").error_line()
        assert "'cuda' is not available" in line and "CPUExecutionProvider" in line


def test_profile_json_reports_what_the_profile_holds(small_profile, run_cli):
    res = run_cli("profile", "--out", small_profile, "--resume", "--json", *SMALL)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    prof = DeviceProfile.load(small_profile)
    assert doc["complete"] is True and doc["path"] == str(small_profile)
    assert (doc["kernels"], doc["networks"]) == (len(prof.kernels), len(prof.networks))


# ---- resume: the seeds and arguments the profile started with, whatever the folder ---------------------------
def _seed_folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two folders, each with a `seed.json` of its own: simple-cnn in `a`, resnet-cifar in `b`."""
    from conftest import get_seed

    folders = tmp_path / "a", tmp_path / "b"
    for folder, name in zip(folders, ("simple-cnn", "resnet-cifar")):
        folder.mkdir()
        (folder / "seed.json").write_text(json.dumps(get_seed(name).to_json()))
    return folders


PLAN_ONLY = ("--samples", "0", "--adaptive-rounds", "0", "--quick", "--no-progress")


def test_a_resume_from_another_folder_uses_the_seed_networks_the_profile_started_with(tmp_path, run_cli):
    from conftest import get_seed

    a, b = _seed_folders(tmp_path)
    out = tmp_path / "p.json"
    res = run_cli("profile", "--out", out, "--seed-net", "seed.json", "--time-budget-s", "0", *PLAN_ONLY, cwd=a)
    assert res.returncode == 0, res.stderr
    plan = DeviceProfile.load(out).plan
    assert plan["seeds"] == [str(a / "seed.json")]  # the file's absolute path, and the network itself:
    assert [n["hash"] for n in plan["seed_networks"]] == [get_seed("simple-cnn").hash]
    # b's seed.json is another network: given again it is refused, naming both
    line = run_cli("profile", "--out", out, "--resume", "--seed-net", "seed.json", *PLAN_ONLY, cwd=b).error_line()
    assert f"--seed-net '{b / 'seed.json'}'" in line and str(a / "seed.json") in line
    assert "resume without --seed-net" in line
    # left out, the stored seed is used (no file needed: a's file is gone); --samples 0 measures the seed
    (a / "seed.json").unlink()
    res = run_cli("profile", "--out", out, "--resume", "--no-progress", cwd=b)
    assert res.returncode == 0, res.stderr
    # the output ends with what the latencies are (a --quick profile said so nowhere) and the next steps
    assert res.stdout.splitlines()[1].startswith("latencies: the min of each item's timed runs; measured with --quick")
    use = f'time_model = {{ name = "learned", options = {{ device = "{out.resolve()}" }} }}'
    assert res.stdout.splitlines()[2] == f"see it: na-toolkit hw show {out}; use it: {use}"
    done = DeviceProfile.load(out)
    assert done.complete and [(n.seed, n.hash) for n in done.networks] == [
        (str(a / "seed.json"), get_seed("simple-cnn").hash)
    ]


def test_a_profile_written_before_seed_networks_were_stored_resumes_only_with_its_own_seed(
    small_profile, tmp_path, run_cli
):
    a, b = _seed_folders(tmp_path)
    # small_profile (seed simple-cnn) as a profile of a's seed.json written before plans stored their seed
    # networks (its seed as typed, no plan.seed_networks), interrupted before its last initial network
    doc = json.loads(small_profile.read_text())
    del doc["plan"]["seed_networks"]
    doc["plan"]["seeds"] = ["seed.json"]
    last = max(i for i, n in enumerate(doc["networks"]) if n["phase"] == "initial")
    del doc["networks"][last]
    for rec in doc["networks"]:
        rec["seed"] = "seed.json"
    doc["complete"], doc["stopped"] = False, "interrupted"
    out = tmp_path / "old.json"
    out.write_text(json.dumps(doc))
    # from b: its seed.json is not the network the profile measured as its seed
    line = run_cli("profile", "--out", out, "--resume", "--no-progress", cwd=b).error_line()
    assert "started from seed network 'seed.json'" in line and "resume it from the folder it was started in" in line
    # from a folder without the file: where to resume it
    line = run_cli("profile", "--out", out, "--resume", "--no-progress", cwd=tmp_path).error_line()
    assert "does not exist" in line and "resume it from the folder it was started in" in line
    # from its own folder it resumes as before (one network left), and stores its seed network from then on
    res = run_cli("profile", "--out", out, "--resume", "--no-progress", cwd=a)
    assert res.returncode == 0, res.stderr
    done = DeviceProfile.load(out)
    assert done.complete and len(done.networks) == len(doc["networks"]) + 1
    assert done.plan["seeds"] == ["seed.json"] and len(done.plan["seed_networks"]) == 1
    assert run_cli("profile", "--out", out, "--resume", "--no-progress", cwd=b).returncode == 0


def test_a_stored_seed_network_that_is_not_the_one_its_hash_names_is_refused_on_resume(
    small_profile, tmp_path, run_cli
):
    from conftest import get_seed

    doc = json.loads(small_profile.read_text())
    doc["plan"]["seed_networks"][0]["arch"] = get_seed("resnet-cifar").to_json()  # edited
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    line = run_cli("profile", "--out", edited, "--resume", "--no-progress").error_line()
    assert "its seed network 'simple-cnn' builds to hash" in line and "start a new profile" in line


def test_an_onnx_seed_network_is_read_with_the_onnx_importer(tmp_path, run_cli):
    from conftest import get_seed

    seed = get_seed("simple-cnn")
    (tmp_path / "model.onnx").write_bytes(seed.to_onnx().SerializeToString())
    out = tmp_path / "p.json"
    res = run_cli("profile", "--out", out, "--seed-net", "model.onnx", "--time-budget-s", "0", *PLAN_ONLY, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    plan = DeviceProfile.load(out).plan  # the imported graph is the exported network
    assert plan["seeds"] == [str(tmp_path / "model.onnx")] and plan["seed_networks"][0]["hash"] == seed.hash
    (tmp_path / "notes.txt").write_text("{}")
    line = run_cli("profile", "--out", tmp_path / "q.json", "--seed-net", "notes.txt", cwd=tmp_path).error_line()
    assert "--seed-net: 'notes.txt' is a .txt file, not a network; give an IR .json or an .onnx file" in line


@pytest.mark.parametrize(
    ("argument", "given", "stored"),
    [
        ("--samples", "6", "5"),
        ("--batch-size", "2", "1"),
        ("--max-moves", "4", "3"),
        ("--adaptive-rounds", "0", "1"),
        ("--threads", "2", "1"),
        ("--rng-seed", "1", "0"),
        ("--runtime", "torch", "onnxruntime"),
        ("--device", "cuda:0", "cpu"),
    ],
)
def test_a_resume_refuses_an_argument_typed_again_with_another_value(small_profile, run_cli, argument, given, stored):
    before = small_profile.read_bytes()
    line = run_cli("profile", "--out", small_profile, "--resume", argument, given, "--no-progress").error_line()
    assert (
        f"{argument} {given} conflicts with profile '{small_profile}', which was started with {argument} {stored}"
        in (line)
    )
    assert f"resume without {argument}" in line
    assert small_profile.read_bytes() == before


def test_a_resume_measures_on_the_profiles_device_when_no_device_is_typed(small_profile, tmp_path, run_cli):
    from na_toolkit.timemodels.devices import devices_here

    if devices_here() != ["cpu"]:
        pytest.skip("needs a machine without a GPU (a profile of 'cuda:0 (unknown GPU)' stands for one)")
    doc = json.loads(small_profile.read_text())
    doc["device"] = {"device": "cuda:0", "kind": "cuda", "name": "cuda:0 (unknown GPU)"}  # what this machine says
    gpu = tmp_path / "gpu.json"
    gpu.write_text(json.dumps(doc))
    # it used to take --device's default, cpu, and measure the CPU into a GPU profile
    res = run_cli("profile", "--out", gpu, "--resume", "--no-progress")
    assert res.returncode == 2 and "na-toolkit: error: ONNX Runtime execution provider 'cuda' is not available" in (
        res.stderr
    )


def test_a_resume_takes_what_was_typed_with_the_same_value_and_refuses_what_does_not_apply(
    small_profile, tmp_path, run_cli
):
    before = small_profile.read_bytes()
    same = (
        "--samples",
        "5",
        "--adaptive-rounds",
        "1",
        "--batch-size",
        "1",
        "--device",
        "cpu",
        "--runtime",
        "onnxruntime",
    )
    res = run_cli("profile", "--out", small_profile, "--resume", *same, *SMALL)
    assert res.returncode == 0, res.stderr
    assert small_profile.read_bytes() == before  # complete: nothing measured, nothing written
    # the command shows the builder's messages as it always did (a library's go to logging)
    assert f"na-toolkit profile: resuming {small_profile}: " in res.stderr.splitlines()[0]
    line = run_cli("profile", "--out", small_profile, "--resume", "--pool", "40").error_line()
    assert "--pool does not apply to" in line and "a full profile" in line
    # what was not typed is the stored value, not argparse's default (a torch profile resumes without --runtime)
    doc = json.loads(small_profile.read_text())
    doc["runtime"]["name"] = "torch"
    torch_profile = tmp_path / "torch.json"
    torch_profile.write_text(json.dumps(doc))
    res = run_cli("profile", "--out", torch_profile, "--resume", "--no-progress")
    assert res.returncode == 0 and "with torch" in res.stdout, res.stderr
    # --quick on a profile measured with the full minimums
    doc = json.loads(small_profile.read_text())
    from na_toolkit.timemodels.profile_plan import KERNEL_SETTINGS, NETWORK_SETTINGS

    doc["settings"] = {"kernel": KERNEL_SETTINGS.to_json(), "network": NETWORK_SETTINGS.to_json()}
    full = tmp_path / "full.json"
    full.write_text(json.dumps(doc))
    line = run_cli("profile", "--out", full, "--resume", "--quick").error_line()
    assert "--quick conflicts with" in line and "other measurement minimums" in line


def test_a_profile_builder_in_a_library_reports_through_logging_not_stderr(small_profile, capfd, caplog):
    from conftest import default_toolkit
    from na_toolkit.timemodels.profiler import ProfileBuilder, ProfileOptions

    options = ProfileOptions(out=small_profile, resume=True, progress=False)
    with caplog.at_level(logging.INFO, logger="na_toolkit.timemodels.profiler"):
        assert ProfileBuilder(options, default_toolkit()).run().complete  # complete: nothing left to measure
    assert capfd.readouterr().err == ""
    assert [r.name for r in caplog.records] == ["na_toolkit.timemodels.profiler"]
    assert caplog.records[0].getMessage().startswith(f"resuming {small_profile}: ")
    told: list[str] = []  # or an explicit callback
    ProfileBuilder(options, default_toolkit(), told.append).run()
    assert len(told) == 1 and told[0].startswith("resuming ") and capfd.readouterr().err == ""
