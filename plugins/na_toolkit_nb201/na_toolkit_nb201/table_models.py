"""Ground truth and latency read from the NB201 table: the evaluator `nb201-table` and the time model
`nb201-table`. Both take `table=PATH` (any CSV in the layout of the shipped one) and look an architecture up
by its cell (`nb201_cell_of`); an architecture outside the space is an error, never a guess."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from na_toolkit.errors import ArchitectureError, ConfigError, DataError, TimeModelError
from na_toolkit.evaluation.base import EvaluationResult, Evaluator, TrainingRows
from na_toolkit.ir.architecture import Architecture
from na_toolkit.timemodels.base import FigureSource, TimeEstimate, TimeModel

from .space import DATASETS, canonical_cell, nb201_architecture, nb201_architecture_for, nb201_cell_of
from .table import (
    LATENCY_PREFIX,
    NB201Table,
    column_unit,
    default_table_path,
    finite_rows,
    load_table,
    packaged_table_path,
)

if TYPE_CHECKING:
    from na_toolkit.ir.layers import LayerTypeRegistry

#: dataset -> (validation column used by the search, test column for reporting), per epoch budget.
#: CIFAR-100 and ImageNet16-120 have no separate 200-epoch validation split in NATS-Bench's per-seed data:
#: their `valtest` column is what a search may see. It is NAS-Bench-201's "valtest", the valid and test halves
#: together (the whole original test set), so it holds the test half that is reported: its difference from
#: the test column has a standard deviation of 0.21 points on CIFAR-100 (0.34 on ImageNet16-120), where two
#: disjoint halves differ by 0.63 (0.72; the 12-epoch columns, tests/test_nb201_valtest.py). Test accuracies
#: reported on c100 / in16 are optimistic: about 0.1-0.3 points for the best of 100-1,000 cells (docs/nb201.md).
ACCURACY_COLUMNS: dict[tuple[str, int], tuple[str, str]] = {
    ("c10", 200): ("c10_valid_acc_200ep", "c10_test_acc_200ep"),
    ("c100", 200): ("c100_valtest_acc_200ep", "c100_test_acc_200ep"),
    ("in16", 200): ("in16_valtest_acc_200ep", "in16_test_acc_200ep"),
    ("c10", 12): ("c10_valid_acc_12ep", "c10_test_acc_12ep"),
    ("c100", 12): ("c100_valid_acc_12ep", "c100_test_acc_12ep"),
    ("in16", 12): ("in16_valid_acc_12ep", "in16_test_acc_12ep"),
}

DATASET_NAMES = {"c10": "cifar10", "c100": "cifar100", "in16": "imagenet16-120"}
#: HELP measured the GPUs at batch 1, 32 and 256 (the column suffix); every other device at batch 1
GPU_BATCH_SUFFIXES = ("1", "32", "256")
#: who produced each latency column of the shipped table, by device (data/SOURCE.md): what the device is, whose
#: data it is, and whether it was measured on the device or computed (a simulator, an FPGA design's synthesis)
HELP = "HELP (Lee et al., NeurIPS 2021)"
HW_NAS_BENCH = "HW-NAS-Bench (Li et al., ICLR 2021)"
TABLE_DEVICES: dict[str, tuple[str, str, bool]] = {
    "1080ti": ("an NVIDIA GTX 1080 Ti", HELP, True),
    "2080ti": ("an NVIDIA RTX 2080 Ti", HELP, True),
    "titan_rtx": ("an NVIDIA Titan RTX", HELP, True),
    "gold_6226": ("an Intel Xeon Gold 6226", HELP, True),
    "silver_4114": ("an Intel Xeon Silver 4114", HELP, True),
    "pixel2": ("a Google Pixel 2 phone", HELP, True),
    "pixel3": ("a Google Pixel 3 phone", HW_NAS_BENCH, True),
    "raspi4": ("a Raspberry Pi 4", HW_NAS_BENCH, True),
    "eyeriss": ("the Eyeriss ASIC, simulated", HW_NAS_BENCH, False),
    "fpga": ("an FPGA design, synthesised", HW_NAS_BENCH, False),
}


def _cell(arch: Architecture | str) -> str:
    return canonical_cell(arch) if isinstance(arch, str) else nb201_cell_of(arch)


class NB201TableEvaluator(Evaluator):
    """Options: `dataset` (c10 | c100 | in16, default c10), `epochs` (200 or 12: NB201's full and
    low-fidelity budgets), `table` (a CSV path; default the shipped table).

    Accuracies are fractions in [0, 1] (the table holds percent; `extra` keeps the percent values);
    `train_time_s` is the table's total training time for 200 epochs, scaled to `epochs`."""

    name = "nb201-table"
    description = "NAS-Bench-201 ground truth looked up in the table (valid/test accuracy, training time)"

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.dataset = str(options.get("dataset", "c10"))
        self.epochs = int(options.get("epochs", 200))
        if (self.dataset, self.epochs) not in ACCURACY_COLUMNS:
            raise ConfigError(
                f"nb201-table evaluator: dataset must be one of {', '.join(DATASETS)} and epochs 200 or 12, "
                f"got dataset={self.dataset!r} epochs={self.epochs}"
            )
        self.valid_column, self.test_column = ACCURACY_COLUMNS[(self.dataset, self.epochs)]
        self.time_column = f"{self.dataset}_train_time_s_200ep"
        self._table: NB201Table | None = None
        self._table_path = options.get("table")

    def __getstate__(self) -> dict[str, Any]:
        # executors pickle evaluators into worker processes: send the options, each worker loads the table
        return {**self.__dict__, "_table": None}

    @classmethod
    def training_rows(
        cls, target: str, count: int, seed: int, layer_types: LayerTypeRegistry, table: str | None = None
    ) -> TrainingRows:
        """`count` random cells of the table (`seed` chooses them) with their `target` column: what
        `na-toolkit predict fit --from nb201-table` fits a predictor on. The networks are the CIFAR-10 ones,
        built with `layer_types`."""
        data = load_table(table)
        if not data.has(target):  # e.g. the default CIFAR-10 column on a table of other datasets
            raise DataError(
                f"NB201 table {data.path} has no column {target!r} to fit on; choose the target "
                f"(`predict fit --target`) among its columns: {', '.join(data.columns)}"
            )
        known = finite_rows(data, target)  # a cell without a value (a blank field) is no training row
        if count < 1 or count > len(known):
            raise ConfigError(
                f"the number of training rows (--train) must be 1..{len(known)} (the cells with a {target} value), "
                f"got {count}"
            )
        rows = known[np.random.default_rng(seed).permutation(len(known))[:count]]
        archs = [nb201_architecture(data.arch_strs[i], layer_types=layer_types) for i in rows]
        values = [float(v) for v in data.column(target)[rows]]
        unit, valid_range = column_unit(target)
        source = {"table": data.path, "rows": int(len(rows)), "seed": seed}
        return TrainingRows(archs, values, source, unit, valid_range)

    @property
    def table(self) -> NB201Table:
        if self._table is None:
            table = load_table(self._table_path)
            table.require(self.valid_column, self.test_column)
            self._table = table
        return self._table

    def check(self, arch: Architecture) -> None:
        """ArchitectureError unless `arch` is an NB201 network, and DataError unless the table holds the
        accuracy columns: a search checks its seed so before paying for anything (a seed outside the space
        failed its evaluation, no move led back into the space, and the search ended with exit 0). A cell that
        a partial table lacks is not refused here: the search may go on from the seed to cells it holds."""
        _cell(arch)
        self.table  # noqa: B018 (read: the file and its accuracy columns)

    def evaluate(self, arch: Architecture | str) -> EvaluationResult:
        cell = _cell(arch)
        table = self.table
        row = table.row_of(cell)
        valid_pct = float(table.column(self.valid_column)[row])
        test_pct = float(table.column(self.test_column)[row])
        for column, value in ((self.valid_column, valid_pct), (self.test_column, test_pct)):
            if not np.isfinite(value):  # a blank field: the evaluation fails, it is not a guess
                raise DataError(f"NB201 table {table.path} has no {column} value for cell {cell!r} (a blank field)")
        train_time_s = None
        if table.has(self.time_column) and np.isfinite(table.column(self.time_column)[row]):
            train_time_s = float(table.column(self.time_column)[row]) * self.epochs / 200
        arch_hash = (arch if isinstance(arch, Architecture) else nb201_architecture_for(cell, self.dataset)).hash
        return EvaluationResult(
            arch_hash=arch_hash,
            valid_accuracy=valid_pct / 100.0,
            test_accuracy=test_pct / 100.0,
            train_time_s=train_time_s,
            epochs=self.epochs,
            evaluator=self.name,
            dataset=DATASET_NAMES[self.dataset],
            extra={
                "arch_index": int(table.arch_index[row]),
                "arch_str": cell,
                "dataset": self.dataset,
                "valid_accuracy_pct": valid_pct,
                "test_accuracy_pct": test_pct,
                "valid_column": self.valid_column,
                "test_column": self.test_column,
            },
        )


class NB201TableTimeModel(TimeModel):
    """Latency measured on a device, read from the table's `lat_<device>` column.

    `device` names the column: `lat_gold_6226`, or `gold_6226`; for GPUs measured at several batch sizes
    (`titan_rtx_1`, `_32`, `_256`) the bare name `titan_rtx` picks the column of the requested batch size.
    Latencies are those of the CIFAR-10 network of the cell, in ms per batch."""

    name = "nb201-table"
    description = "NAS-Bench-201 latency looked up in the table (each lat_<device> column is a device)"

    def __init__(self, device: str = "gold_6226", table: str | None = None):
        # named parameters, not **options: a misspelt option is refused, never silently ignored
        super().__init__(device=device, table=table)
        self._table: NB201Table | None = None
        self._check_device()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_table": None}

    def _check_device(self) -> None:
        """A device the table has no latency column of, at any batch size, is refused when the model is made:
        found at each estimate instead, a search spent its whole budget on candidates it could not measure
        and ended with exit 0 (`device = "pixel"` for `pixel3`)."""
        from na_toolkit.validation import did_you_mean

        try:
            table = self.table
        except DataError:  # said where the table is read (a search config's missing `table` path before the run)
            return
        dev = self._device_name()
        columns = [c[len(LATENCY_PREFIX) :] for c in table.devices]
        # `lat_<device>_<batch size>`: the bare name picks the batch size's column (column_for)
        bases = [c.rsplit("_", 1)[0] for c in columns if c.rsplit("_", 1)[-1].isdigit()]
        # a base named bare is a device measured at several batch sizes (titan_rtx: _1, _32, _256), or at one of
        # the GPU batch sizes, not a model number's prefix: `gold` for gold_6226 was accepted here and then
        # failed at every estimate ("no latency column for device 'gold' at batch size 1")
        batched = {c.rsplit("_", 1)[0] for c in columns if c.rsplit("_", 1)[-1] in GPU_BATCH_SUFFIXES}
        several = sorted({b for b in bases if bases.count(b) > 1})
        if dev in columns or dev in several or dev in batched:
            return
        bare = f" (or {', '.join(several)}: the column of the batch size)" if several else ""
        raise TimeModelError(
            f"nb201-table: no latency column for device {self.device!r} in {table.path}; devices: "
            f"{', '.join(columns) or '(none)'}{bare}.{did_you_mean([dev], columns + several)}"
        )

    @property
    def table(self) -> NB201Table:
        if self._table is None:
            self._table = load_table(self.options.get("table"))
        return self._table

    def _device_name(self) -> str:
        return self.device[len(LATENCY_PREFIX) :] if self.device.startswith(LATENCY_PREFIX) else self.device

    def check_batch_size(self, batch_size: int) -> None:
        """A search checks its device's batch size when it starts (`column_for` raises where the table has no
        column at it: `titan_rtx` at 8), not at each estimate, which spent the budget on failures."""
        self.column_for(batch_size)

    def column_for(self, batch_size: int = 1) -> str:
        """The device's column at `batch_size`: `lat_<device>_<batch_size>` where the table has it (a device
        measured at several batch sizes), else `lat_<device>`."""
        table = self.table
        dev = self._device_name()
        for candidate in (f"{LATENCY_PREFIX}{dev}_{batch_size}", f"{LATENCY_PREFIX}{dev}"):
            if table.has(candidate):
                return candidate
        known = ", ".join(c[len(LATENCY_PREFIX) :] for c in table.devices) or "(none)"
        raise TimeModelError(
            f"nb201-table: no latency column for device {self.device!r} at batch size {batch_size} in {table.path}; "
            f"devices: {known}"
        )

    def figure_source(self, figure: str) -> FigureSource | None:
        """The latency is read from the table: measured by others on their device (the shipped table's
        authors, `TABLE_DEVICES`), not on this machine; Eyeriss and FPGA latencies are computed, not measured.
        The table gives no other figure."""
        if figure != "latency_ms":
            return None
        dev = self.device[len(LATENCY_PREFIX) :] if self.device.startswith(LATENCY_PREFIX) else self.device
        path = Path(self.options["table"]) if self.options.get("table") else default_table_path()
        base = dev.rsplit("_", 1)[0] if dev.rsplit("_", 1)[-1] in GPU_BATCH_SUFFIXES else dev
        known = TABLE_DEVICES.get(dev) or TABLE_DEVICES.get(base)
        if path.resolve() != packaged_table_path().resolve() or known is None:  # a table of the user's
            return FigureSource("measured elsewhere", f"table: {path.name}, {dev}; not measured here")
        what, source, measured = known
        if not measured:
            return FigureSource("estimated", f"table: {source}, {dev}: {what} by its authors, not measured")
        how = f"table: {source}, {dev}: measured by its authors on {what}, not here"
        return FigureSource("measured elsewhere", how)

    def estimate(self, arch: Architecture | str, batch_size: int = 1) -> TimeEstimate:
        column = self.column_for(batch_size)
        table = self.table
        try:
            cell = _cell(arch)
            row = table.row_of(cell)
        except (ArchitectureError, DataError) as exc:
            # outside the space, or a cell a partial table lacks: the table says nothing about it
            raise TimeModelError(f"nb201-table: {exc}") from None
        latency_ms = float(table.column(column)[row])
        if not np.isfinite(latency_ms):  # a blank field: nothing known of this cell there (scored as failed)
            raise TimeModelError(f"nb201-table: table {table.path} has no {column} value for cell {cell!r}")
        suffix = column.rsplit("_", 1)[-1]
        # the batch the column holds: HELP's GPU suffixes, or the requested batch when the table has the
        # device's column at that batch size (`lat_edgegpu_8` for `edgegpu` at batch 8); else 1
        by_batch = column == f"{LATENCY_PREFIX}{self._device_name()}_{batch_size}"
        table_batch = batch_size if by_batch else int(suffix) if suffix in GPU_BATCH_SUFFIXES else 1
        warnings: list[str] = []
        if table_batch != batch_size:
            warnings.append(
                f"the table measured batch {table_batch}, not {batch_size}; latency is per batch of {table_batch}"
            )
        if isinstance(arch, Architecture) and arch.output_shape != (10,):
            warnings.append("the table's latencies are of the CIFAR-10 network (10 classes)")
        return TimeEstimate(
            time_model=self.name,
            device=column[len(LATENCY_PREFIX) :],
            batch_size=table_batch,
            latency_ms=latency_ms,
            warnings=tuple(warnings),
            details={"arch_index": int(table.arch_index[row]), "arch_str": cell, "column": column},
        )
