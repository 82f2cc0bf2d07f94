"""A real search killed with SIGKILL mid-run and resumed: nothing lost, nothing evaluated twice, and the
result equals an uninterrupted run with the same seed."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest

from conftest import default_toolkit
from killed_run import cut_run
from na_toolkit.cli.main import main
from na_toolkit.search import run_search
from na_toolkit.store import STORE_FILE, SQLiteRunStore

pytestmark = pytest.mark.slow

CONFIG = """
name = "resume"
seed_network = "simple-cnn"
dataset = "digits"
evaluations = 6
random_seed = 3
output = "{output}"

[search]
per_round = 2
moves = ["scale", "remove"]

[strategy]
name = "evolution"
options = {{ population = 3, sample = 2, oversample = 2 }}

[evaluator]
name = "torch"
options = {{ epochs = 1, threads = 1 }}

[predictors]
accuracy = {{ name = "ensemble", options = {{ n_estimators = 10 }} }}

[budgets]
model_size_bytes = 16_000_000

[devices.cpu]
time_model = {{ name = "roofline", options = {{ device = "x86-cpu" }} }}
budgets = {{ latency_ms = 0.1 }}
"""


def _cli(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "na_toolkit.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _stored(path: Path) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT seq, arch_hash, metrics_json, error FROM evaluations ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # the schema is being created
        return []
    finally:
        conn.close()


def test_sigkill_then_resume_loses_nothing_repeats_nothing_and_matches(tmp_path, capsys):
    out = tmp_path / "runs"
    cfg = tmp_path / "search.toml"
    cfg.write_text(CONFIG.format(output=out))

    proc = _cli("search", str(cfg), "--no-progress")
    deadline = time.monotonic() + 240
    stored: list[tuple] = []
    store_path = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(out.glob(f"*/{STORE_FILE}"))
            if found:
                store_path = found[0]
                stored = _stored(store_path)
                if len(stored) >= 4:  # seed + round 1 + the first of round 2: the kill lands mid-round
                    break
            time.sleep(0.05)
        assert proc.poll() is None, f"the search ended before it could be killed: {proc.stderr.read()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    before = _stored(store_path)
    assert 4 <= len(before) < 6  # killed mid-run
    with SQLiteRunStore.open(store_path) as store:
        assert store.run().status == "running"

    run_dir = store_path.parent
    # before any resume, what the killed search measured is usable: report says how to export the most
    # accurate network so far, and `export --arch` writes it from the unfinished run
    measured = [(json.loads(m)["accuracy"], -seq, h) for seq, h, m, error in before if error is None]
    top = max(measured)[2]
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "was interrupted (it stopped without finishing)" in err and f"--resume {run_dir}" in err
    assert f"the most accurate so far (feasible or not), {top[:12]}" in err
    assert f"export {run_dir} --arch {top[:12]}" in err
    written = sum(1 for line in (run_dir / "evaluations.jsonl").read_text().splitlines() if line.strip())
    if written < len(before):  # the file is written after each round; the store holds every evaluation at once
        assert f"; {written} of its {len(before)} evaluations are in {run_dir / 'evaluations.jsonl'}" in err
    assert main(["export", str(run_dir), "--device", "cpu", "--format", "onnx"]) == 2  # the best needs a summary
    assert "was interrupted" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--arch", top[:12], "--format", "onnx", "--json"]) == 0
    exported = run_dir / "exports" / top / "model.onnx"
    sidecar = exported.with_name("model.preprocessing.json")  # what a deployer needs beside the weights
    assert json.loads(capsys.readouterr().out)["files"] == [str(exported), str(sidecar)]
    onnx.checker.check_model(onnx.load(str(exported)))
    assert _stored(store_path) == before  # reading the run changed nothing in it
    summary = run_search(None, resume=run_dir, progress=False).summary()  # what `search --resume RUN` calls

    after = _stored(store_path)
    # nothing lost: every evaluation stored before the kill is still there, unchanged, in place
    assert after[: len(before)] == before
    # nothing evaluated twice: one row per architecture, and the replay paid for none of the stored ones
    hashes = [row[1] for row in after]
    assert len(after) == 6 and len(set(hashes)) == 6
    assert summary["counters"]["evaluations"] == 6
    assert summary["counters"]["evaluations_replayed"] == len(before)
    assert summary["status"] == "finished" and Path(summary["run_dir"]) == run_dir
    with SQLiteRunStore.open(run_dir) as store:
        assert store.run().status == "finished"
        assert store.load_checkpoint("strategy") is not None and store.load_checkpoint("predictor:accuracy") is not None

    # the same search without interruption gives the same result
    straight = run_search(cfg, overrides={"output": str(tmp_path / "straight")}, progress=False, outputs=False)
    assert [e.hash for e in straight.evaluated] == hashes
    assert [e.hash for e in straight.evaluated] == [e["arch_hash"] for e in summary["evaluated"]]
    accuracies = [e["metrics"]["accuracy"] for e in summary["evaluated"]]
    assert [e.score.metrics["accuracy"] for e in straight.evaluated] == accuracies
    assert [e.score.reward for e in straight.evaluated] == [e["reward"] for e in summary["evaluated"]]
    assert straight.pareto == [e["arch_hash"] for e in summary["pareto"]]
    assert dict(straight.best) == {d: (e or {}).get("arch_hash") for d, e in summary["best"].items()}


def test_resume_with_another_config_is_refused(tmp_path, monkeypatch):
    cfg = tmp_path / "a.toml"
    cfg.write_text(CONFIG.format(output=tmp_path / "runs").replace("evaluations = 6", "evaluations = 1"))
    res = run_search(cfg, progress=False, outputs=False)
    other = tmp_path / "b.toml"
    other.write_text(
        CONFIG.format(output=tmp_path / "runs")
        .replace("evaluations = 6", "evaluations = 1")
        .replace("random_seed = 3", "random_seed = 4")
    )
    from na_toolkit.errors import ConfigError, StoreError

    with pytest.raises(ConfigError, match="different config \\(random_seed differ"):
        run_search(other, resume=res.run_dir, progress=False)
    with pytest.raises(StoreError, match="no run folder"):
        run_search(None, resume=tmp_path / "nope", progress=False)
    # resuming a finished run replays it from the store: no evaluation is paid again
    again = run_search(cfg, resume=res.run_dir, progress=False, outputs=False)
    assert again.counters.evaluations_replayed == again.counters.evaluations == 1
    assert [e.hash for e in again.evaluated] == [e.hash for e in res.evaluated]
    # its elapsed time is the run's sessions', not the replay's alone (0.5 s where the run took seconds)
    assert again.elapsed_s > res.elapsed_s > 0
    # a run resumed by a relative path names its folder absolutely, as a new run does (summary.json's run_dir
    # and outputs were relative to wherever the resume was typed)
    monkeypatch.chdir(res.run_dir.parent)
    relative = run_search(None, resume=res.run_dir.name, progress=False, outputs=False)
    assert relative.run_dir == res.run_dir and relative.run_dir.is_absolute()


def test_resume_with_a_config_whose_named_file_changed_is_refused(tmp_path):
    """The run goes on from the copies of its config's files it made when it started (inputs/): a config given
    with --resume that names the same path with another content (a seed network edited since) is not the
    run's own, and is refused like a changed option (before, it was accepted without a word)."""
    from na_toolkit.errors import ConfigError

    seed = tmp_path / "seed.json"
    default_toolkit().seed("simple-cnn").save(seed)
    cfg = tmp_path / "a.toml"
    text = CONFIG.format(output=tmp_path / "runs").replace("evaluations = 6", "evaluations = 1")
    cfg.write_text(text.replace('seed_network = "simple-cnn"', f'seed_network = "{seed}"'))
    res = run_search(cfg, progress=False, outputs=False)
    assert run_search(cfg, resume=res.run_dir, progress=False, outputs=False).counters.evaluations == 1
    doc = json.loads(seed.read_text())
    seed.write_text(json.dumps({**doc, "name": "edited"}))
    said = rf"different config \(file '{seed}' and the run's copy inputs/seed.json differ"
    with pytest.raises(ConfigError, match=said):
        run_search(cfg, resume=res.run_dir, progress=False, outputs=False)
    assert run_search(None, resume=res.run_dir, progress=False, outputs=False).seed_hash == res.seed_hash


@pytest.mark.parametrize("strategy", ["random", "evolution", "neural-architect"])
def test_every_strategy_replays_exactly(strategy, tmp_path):
    """Cut a finished run's store back to what a kill would have left, resume it: each strategy retraces
    the run (same proposals, same predictor fits) and ends where the uninterrupted run ended."""
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")

    if strategy not in default_toolkit().strategies:
        pytest.skip(f"strategy {strategy} is not registered")
    options = {"neural-architect": {"updates": 2, "episodes": 4}, "random": {"oversample": 3}}.get(strategy, {})
    doc = {
        "name": strategy,
        "seed_network": "nb201",
        "dataset": "c10",
        "evaluations": 9,
        "random_seed": 5,
        "output": str(tmp_path),
        "search": {"per_round": 3, "moves": ["set_edge_op"]},
        "strategy": {"name": strategy, "options": options},
        "evaluator": "nb201-table",
        "predictors": {"accuracy": {"name": "ensemble", "options": {"n_estimators": 10}}},
        "devices": {"p3": {"device": "lat_pixel3", "time_model": "nb201-table", "budgets": {"latency_ms": 10.0}}},
    }
    full = run_search(doc, progress=False, outputs=False)
    cut = tmp_path / "cut"
    kept = 5  # the seed, round 1, and 1 of round 2's 3
    cut_run(full.run_dir, cut, kept).close()
    resumed = run_search(None, resume=cut, progress=False, outputs=False)
    assert resumed.counters.evaluations_replayed == kept and resumed.counters.evaluations == 9
    assert [e.hash for e in resumed.evaluated] == [e.hash for e in full.evaluated]
    assert [e.score.reward for e in resumed.evaluated] == [e.score.reward for e in full.evaluated]
    assert resumed.pareto == full.pareto and resumed.best == full.best
    assert resumed.counters.predictor_calls == full.counters.predictor_calls
