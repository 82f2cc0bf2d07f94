"""NAS-Bench-201 for na_toolkit: the search space in the IR, the set_edge_op move, the table evaluator and
time model, and the benchmarks built on the table (`na-toolkit bench nb201-search | predictor |
fewshot-latency`). See docs/nb201.md."""

from __future__ import annotations

__version__ = "0.1.0"

from .space import (
    EDGES,
    OPS,
    RESNET_CELL,
    canonical_cell,
    cell_string,
    is_nb201,
    nb201_architecture,
    nb201_architecture_for,
    nb201_cell_of,
    parse_cell,
    parse_spec,
)
from .table import NB201Table, load_table, packaged_table_path


def index_to_str(index: int, table=None) -> str:
    """The cell string of an NB201 arch_index (official numbering, from the table)."""
    return load_table(table).str_of(index)


def str_to_index(arch_str: str, table=None) -> int:
    """The official NB201 arch_index of a cell string (from the table)."""
    return load_table(table).index_of(arch_str)


def nb201_index_of(arch, table=None) -> int:
    """The arch_index of an NB201 IR network."""
    return load_table(table).index_of(nb201_cell_of(arch))


__all__ = [
    "EDGES",
    "OPS",
    "RESNET_CELL",
    "NB201Table",
    "canonical_cell",
    "cell_string",
    "index_to_str",
    "is_nb201",
    "load_table",
    "nb201_architecture",
    "nb201_architecture_for",
    "nb201_cell_of",
    "nb201_index_of",
    "packaged_table_path",
    "parse_cell",
    "parse_spec",
    "str_to_index",
]
