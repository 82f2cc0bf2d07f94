"""`check_strategy` runs the strategy's rounds again in a fresh process with another PYTHONHASHSEED
(docs/testing.md). Before, both of its runs were in one process, so a strategy that iterates over a set of
hashes (an order that differs between processes) passed, and `search --resume` in a new process parted from
the stored run (tests/test_resume_divergence.py). Real subprocesses: this module is the plugin, imported by
name in the child."""

from __future__ import annotations

import sys

import pytest

import na_toolkit
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.selection import fill_with_walks, seed_candidate
from na_toolkit.search.strategy import Strategy
from na_toolkit.testing import ConformanceError, ConformanceWarning, check_strategy

MOVES = ("insert_conv", "scale")


class SetOrder(Strategy):
    """Draws 5n walks from context.rng, then proposes the first n in a set's order: the same in one process,
    another in a process of another hash seed (broken on purpose)."""

    name = "set-order"
    description = "walks, in the iteration order of a set of hashes (broken on purpose)"

    def order(self, hashes: set[str]) -> list[str]:
        return list(hashes)

    def ask(self, n):
        ctx = self.context
        walks = {c.hash: c for c in fill_with_walks(ctx, 5 * n, lambda: seed_candidate(ctx), 2, self.name, 100)}
        return [walks[h] for h in self.order(set(walks))[:n]]


class SortedOrder(SetOrder):
    """The fix the message gives: sort what is iterated over."""

    name = "sorted-order"
    description = "walks, in the sorted order of their hashes"

    def order(self, hashes: set[str]) -> list[str]:
        return sorted(hashes)


class FirstRoundOnly(SortedOrder):
    """Proposes round 0's walks again every round, ignoring what tell gave (broken on purpose): a search stalls."""

    name = "first-round-only"
    description = "round 0's walks, every round (broken on purpose)"

    def ask(self, n):
        if not hasattr(self, "first"):
            self.first = super().ask(n)
        return list(self.first)


class Twice(SortedOrder):
    """Proposes its first walk twice in each ask (broken on purpose): the loop's slot is wasted."""

    name = "twice"
    description = "walks, the first of each ask twice (broken on purpose)"

    def ask(self, n):
        out = super().ask(n)
        return out[:1] + out[: n - 1]


@na_toolkit.hookimpl
def na_register_strategies(registry):
    for cls in (SetOrder, FirstRoundOnly, Twice):
        registry.add(cls)


@pytest.mark.parametrize(
    "name, message",
    [
        ("first-round-only", "round 1: proposes only networks already evaluated: a search stops after"),
        ("twice", r"round 0: proposes [0-9a-f]+ more than once in one ask"),
    ],
)
def test_a_strategy_that_wastes_a_searchs_rounds_fails_the_check(tk, name, message):
    # both passed ("at least one new network over the rounds", which round 0 alone gave), and in a search the
    # first stalled after 8 of 21 evaluations, the second needed 6 rounds for 4 rounds' worth
    with pytest.raises(ConformanceError, match=f"strategy {name!r} {message}"):
        check_strategy(name, tk, moves=list(MOVES), across_processes=False)


@pytest.fixture(scope="module")
def tk():
    return load_toolkit(entry_points=False, extra_plugins=(sys.modules[__name__],))


def test_a_strategy_whose_proposals_follow_the_hash_seed_fails_naming_the_round_the_cause_and_the_fix(tk):
    assert not check_strategy("set-order", tk, moves=MOVES, across_processes=False).across_processes  # as before
    with pytest.raises(ConformanceError) as caught:
        check_strategy("set-order", tk, moves=MOVES)
    message = str(caught.value)
    assert message.startswith("strategy 'set-order': a fresh process (PYTHONHASHSEED=")
    assert "proposes otherwise from seed 0: round 0 proposal " in message
    assert "iterating over a set" in message and "hash() of a string, id(), the time" in message
    assert "Sort what you iterate over" in message and "context.rng" in message and "--resume" in message


def test_a_strategy_that_sorts_passes_given_as_its_class(tk):
    result = check_strategy(SortedOrder, tk, moves=MOVES)  # imported by name there: test_strategy_processes
    assert result.across_processes and result.name == "sorted-order"


def test_a_plugin_another_process_cannot_import_is_told_and_the_rest_still_checked():
    class Plugin:  # an object, not a module: a fresh process cannot rebuild the toolkit
        @staticmethod
        @na_toolkit.hookimpl
        def na_register_strategies(registry):
            registry.add(SetOrder)

    tk = load_toolkit(entry_points=False, extra_plugins=(Plugin,))
    with pytest.warns(ConformanceWarning, match="strategy 'set-order': not checked in a fresh process: the toolkit"):
        result = check_strategy("set-order", tk, moves=MOVES)
    assert not result.across_processes and len(result.proposed) == 3


def test_every_public_name_of_the_kit_is_defined_in_the_module_it_is_imported_from():
    import ast
    from pathlib import Path

    import na_toolkit.testing as kit

    assert kit.__all__ == list(kit._LAZY) and set(dir(kit)) >= set(kit.__all__)
    here = Path(kit.__file__).parent
    for name, module in kit._LAZY.items():  # read, not imported: the modules bring torch and scikit-learn
        tree = ast.parse((here / f"{module}.py").read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert name in defined, f"{name} is not defined in na_toolkit/testing/{module}.py"
