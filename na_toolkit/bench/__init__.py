"""`na-toolkit bench NAME`: benchmarks printing one JSON object (see BENCH.md in the design notes).

Each benchmark is a module here with `configure(parser)` (its arguments) and `run(args) -> dict` (the
figures, at the top level under the names the issues use). The bench command adds "params" and "machine".
"""

from __future__ import annotations

#: benchmark name -> module (imported only when that benchmark runs)
BENCHMARKS: dict[str, str] = {
    "ir": "na_toolkit.bench.ir",
    "latency": "na_toolkit.bench.latency",
    "predictor": "na_toolkit.bench.predictor",
    "fewshot-latency": "na_toolkit.bench.fewshot_latency",
    "nb201-search": "na_toolkit.bench.nb201_search",
}
