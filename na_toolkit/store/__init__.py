"""Run stores: the `RunStore` protocol (base.py), the SQLite store of a run folder (sqlite.py) and an
in-memory one for tests and benchmarks (memory.py); values are written through codec.py."""

from .base import SCHEMA_VERSION, STORE_FILE, EvaluationRecord, RunRecord, RunStore
from .codec import decode_state, encode_state
from .memory import MemoryRunStore
from .sqlite import SQLiteRunStore

__all__ = [
    "SCHEMA_VERSION",
    "STORE_FILE",
    "EvaluationRecord",
    "MemoryRunStore",
    "RunRecord",
    "RunStore",
    "SQLiteRunStore",
    "decode_state",
    "encode_state",
]
