"""Run-level safety: a run's result is replaced only by a newer complete one, runs are self-contained, a
device fallback is never silent, failing commands leave their inputs alone; and real searches SIGKILLed at
stages of a round (na_toolkit/bench/faults.py, the `bench faults` scenarios) resume to the reference result
with nothing lost, nothing paid twice, no finished run damaged and no process left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from conftest import SMALL_SEARCH as SMALL
from conftest import get_seed, layer_types
from na_toolkit.bench import faults as F
from na_toolkit.errors import ConfigError
from na_toolkit.ir.onnx_import import from_onnx
from na_toolkit.search import run_search
from na_toolkit.store import SQLiteRunStore
from na_toolkit.store.memory import MemoryRunStore


def _doc(tmp_path: Path, **changes) -> dict:
    doc = json.loads(json.dumps(SMALL))
    doc["output"] = str(tmp_path / "runs")
    doc.update(changes)
    return doc


# ---- a run's result is replaced only by a newer complete one ------------------------------------------
@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_status_change_without_a_result_keeps_the_stored_result(kind, tmp_path):
    store = (
        SQLiteRunStore.create(tmp_path / "store.sqlite", "r", {"a": 1})
        if kind == "sqlite"
        else MemoryRunStore.create("r", {"a": 1})
    )
    with store:
        store.set_status("finished", {"best": "x"})
        store.set_status("running")
        assert store.run().status == "running" and store.run().result == {"best": "x"}
        store.set_status("finished", {"best": "y"})  # a newer complete result replaces it
        assert store.run().result == {"best": "y"}


# ---- self-contained runs ------------------------------------------------------------------------------
def test_a_run_copies_the_files_its_config_names_and_resumes_without_them(tmp_path, toolkit):
    src = tmp_path / "src"
    src.mkdir()
    toolkit.seeds.get("simple-cnn").build(toolkit.layer_types).save(src / "seed.json")
    shutil.copy(Path(__file__).resolve().parents[1] / "hwmodels" / "x86-cpu.toml", src / "x86-cpu.toml")
    doc = _doc(tmp_path, seed_network=str(src / "seed.json"))
    doc["devices"]["cpu"]["time_model"]["options"]["device"] = str(src / "x86-cpu.toml")
    first = run_search(doc, progress=False, outputs=False, toolkit=toolkit)
    run = Path(first.run_dir)
    assert sorted(p.name for p in (run / "inputs").iterdir()) == ["seed.json", "x86-cpu.toml"]
    assert (run / "inputs" / "seed.json").read_bytes() == (src / "seed.json").read_bytes()
    stored = SQLiteRunStore.open(run)
    with stored:
        config = stored.run().config
    assert config["seed_network"] == "inputs/seed.json"
    assert config["devices"]["cpu"]["time_model"]["options"]["device"] == "inputs/x86-cpu.toml"

    shutil.rmtree(src)  # the originals are gone, and the run folder moves
    moved = tmp_path / "moved"
    shutil.move(str(run), moved)
    again = run_search(None, resume=moved, progress=False, outputs=False, toolkit=toolkit)
    assert again.counters.evaluations_replayed == again.counters.evaluations == 1
    assert [e.hash for e in again.evaluated] == [e.hash for e in first.evaluated]
    assert again.config == first.config  # the stored document, relative to the run folder

    # a resume that fails (its copy removed by hand) is a clear error and leaves the finished run as it was
    (moved / "inputs" / "seed.json").unlink()
    with SQLiteRunStore.open(moved) as store:
        before = store.run()
    with pytest.raises(ConfigError, match=r"seed_network: file .*inputs/seed\.json.* does not exist"):
        run_search(None, resume=moved, progress=False, toolkit=toolkit)
    with SQLiteRunStore.open(moved) as store:
        assert (store.run().status, store.run().result) == ("finished", before.result)


def test_export_checks_out_before_the_work_and_writes_atomically(tmp_path, toolkit, run_cli, not_a_folder):
    run = Path(run_search(_doc(tmp_path), progress=False, outputs=False, toolkit=toolkit).run_dir)
    line = run_cli("export", run, "--device", "cpu", "--format", "torch", "--out", f"{not_a_folder}.pt").error_line()
    assert "is not a folder" in line
    out = tmp_path / "best" / "m.pt"
    res = run_cli("export", run, "--device", "cpu", "--format", "torch", "--out", out)
    assert res.returncode == 0, res.stderr
    assert f"{out}, {out.with_suffix('.json')}" in res.stdout  # the final names, not the temporary ones
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.json", "m.preprocessing.json", "m.pt"]


def test_no_output_overwrites_an_input_or_a_file_of_the_run(tmp_path, toolkit, capsys):
    from na_toolkit.cli.main import main

    run = Path(run_search(_doc(tmp_path), progress=False, outputs=True, toolkit=toolkit).run_dir)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "run.lock"}

    def refused(*argv: str | Path) -> str:
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("na-toolkit: error: "), err
        return err[0]

    export = ("export", run, "--device", "cpu", "--format")
    # a torch export's state dict and architecture would share a .json name (it crashed, leaving neither)
    assert "give OUT a .pt or .pth suffix" in refused(*export, "torch", "--out", tmp_path / "m.json")
    assert "give OUT a .onnx suffix" in refused(*export, "onnx", "--out", tmp_path / "m.pt")
    # the run's own files, whatever the suffix; under best/ and exports/ an earlier export may be replaced
    (run / "notes.onnx").write_bytes(b"mine")
    assert f"would overwrite {str(run / 'notes.onnx')!r}, a file of run" in refused(
        *export, "onnx", "--out", run / "notes.onnx"
    )
    assert "summary.json" in refused(*export, "torch", "--out", run / "summary.pt")
    assert main([*map(str, export), "onnx", "--out", str(run / "best" / "cpu" / "again.onnx")]) == 0
    capsys.readouterr()
    before[run / "best" / "cpu" / "again.onnx"] = (run / "best" / "cpu" / "again.onnx").read_bytes()
    # a command's output is never the file it reads
    mine = tmp_path / "mine"
    assert main([*map(str, export), "torch", "--out", str(mine / "m.pt")]) == 0
    assert main([*map(str, export), "onnx", "--out", str(mine / "m.onnx")]) == 0
    capsys.readouterr()
    arch_json, onnx_file = mine / "m.json", mine / "m.onnx"
    kept = arch_json.read_bytes(), onnx_file.read_bytes()
    assert "it is the input" in refused("arch", "export", arch_json, "--onnx", arch_json)
    assert "it is the input" in refused("arch", "import", onnx_file, "--out", onnx_file)
    assert (arch_json.read_bytes(), onnx_file.read_bytes()) == kept
    data = run / "evaluations.jsonl"
    assert "it is the input" in refused("predict", "fit", "--data", data, "--target", "accuracy", "--out", data)
    # nothing the run had was changed
    assert all(p.read_bytes() == content for p, content in before.items())


def test_an_exported_network_carries_its_input_normalization_and_reproduces_its_accuracy(tmp_path, toolkit):
    import numpy as np
    import onnx
    import onnxruntime as ort

    from na_toolkit.datasets import get_dataset

    result = run_search(_doc(tmp_path), progress=False, toolkit=toolkit)
    best = Path(result.run_dir) / "best" / "cpu"
    prep = json.loads((best / "preprocessing.json").read_text())
    meta = {p.key: json.loads(p.value) for p in onnx.load(best / "model.onnx").metadata_props}
    assert meta["na_toolkit.input_normalization"] == prep["input_normalization"]
    ds = get_dataset("digits", toolkit.datasets, seed=0)
    assert meta["na_toolkit.class_names"] == prep["class_names"] == [str(c) for c in ds.class_names]
    # the exported model and the recorded normalization give the test accuracy the search reported
    mean, std = (
        np.asarray(prep["input_normalization"][k], dtype=np.float32)[None, :, None, None] for k in ("mean", "std")
    )
    session = ort.InferenceSession(str(best / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: ((ds.x_test - mean) / std).astype(np.float32)})[0]
    (evaluated,) = [e for e in result.evaluated if e.hash == prep["arch_hash"]]
    accuracy = float(np.mean(logits.argmax(axis=1) == ds.y_test))
    assert accuracy == pytest.approx(evaluated.result["test_accuracy"], abs=1e-9)


def test_an_output_that_is_a_file_is_a_config_error_and_the_file_is_kept(tmp_path, toolkit):
    (tmp_path / "data.npz").write_bytes(b"precious")
    with pytest.raises(ConfigError, match=r"output: '.*data\.npz' is a file, not a folder"):
        run_search(_doc(tmp_path, output=str(tmp_path / "data.npz")), progress=False, toolkit=toolkit)
    with pytest.raises(ConfigError, match=r"output: cannot make a run folder in '.*data\.npz/runs': Not a directory"):
        run_search(
            _doc(tmp_path), overrides={"output": tmp_path / "data.npz" / "runs"}, progress=False, toolkit=toolkit
        )
    assert (tmp_path / "data.npz").read_bytes() == b"precious"


def test_a_named_file_that_does_not_exist_is_a_config_error_naming_the_key(tmp_path, toolkit):
    doc = _doc(tmp_path)
    doc["devices"]["cpu"]["time_model"]["options"]["device"] = "hw/missing.toml"
    with pytest.raises(ConfigError, match=r"devices\.cpu\.time_model\.options\.device: file .*missing\.toml"):
        run_search(doc, progress=False, toolkit=toolkit)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    with pytest.raises(ConfigError, match=r"seed_network: file .*nope\.json.* does not exist"):
        run_search(_doc(tmp_path, seed_network="nope.json"), progress=False, toolkit=toolkit)


# ---- a device fallback is never silent ----------------------------------------------------------------
def test_an_allowed_fallback_warns_on_stderr_in_summary_and_report(tmp_path, toolkit, caplog):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("ONNX Runtime has a CUDA provider here: there is no fallback to see")
    doc = _doc(tmp_path)
    doc["devices"] = {
        "gpu": {
            "device": "cuda:0",
            "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
            "measure": {"name": "onnxruntime", "options": {"allow_fallback": True}},
        }
    }
    # the time model warns as a Python warning too (a library user's own filters see it)
    with pytest.warns(RuntimeWarning, match="measured on the CPU instead"):
        result = run_search(doc, progress=False, toolkit=toolkit)
    warning = [w for w in result.warnings if "measured on the CPU instead" in w]
    assert len(warning) == 1 and warning[0].startswith("devices.gpu.measure: device 'cuda:0'")
    run = Path(result.run_dir)
    assert warning[0] in json.loads((run / "summary.json").read_text())["warnings"]
    assert warning[0] in (run / "report.md").read_text()
    # logged (na_toolkit.search, WARNING) as the run starts: a library user who configured no logging sees it
    # on stderr (logging's last-resort handler); the CLI writes it "na-toolkit: warning: ..." and -q hides it
    logged = [r for r in caplog.records if r.name == "na_toolkit.search" and r.levelname == "WARNING"]
    assert [r.getMessage() for r in logged] == [f"warning: {warning[0]}"]


# ---- failing commands leave their inputs; outputs are checked before the work -------------------------
@pytest.fixture
def not_a_folder(tmp_path) -> Path:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    return blocker / "out"  # its parent is a file: nothing can be written there (even as root)


def test_hw_calibrate_checks_out_before_calibrating(run_cli, not_a_folder):
    res = run_cli("hw", "calibrate", "--out", f"{not_a_folder}.toml")
    assert "is not a folder" in res.error_line()
    assert "calibrating" not in res.stderr  # refused before the work


def test_predict_fit_and_arch_export_check_out_before_the_work(run_cli, not_a_folder, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("")
    line = run_cli(
        "predict", "fit", "--data", data, "--target", "accuracy", "--out", f"{not_a_folder}.json"
    ).error_line()
    assert "is not a folder" in line  # not "no rows" from reading the data: the --out came first
    line = run_cli("arch", "export", "simple-cnn", "--onnx", f"{not_a_folder}.onnx").error_line()
    assert "is not a folder" in line
    good = tmp_path / "m.onnx"  # an older ONNX model (a file of another content is refused: tests/test_export.py)
    onnx.save(get_seed("resnet-cifar").to_onnx(), good)
    res = run_cli("arch", "export", "simple-cnn", "--onnx", good)
    assert res.returncode == 0, res.stderr
    assert from_onnx(good, layer_types()).hash == get_seed("simple-cnn").hash  # the old file replaced whole
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.slow
def test_a_resume_of_a_complete_profile_leaves_the_file_as_it_was(tmp_path, run_cli):
    out = tmp_path / "p.json"
    small = ("--seed-net", "simple-cnn", "--quick", "--no-progress", "--max-moves", "1", "--adaptive-rounds", "0")
    assert run_cli("profile", "--out", out, "--samples", "2", *small).returncode == 0
    before = out.read_bytes()
    assert json.loads(before)["complete"] is True
    res = run_cli("profile", "--out", out, "--resume", *small)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == before  # not rewritten (it used to go complete -> false -> true on the way)


# ---- kills at the stages of a round (real subprocess searches; see bench/faults.py) -------------------
@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    b = F.make_bench(tmp_path_factory.mktemp("faults"), evaluations=4, workers=2)
    run, _wall_s = F.run_reference(b)
    yield b, run
    b.cleanup()


@pytest.mark.slow
def test_kill_inside_a_store_transaction_then_resume(bench):
    d = F.kill_scenario(bench[0], "transaction", "transaction:5")
    assert d["killed"] and d["status_at_kill"] == "running"
    assert (d["lost"], d["paid_twice"], d["orphan_processes"]) == (0, 0, 0)
    assert d["resumed"] and d["matches_reference"], d


@pytest.mark.slow
def test_kill_mid_training_leaves_no_worker_and_resumes(bench):
    d = F.kill_scenario(bench[0], "training", F.KILLS["mid_training"])
    assert d["killed"] and d["evaluations_at_kill"] < 3  # round 1 (2 candidates) was not all stored
    assert (d["lost"], d["paid_twice"], d["orphan_processes"]) == (0, 0, 0)
    assert d["matches_reference"], d


@pytest.mark.slow
def test_a_killed_resume_of_a_finished_run_leaves_it_as_it_was(bench):
    d = F.killed_resume_of_finished(bench[0], bench[1], "finished-copy", "checkpoint:2", None)
    assert d["killed"] and d["status_after_kill"] == "finished"
    assert d["result_unchanged"] and d["report_unchanged"] and not d["damaged"], d
    assert d["matches_reference"]


@pytest.mark.slow
def test_two_resumes_at_once_one_writes_and_one_is_refused(bench):
    d = F.two_resumes_at_once(bench[0])
    assert d["killed"] and sorted(d["exit_codes"]) == [0, 2], d
    assert "being written by another search (pid" in d["refused"][0]
    assert (d["lost"], d["paid_twice"]) == (0, 0) and d["matches_reference"]


@pytest.mark.slow
def test_a_resume_during_a_live_run_is_refused_and_the_run_finishes(bench):
    d = F.resume_during_live_run(bench[0])
    assert d["resume_exit_code"] == 2 and "being written by another search" in d["resume_message"]
    assert d["live_exit_code"] == 0 and d["status"] == "finished" and not d["damaged"], d
    assert d["paid_twice"] == 0
