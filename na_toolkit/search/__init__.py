"""The search: config, reward, strategies' protocol, the loop, the Pareto archive and the run outputs.

    from na_toolkit.search import run_search
    result = run_search("examples/digits-cpu.toml")          # or a dict, or resume="runs/RUN"
    result.best["cpu"], result.pareto, result.counters.evaluations

See docs/search.md.
"""

from .config import ConfigError, SearchConfig, load_config
from .loop import Counters, Evaluated, SearchResult, run_search
from .reward import Budget, Objectives, RewardResult, compute_reward
from .strategy import Candidate, Score, SearchContext, Strategy

__all__ = [
    "Budget", "Candidate", "ConfigError", "Counters", "Evaluated", "Objectives", "RewardResult", "Score",
    "SearchConfig", "SearchContext", "SearchResult", "Strategy", "compute_reward", "load_config", "run_search",
]
