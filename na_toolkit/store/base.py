"""The run store protocol: what the search loop, the outputs and the CLI need of a run's store.

A store holds one run: its record (config, status, result), every ground-truth evaluation (keyed by
architecture hash, with the architecture JSON, metrics and timings) and the predictor training rows,
measurements, checkpoints (the final strategy, RNG, predictors), trained weights and artifacts. Two implement it:
`SQLiteRunStore` (store/sqlite.py: one file per run folder, what `na-toolkit search` uses, so a killed run
resumes) and `MemoryRunStore` (store/memory.py: nothing on disk, for tests and benchmarks). Both write
values through store/codec.py, so what is read back is the same whichever store held it.

Contract: an evaluation is written once (a second one of the same architecture is a `StoreError`: a run
never pays twice) and gets the next `seq`; `evaluations()` and `predictor_data()` are in `seq` order; a
checkpoint kind keeps its latest `keep` rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from pydantic import ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ..errors import StoreError
from ..validation import format_validation_error

SCHEMA_VERSION = 1
STORE_FILE = "store.sqlite"
STATUSES = ("running", "finished", "failed")


@pydantic_dataclass(frozen=True)
class EvaluationRecord:
    """One ground-truth evaluation as stored. `error` is set when the evaluation failed (it still counts
    against the budget and is never retried)."""

    seq: int
    round: int
    arch_hash: str
    arch_json: dict[str, Any]
    metrics: dict[str, float]
    result: dict[str, Any]
    error: str | None
    eval_time_s: float

    def __repr__(self) -> str:  # one line: not the architecture's JSON nor the evaluator's whole result
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
        tail = f"error={self.error!r}" if self.error is not None else metrics
        return (
            f"EvaluationRecord(seq={self.seq}, round={self.round}, arch_hash={self.arch_hash!r}, "
            f"name={self.arch_json.get('name')!r}, eval_time_s={self.eval_time_s:.4g}, {tail})"
        )


def store_repr(store: Any, state: str) -> str:
    """A store's one line: its class, run, `state` (status and evaluations, or why they cannot be read) and
    where it lives."""
    where = f"path={str(store.path)!r}" if store.path is not None else "in memory"
    return f"<{type(store).__name__} {store.run_id} {state}, {where}>"


@pydantic_dataclass(frozen=True)
class RunRecord:
    """The run: its config document, status and (once finished) its result document."""

    run_id: str
    config: dict[str, Any]
    status: Literal["running", "finished", "failed"]
    created_s: float
    updated_s: float
    result: dict[str, Any] | None


R = TypeVar("R")


def validated(record: Callable[..., R], **fields: Any) -> R:
    """A run record built from a store's row, its fields checked by the record's (pydantic) types; a
    row that does not fit (a damaged or tampered store) is a `StoreError` naming the field."""
    try:
        return record(**fields)
    except ValidationError as exc:
        raise StoreError(
            f"a stored {getattr(record, '__name__', 'record')} is damaged: {format_validation_error(exc)}"
        ) from None


class RunStore(Protocol):
    """The store of one run (see the module docstring for the contract)."""

    @property
    def run_id(self) -> str: ...

    @property
    def path(self) -> Path | None:
        """The store's file (None: the store lives in memory)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> RunStore: ...

    def __exit__(self, *exc: Any) -> None: ...

    # ---- run ----
    def run(self) -> RunRecord: ...

    def set_status(self, status: str, result: Mapping[str, Any] | None = None) -> None: ...

    # ---- evaluations ----
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
        """Record one ground-truth evaluation and its predictor training rows (`targets`) at once."""
        ...

    def evaluations(self) -> list[EvaluationRecord]: ...

    def evaluation(self, arch_hash: str) -> EvaluationRecord | None: ...

    def count_evaluations(self) -> int: ...

    def predictor_data(self, target: str) -> dict[str, float]: ...

    # ---- measurements ----
    def add_measurement(
        self, arch_hash: str, device: str, time_model: str, settings: str, estimate: Mapping[str, Any]
    ) -> None: ...

    def measurement(self, arch_hash: str, device: str, time_model: str, settings: str) -> dict[str, Any] | None: ...

    def count_measurements(self) -> int: ...

    # ---- checkpoints, weights, artifacts ----
    def save_checkpoint(self, round: int, kind: str, state: Any, keep: int = 2) -> None: ...

    def load_checkpoint(self, kind: str, round: int | None = None) -> tuple[int, Any] | None: ...

    def checkpoint_kinds(self) -> list[str]: ...

    def save_weights(self, arch_hash: str, state: Any) -> None: ...

    def load_weights(self, arch_hash: str) -> Any | None: ...

    def save_artifact(self, name: str, doc: Mapping[str, Any]) -> None: ...

    def artifact(self, name: str) -> dict[str, Any] | None: ...
