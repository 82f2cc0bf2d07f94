"""The search: config, reward, strategies' protocol, the loop in parts, the Pareto archive and the run outputs.

    from na_toolkit.search import run_search
    result = run_search("examples/digits-cpu.toml")          # or a dict, or resume="runs/RUN"
    result.best["cpu"], result.pareto, result.counters.evaluations
    result = open_run("runs/RUN")                             # a finished run, read back (read-only)
    so_far = open_run("runs/RUN", unfinished=True)            # a live or interrupted one, as far as it got

The parts: `build_components` (components.py), `Scorer` (scorer.py), `GroundTruth` (ground_truth.py),
`SearchLoop` (loop.py), `summarize` (summary.py), progress callbacks (progress.py); the run store
protocol and its SQLite and in-memory stores live in `na_toolkit.store`. See docs/search.md.
"""

from .components import Components, build_components
from .config import ConfigError, SearchConfig, load_config
from .finished import open_run
from .ground_truth import GroundTruth
from .loop import SearchLoop, run_search
from .progress import ProgressBar, SearchCallback
from .reward import Budget, Objectives, RewardResult, compute_reward
from .run_folder import resolve_run_dir
from .scorer import Scorer
from .strategy import Candidate, Score, SearchContext, Strategy
from .summary import Counters, Evaluated, SearchResult, summarize

__all__ = [
    "Budget",
    "Candidate",
    "Components",
    "ConfigError",
    "Counters",
    "Evaluated",
    "GroundTruth",
    "Objectives",
    "ProgressBar",
    "RewardResult",
    "Score",
    "Scorer",
    "SearchCallback",
    "SearchConfig",
    "SearchContext",
    "SearchLoop",
    "SearchResult",
    "Strategy",
    "build_components",
    "compute_reward",
    "load_config",
    "open_run",
    "resolve_run_dir",
    "run_search",
    "summarize",
]
