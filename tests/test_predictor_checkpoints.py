"""The state a run stores: once, at its end (`GroundTruth.save_final_state`: the strategy's, the RNG's and the
predictors'), for inspection and export. A resume never reads them (it replays the strategy and every refit),
so a run folder written before this, with checkpoints per round, resumes as before, whatever those hold. Real
searches on the NAS-Bench-201 table (cheap ground truth) with the GP predictor, in real SQLite run folders."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import default_toolkit
from killed_run import cut_run
from na_toolkit.predictors.base import Predictor
from na_toolkit.search import run_search
from na_toolkit.store import MemoryRunStore, SQLiteRunStore
from na_toolkit.store.base import SCHEMA_VERSION

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")


@pytest.fixture(scope="module")
def tk():
    return default_toolkit()


def _doc(output, evaluations=10, schedule="rounds"):
    return {
        "name": "ckpt",
        "seed_network": "nb201",
        "dataset": "c10",
        "evaluations": evaluations,
        "random_seed": 3,
        "output": str(output),
        "search": {"per_round": 3, "moves": ["set_edge_op"], "min_fit": 3, "schedule": schedule},
        "strategy": {"name": "random", "options": {"oversample": 2}},
        "evaluator": "nb201-table",
        "predictors": {"accuracy": {"name": "gp"}},
    }


@pytest.mark.parametrize("schedule", ["rounds", "async"])
def test_the_final_predictors_are_stored_once_under_the_last_round(tk, tmp_path, schedule):
    store = MemoryRunStore("t", {})
    res = run_search(_doc(tmp_path, schedule=schedule), toolkit=tk, progress=False, outputs=False, store=store)
    last, _ = store.load_checkpoint("strategy")
    found = store.load_checkpoint("predictor:accuracy")
    assert found is not None and found[0] == last > 1
    # written at the end only: no earlier round has one (each round's used to be kept, the latest two)
    for kind in ("predictor:accuracy", "strategy", "rng"):
        assert store.load_checkpoint(kind, round=last - 1) is None
    # the strategy's and the RNG's are the ones the run ended with (random search keeps no state; the RNG
    # has drawn since the start)
    assert store.load_checkpoint("strategy") == (last, {})
    rng_round, rng_state = store.load_checkpoint("rng")
    assert rng_round == last and rng_state["bit_generator"] == "PCG64"
    assert rng_state != np.random.default_rng(3).bit_generator.state
    # the stored one is the predictor the run ended with, trained on every evaluation
    doc = found[1]
    assert doc["trained_on"] == [e.hash for e in res.evaluated if e.error is None]
    final = Predictor.from_json({k: v for k, v in doc.items() if k != "trained_on"}, tk)
    assert doc["n_train"] == len(doc["trained_on"]) == 10  # the last fit: on all ten
    # a GP fit on them: close to the accuracies it learned (fractions)
    archs = [e.candidate.arch for e in res.evaluated]
    truth = [e.score.metrics["accuracy"] for e in res.evaluated]
    assert final.predict(archs) == pytest.approx(truth, abs=0.02)
    assert res.counters.predictor_fits >= 2


def test_an_old_run_folder_with_checkpoints_per_round_still_resumes(tk, tmp_path):
    # a run folder as the toolkit wrote it before, killed in round 2: a strategy, RNG and predictor checkpoint
    # each round, here of another version (a schema it cannot read) or damaged; the resume reads none, and
    # the run's end replaces them with its final state
    full = run_search(_doc(tmp_path), toolkit=tk, progress=False, outputs=False)
    cut = tmp_path / "cut"
    conn = cut_run(full.run_dir, cut, 5, checkpoints_from=2)  # killed in round 2
    run_id = conn.execute("SELECT run_id FROM runs").fetchone()[0]
    old = [
        (0, "predictor:accuracy", 999, "json", b'{"predictor": "gp"}'),
        (1, "predictor:accuracy", SCHEMA_VERSION, "json", b"{not json"),
        (0, "strategy", 999, "json", b"{}"),
        (1, "strategy", SCHEMA_VERSION, "torch", b"not a torch file"),
        (1, "rng", SCHEMA_VERSION, "json", b'{"bit_generator": "MT19937"'),
    ]
    conn.executemany("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, 0)", [(run_id, *row) for row in old])
    conn.commit()
    conn.close()
    resumed = run_search(None, resume=cut, toolkit=tk, progress=False, outputs=False)
    assert resumed.counters.evaluations_replayed == 5
    assert [e.hash for e in resumed.evaluated] == [e.hash for e in full.evaluated]
    assert [e.predicted_accuracy for e in resumed.evaluated] == [e.predicted_accuracy for e in full.evaluated]
    with SQLiteRunStore.open(cut) as store, SQLiteRunStore.open(full.run_dir) as straight:
        rnd, doc = store.load_checkpoint("predictor:accuracy")  # the resumed run's final predictor
        assert rnd == store.load_checkpoint("strategy")[0] > 1
        assert doc["predictor"] == "gp" and len(doc["trained_on"]) == 10
        # the final RNG state is the uninterrupted run's; the old rounds' checkpoints are gone
        assert store.load_checkpoint("rng") == straight.load_checkpoint("rng")
        for kind in ("predictor:accuracy", "strategy", "rng"):
            assert store.load_checkpoint(kind, round=rnd - 1) is None
