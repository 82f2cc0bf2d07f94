"""A run store in memory (a `RunStore`, see store/base.py): nothing on disk, for tests and benchmarks.

It keeps the SQLite store's contract (an evaluation is written once and gets the next `seq`, checkpoints
keep the latest rounds of a kind) and writes every value through store/codec.py as the SQLite store does,
so a search reads back the same values (plain floats, lists, numpy arrays) whichever store it runs on and
gives the same result. Closing it keeps its contents readable (a test inspects the store after the run).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .base import STATUSES, EvaluationRecord, RunRecord, store_repr, validated
from .codec import decode_state, dumps, encode_state, loads


def _copy(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What the SQLite store reads back of a metrics or result document: it through the codec."""
    out: dict[str, Any] = loads(dumps(dict(doc)))
    return out


def _plain(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What the SQLite store reads back of a config or architecture document: its JSON text, parsed."""
    out: dict[str, Any] = json.loads(dumps(dict(doc)))
    return out


class MemoryRunStore:
    """The store of one run, in this process's memory."""

    def __init__(self, run_id: str, config: Mapping[str, Any]):
        now = time.time()
        self.run_id = run_id
        self.path: Path | None = None
        self._run = RunRecord(run_id, _plain(config), "running", now, now, None)
        self._evaluations: dict[str, EvaluationRecord] = {}  # arch hash -> record, in seq order
        self._predictor_data: dict[str, dict[str, float]] = {}  # target -> arch hash -> value
        self._measurements: dict[tuple[str, str, str, str], str] = {}
        self._checkpoints: dict[str, dict[int, tuple[str, bytes]]] = {}  # kind -> round -> (format, blob)
        self._weights: dict[str, tuple[str, bytes]] = {}
        self._artifacts: dict[str, str] = {}

    @classmethod
    def create(cls, run_id: str, config: Mapping[str, Any]) -> MemoryRunStore:
        return cls(run_id, config)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return store_repr(self, f"{self._run.status}, {len(self._evaluations)} evaluation(s)")

    def __enter__(self) -> MemoryRunStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- run ----------------------------------------------------------------------------------------
    def run(self) -> RunRecord:
        return self._run

    def set_status(self, status: str, result: Mapping[str, Any] | None = None) -> None:
        if status not in STATUSES:
            raise StoreError(f"unknown run status {status!r}")
        r = self._run
        # a run's result is replaced only by a newer complete one, never emptied (as in the SQLite store)
        result_doc = _plain(result) if result is not None else r.result
        self._run = validated(
            RunRecord,
            run_id=r.run_id,
            config=r.config,
            status=status,
            created_s=r.created_s,
            updated_s=time.time(),
            result=result_doc,
        )

    # ---- evaluations --------------------------------------------------------------------------------
    def add_evaluation(
        self,
        arch_hash: str,
        arch_json: Mapping[str, Any],
        metrics: Mapping[str, float],
        result: Mapping[str, Any],
        round: int,
        eval_time_s: float,
        error: str | None = None,
        targets: Mapping[str, float] | None = None,
    ) -> EvaluationRecord:
        """Record one ground-truth evaluation and its predictor training rows. StoreError if this
        architecture was already evaluated in this run (never pay twice)."""
        if arch_hash in self._evaluations:
            raise StoreError(f"architecture {arch_hash} is already evaluated in run {self.run_id}")
        rec = EvaluationRecord(
            len(self._evaluations),
            round,
            arch_hash,
            _plain(arch_json),
            _copy(metrics),
            _copy(result),
            error,
            float(eval_time_s),
        )
        self._evaluations[arch_hash] = rec
        for target, value in (targets or {}).items():
            self._predictor_data.setdefault(target, {})[arch_hash] = float(value)
        self._run = replace(self._run, updated_s=time.time())  # last written now, as in the SQLite store
        # what the SQLite store returns from add_evaluation: the documents as given (not read back)
        return EvaluationRecord(
            rec.seq, round, arch_hash, dict(arch_json), dict(metrics), dict(result), error, float(eval_time_s)
        )

    def evaluations(self) -> list[EvaluationRecord]:
        """Every evaluation of the run, in the order they were stored."""
        return list(self._evaluations.values())

    def evaluation(self, arch_hash: str) -> EvaluationRecord | None:
        return self._evaluations.get(arch_hash)

    def count_evaluations(self) -> int:
        return len(self._evaluations)

    def predictor_data(self, target: str) -> dict[str, float]:
        """arch hash → target value, in evaluation order."""
        rows = self._predictor_data.get(target, {})
        return {h: rows[h] for h in self._evaluations if h in rows}

    # ---- measurements -------------------------------------------------------------------------------
    def add_measurement(
        self, arch_hash: str, device: str, time_model: str, settings: str, estimate: Mapping[str, Any]
    ) -> None:
        self._measurements[(arch_hash, device, time_model, settings)] = dumps(dict(estimate))

    def measurement(self, arch_hash: str, device: str, time_model: str, settings: str) -> dict[str, Any] | None:
        text = self._measurements.get((arch_hash, device, time_model, settings))
        if text is None:
            return None
        doc: dict[str, Any] = loads(text)
        return doc

    def count_measurements(self) -> int:
        return len(self._measurements)

    # ---- checkpoints, weights, artifacts ------------------------------------------------------------
    def save_checkpoint(self, round: int, kind: str, state: Any, keep: int = 2) -> None:
        """Store the state of `kind` after `round`, keeping the latest `keep` rounds of that kind."""
        rounds = self._checkpoints.setdefault(kind, {})
        rounds[round] = encode_state(state)
        for old in sorted(rounds, reverse=True)[keep:]:
            del rounds[old]

    def load_checkpoint(self, kind: str, round: int | None = None) -> tuple[int, Any] | None:
        """(round, state) of the latest checkpoint of `kind` (at or before `round` when given)."""
        rounds = [r for r in self._checkpoints.get(kind, {}) if round is None or r <= round]
        if not rounds:
            return None
        latest = max(rounds)
        fmt, blob = self._checkpoints[kind][latest]
        return latest, decode_state(fmt, blob)

    def checkpoint_kinds(self) -> list[str]:
        return sorted(k for k, rounds in self._checkpoints.items() if rounds)

    def save_weights(self, arch_hash: str, state: Any) -> None:
        self._weights[arch_hash] = encode_state(state)

    def load_weights(self, arch_hash: str) -> Any | None:
        stored = self._weights.get(arch_hash)
        return None if stored is None else decode_state(*stored)

    def save_artifact(self, name: str, doc: Mapping[str, Any]) -> None:
        self._artifacts[name] = dumps(dict(doc))

    def artifact(self, name: str) -> dict[str, Any] | None:
        text = self._artifacts.get(name)
        if text is None:
            return None
        doc: dict[str, Any] = loads(text)
        return doc
