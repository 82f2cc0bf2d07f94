"""Built-in benchmarks (`na-toolkit bench NAME`), registered through `na_register_benchmarks` exactly like a
plugin's: `ir` (IR speed and ONNX parity), `latency` (learned and roofline latency vs measured),
`architecture` (the shape of the code base: layering, import cycles, module sizes, mypy, reproduced
figures), `train-time` (estimated vs measured training time) and `fuzz` (malformed inputs through the CLI:
clean errors, tracebacks, hangs, wrong accepts).
`fewshot-profile`: a few-shot profile (N measurements with other devices' profiles) against a full one.
`inheritance`: searches with weight inheritance against searches from scratch (accuracy, epochs spent);
`inheritance-recovery`: how damaged approximate starts recover over fine-tuning epochs.
`executor`: scale-out (task overheads, the asynchronous loop, fleets real and simulated, faults; docs/scale.md).
The NAS-Bench-201 benchmarks come with the NB201 plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

import na_toolkit
from na_toolkit.bench import (
    architecture,
    executor,
    faults,
    fewshot_profile,
    fuzz,
    inheritance,
    inheritance_recovery,
    ir,
    latency,
    train_time,
)

if TYPE_CHECKING:
    from na_toolkit.toolkit import BenchmarkRegistry

BENCHMARKS = (
    ir.BENCHMARK,
    latency.BENCHMARK,
    architecture.BENCHMARK,
    fuzz.BENCHMARK,
    faults.BENCHMARK,
    train_time.BENCHMARK,
    fewshot_profile.BENCHMARK,
    inheritance.BENCHMARK,
    inheritance_recovery.BENCHMARK,
    executor.BENCHMARK,
)


@na_toolkit.hookimpl
def na_register_benchmarks(registry: BenchmarkRegistry) -> None:
    for benchmark in BENCHMARKS:
        registry.add(benchmark)
