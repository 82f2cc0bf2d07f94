"""The NB201 table: one row per cell (arch_index, arch_str, then numeric columns), read once per process.

The plugin ships a gzip copy of the joined public data (data/nb201.csv.gz, see data/SOURCE.md); any CSV in
that layout (plain or .gz) can be used instead (`table=PATH`, or the environment variable
`NA_TOOLKIT_NB201_TABLE`). Only `arch_index` and `arch_str` are required at load; each consumer checks the
columns it needs with `table.require(...)`, which names what is missing. A blank numeric field (or `nan`) is a
missing value, NaN: the table says nothing about that cell there (`finite_rows`).
"""

from __future__ import annotations

import csv
import gzip
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from na_toolkit.errors import ConfigError, DataError

from .space import N_EDGES, OPS, canonical_cell

TABLE_ENV = "NA_TOOLKIT_NB201_TABLE"
REQUIRED_COLUMNS = ("arch_index", "arch_str")
LATENCY_PREFIX = "lat_"
#: cells in the NB201 space (5 operations on each of 6 edges): a table with fewer rows is partial
SPACE_SIZE = len(OPS) ** N_EDGES


#: what the table's numeric columns hold (data/SOURCE.md, "Columns"): by the part of the name that says it, the
#: unit and the valid range (None: unbounded). Accuracies are percentages; latencies milliseconds.
COLUMN_KINDS: tuple[tuple[str, str, float | None, float | None], ...] = (
    ("_acc_", "%", 0.0, 100.0),  # c10_valid_acc_200ep, c100_valtest_acc_200ep, *_test_acc_12ep, ...
    ("_train_time_s_", "s", 0.0, None),  # c10_train_time_s_200ep: seconds for 200 epochs
    ("_params_mb", "M parameters", 0.0, None),  # millions of parameters
    ("_n_seeds", "seeds", 0.0, None),
)


def column_unit(column: str) -> tuple[str, tuple[float | None, float | None]]:
    """The unit and valid range of one of the table's columns as data/SOURCE.md defines them (`lat_<device>`:
    ms, >= 0; `*_acc_*`: %, 0..100; ...); ("", (None, None)) for a column SOURCE.md does not define."""
    if column.startswith(LATENCY_PREFIX):
        return "ms", (0.0, None)
    for part, unit, low, high in COLUMN_KINDS:
        if part in column:
            return unit, (low, high)
    return "", (None, None)


def latency_column(device: str) -> str:
    """The table's latency column of a device named with or without its prefix (`pixel3` or `lat_pixel3`)."""
    return device if device.startswith(LATENCY_PREFIX) else LATENCY_PREFIX + device


def packaged_table_path() -> Path:
    return Path(__file__).with_name("data") / "nb201.csv.gz"


def default_table_path() -> Path:
    env = os.environ.get(TABLE_ENV)
    return Path(env) if env else packaged_table_path()


@dataclass(frozen=True, eq=False)
class NB201Table:
    """The parsed table. Rows are sorted by arch_index; `values` holds every numeric column (float64)."""

    path: str
    arch_index: np.ndarray
    arch_strs: tuple[str, ...]
    columns: tuple[str, ...]
    values: np.ndarray
    _col: dict[str, int] = field(repr=False, default_factory=dict)

    def __len__(self) -> int:
        return len(self.arch_strs)

    @cached_property
    def _row_of_str(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.arch_strs)}

    @cached_property
    def _row_of_index(self) -> dict[int, int]:
        return {int(ix): i for i, ix in enumerate(self.arch_index)}

    @property
    def devices(self) -> list[str]:
        """Latency columns (`lat_<device>`), each a device."""
        return [c for c in self.columns if c.startswith(LATENCY_PREFIX)]

    def has(self, column: str) -> bool:
        return column in self._col

    def require(self, *columns: str) -> None:
        missing = list(dict.fromkeys(c for c in columns if c not in self._col))  # each named once
        if missing:
            raise DataError(
                f"NB201 table {self.path} has no column(s) {', '.join(missing)}; it has: {', '.join(self.columns)}"
            )

    def column(self, name: str) -> np.ndarray:
        """A numeric column by name, in row order (read-only view)."""
        self.require(name)
        view = self.values[:, self._col[name]]
        view.flags.writeable = False
        return view

    # ---- index <-> string ---------------------------------------------------------------------------
    def row_of(self, arch: str | int) -> int:
        """Row number of a cell given by string or by arch_index. DataError when absent."""
        if isinstance(arch, (int, np.integer)) and not isinstance(arch, bool):
            try:
                return self._row_of_index[int(arch)]
            except KeyError:
                raise DataError(
                    f"arch_index {int(arch)} is not in NB201 table {self.path} "
                    f"(indices {int(self.arch_index.min())}..{int(self.arch_index.max())})"
                ) from None
        cell = canonical_cell(arch)
        try:
            return self._row_of_str[cell]
        except KeyError:
            partial = (
                f" (it holds {len(self)} of the {SPACE_SIZE} cells of the space)" if len(self) < SPACE_SIZE else ""
            )
            raise DataError(f"cell {cell!r} is not in NB201 table {self.path}{partial}") from None

    def index_of(self, arch_str: str) -> int:
        """The official NB201 arch_index of a cell string."""
        return int(self.arch_index[self.row_of(arch_str)])

    def str_of(self, index: int) -> str:
        """The cell string of an NB201 arch_index."""
        return self.arch_strs[self.row_of(int(index))]

    def value(self, arch: str | int, column: str) -> float:
        self.require(column)
        return float(self.values[self.row_of(arch), self._col[column]])

    def row(self, arch: str | int) -> dict[str, Any]:
        """Every column of one cell."""
        i = self.row_of(arch)
        out: dict[str, Any] = {"arch_index": int(self.arch_index[i]), "arch_str": self.arch_strs[i]}
        out.update({c: float(self.values[i, j]) for c, j in self._col.items()})
        return out


def finite_rows(table: NB201Table, *columns: str) -> np.ndarray:
    """The rows (indices, in row order) where every one of `columns` holds a value (not NaN)."""
    ok = np.ones(len(table), dtype=bool)
    for c in columns:
        ok &= np.isfinite(table.column(c))
    return np.flatnonzero(ok)


def require_whole_space(table: NB201Table, what: str) -> None:
    """ConfigError when `table` lacks cells of the space: `what` searches it, and a search proposes any cell,
    so every evaluation of a cell the table lacks would fail (and cost the budget) instead of searching."""
    if len(table) < SPACE_SIZE:
        raise ConfigError(
            f"{what} searches the whole NB201 space ({SPACE_SIZE} cells) but table {table.path} holds "
            f"{len(table)} of them: a search would propose cells without ground truth. Give a table of every "
            "cell (any accuracy and lat_* columns); `bench predictor` and `bench fewshot-latency` sample the "
            "table's own cells and take a partial one"
        )


def parse_table(text: str, path: str = "<text>") -> NB201Table:
    """Parse the CSV text of an NB201 table. DataError on a missing required column, a malformed cell
    string, a non-numeric value, a ragged row or a duplicate index."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"NB201 table {path} is empty; expected a CSV header with arch_index, arch_str")
    header = [h.strip() for h in next(csv.reader([lines[0]]))]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"NB201 table {path} has no column(s) {', '.join(missing)}; it has: {', '.join(header)}")
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"NB201 table {path} repeats column(s) {', '.join(dup)}")
    body = lines[1:]
    if not body:
        raise DataError(f"NB201 table {path} has a header but no rows")
    # the shipped table has no quoting, so plain splitting (and numpy's C parser below) is exact
    quoted = '"' in text
    records = list(csv.reader(body)) if quoted else [line.split(",") for line in body]
    for line, rec in enumerate(records, start=2):
        if len(rec) != len(header):
            raise DataError(f"NB201 table {path} line {line}: {len(rec)} fields, the header has {len(header)}")
    i_idx, i_str = header.index("arch_index"), header.index("arch_str")
    numeric = [j for j in range(len(header)) if j not in (i_idx, i_str)]
    indices: list[int] = []
    strs: list[str] = []
    for line, rec in enumerate(records, start=2):
        try:
            indices.append(int(rec[i_idx]))
        except ValueError:
            raise DataError(f"NB201 table {path} line {line}: arch_index {rec[i_idx]!r} is not an integer") from None
        try:
            strs.append(canonical_cell(rec[i_str]))
        except DataError as exc:
            raise DataError(f"NB201 table {path} line {line}: {exc}") from None
    values = _numeric_values(records, body, numeric, header, path, quoted)
    index = np.array(indices, dtype=np.int64)
    if len(np.unique(index)) != len(index):
        raise DataError(f"NB201 table {path} repeats arch_index values")
    if len(set(strs)) != len(strs):
        raise DataError(f"NB201 table {path} repeats cell strings")
    order = np.argsort(index, kind="stable")
    cols = tuple(header[j] for j in numeric)
    return NB201Table(
        path=path,
        arch_index=index[order],
        arch_strs=tuple(strs[i] for i in order),
        columns=cols,
        values=np.ascontiguousarray(values[order]),
        _col={c: j for j, c in enumerate(cols)},
    )


def _numeric_values(records, body, numeric, header, path, quoted: bool) -> np.ndarray:
    if not numeric:
        return np.zeros((len(records), 0))
    if not quoted:
        try:
            return np.loadtxt(body, delimiter=",", usecols=numeric, dtype=np.float64, ndmin=2)
        except ValueError:
            pass  # locate the bad value below
    values = np.empty((len(records), len(numeric)), dtype=np.float64)
    for line, rec in enumerate(records, start=2):
        for k, j in enumerate(numeric):
            try:
                # a blank field is a missing value (pandas writes NaN so): the table says nothing there
                values[line - 2, k] = float(rec[j]) if rec[j].strip() else np.nan
            except ValueError:
                raise DataError(
                    f"NB201 table {path} line {line}: column {header[j]} holds {rec[j]!r}, not a number"
                ) from None
    return values


# resolved path -> (mtime, size, table): each file is parsed once per process
_TABLES: dict[str, tuple[float, int, NB201Table]] = {}


def load_table(path: str | os.PathLike | None = None) -> NB201Table:
    """The NB201 table at `path` (default: $NA_TOOLKIT_NB201_TABLE, else the shipped copy), parsed once per
    process and cached (reloaded when the file changes)."""
    p = Path(path) if path is not None else default_table_path()
    try:
        st = p.stat()
    except OSError as exc:
        raise DataError(f"cannot read NB201 table {str(p)!r}: {exc.strerror}") from None
    key = str(p.resolve())
    hit = _TABLES.get(key)
    if hit is not None and hit[0] == st.st_mtime and hit[1] == st.st_size:
        return hit[2]
    try:
        raw = p.read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read NB201 table {str(p)!r}: {exc}") from None
    table = parse_table(text, str(p))
    _TABLES[key] = (st.st_mtime, st.st_size, table)
    return table
