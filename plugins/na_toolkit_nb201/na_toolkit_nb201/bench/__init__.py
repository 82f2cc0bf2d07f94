"""The NAS-Bench-201 benchmarks, registered by the plugin through `na_register_benchmarks` (they need the
plugin's table): `na-toolkit bench nb201-search | predictor | fewshot-latency`. See docs/nb201.md."""

from __future__ import annotations

from .fewshot_latency import BENCHMARK as FEWSHOT_LATENCY
from .nb201_search import BENCHMARK as NB201_SEARCH
from .predictor import BENCHMARK as PREDICTOR

BENCHMARKS = (PREDICTOR, FEWSHOT_LATENCY, NB201_SEARCH)

__all__ = ["BENCHMARKS", "FEWSHOT_LATENCY", "NB201_SEARCH", "PREDICTOR"]
