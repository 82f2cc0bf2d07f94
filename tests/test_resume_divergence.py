"""A resume whose strategy does not retrace the stored run is told (docs/search.md, "Resume and
reproducibility"): the replay must serve every stored evaluation before it pays for a new one, and a
strategy that is not a function of its seed (here: state kept between instances, as a set's iteration
order differs between processes) leaves some behind. Before, the resumed run went its own way in silence:
stored evaluations dropped from the run, the rest unlike the uninterrupted run."""

from __future__ import annotations

import sys

import pytest

import na_toolkit
from killed_run import cut_run
from na_toolkit.plugins import load_toolkit
from na_toolkit.search import run_search
from na_toolkit.search.selection import fill_with_walks, seed_candidate
from na_toolkit.search.strategy import Strategy


class SessionSalted(Strategy):
    """Random walks from the seed; each instance after the first skips some draws: a resume's replay differs."""

    name = "session-salted"
    description = "random walks, unlike itself in every new instance (broken on purpose)"
    instances = 0

    def __init__(self, context, **options):
        super().__init__(context, **options)
        type(self).instances += 1
        self.salt = type(self).instances - 1

    def ask(self, n):
        ctx = self.context
        for _ in range(self.salt):
            ctx.rng.random()
        return fill_with_walks(ctx, n, lambda: seed_candidate(ctx), 2, self.name, tries=20 * n)


@na_toolkit.hookimpl
def na_register_strategies(registry):
    registry.add(SessionSalted)


@pytest.fixture(scope="module")
def tk():
    return load_toolkit(entry_points=False, extra_plugins=(sys.modules[__name__],))


def _config(tmp_path, strategy):
    return {
        "name": "diverge",
        "seed_network": "simple-cnn",
        "evaluations": 6,
        "random_seed": 1,
        "output": str(tmp_path),
        "search": {"per_round": 2, "moves": ["scale", "remove"], "min_fit": 2},
        "strategy": {"name": strategy},
        "evaluator": "synthetic",
        "predictors": {"accuracy": {"name": "bayesian-ridge"}},
    }


@pytest.mark.parametrize("strategy, diverges", [("session-salted", True), ("random", False)])
def test_a_resume_that_leaves_stored_evaluations_behind_says_so_naming_the_strategy(tk, tmp_path, strategy, diverges):
    SessionSalted.instances = 0
    first = run_search(_config(tmp_path, strategy), toolkit=tk, run_dir=tmp_path / "run", progress=False, outputs=False)
    assert len(first.evaluated) == 6
    cut_run(tmp_path / "run", tmp_path / "cut", 4).close()  # the seed and rounds 1, 2 (part of it)
    resumed = run_search(None, resume=tmp_path / "cut", toolkit=tk, progress=False, outputs=False)
    told = [w for w in resumed.warnings if "parted from the stored one" in w]
    if diverges:
        assert [e.hash for e in resumed.evaluated] != [e.hash for e in first.evaluated]
        assert len(told) == 1
        assert f"strategy {strategy!r} (plugin {__name__})" in told[0]
        assert "not proposed again" in told[0] and "a function of its seed" in told[0]
    else:  # a faithful replay: the same run, nothing told
        assert [e.hash for e in resumed.evaluated] == [e.hash for e in first.evaluated]
        assert told == []
