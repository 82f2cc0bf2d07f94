"""The run store (embedded SQLite): runs, evaluations, measurements, checkpoints."""

from .sqlite import SCHEMA_VERSION, STORE_FILE, EvaluationRecord, RunRecord, RunStore, decode_state, encode_state

__all__ = ["SCHEMA_VERSION", "STORE_FILE", "EvaluationRecord", "RunRecord", "RunStore", "decode_state", "encode_state"]
