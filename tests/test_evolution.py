"""`evolution`'s first population comes from `selection.fill_with_walks`: never a network already evaluated or
proposed, and once the walks near the seed find nothing new, children of the members so far."""

from __future__ import annotations

import pytest

from conftest import default_toolkit
from na_toolkit.builtin.strategies import RegularizedEvolution
from na_toolkit.testing import StrategyCheckContext

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")


def test_the_first_population_never_repeats_a_network_when_the_walks_run_dry():
    """One move from the NB201 seed reaches 24 cells (6 edges x 4 other operations) and the population wants
    30: the walks run dry before it is full. Every proposal is new (before, a slot whose `tries` walks all
    repeated proposed the repeat, and the loop told it again), and the search goes on with children."""
    tk = default_toolkit()
    ctx = StrategyCheckContext(tk.seed("nb201"), [tk.moves.get("set_edge_op")], seed=1)
    evo = RegularizedEvolution(ctx, population=30, sample=3, max_moves=1)
    moves_away = []
    for _ in range(10):
        batch = evo.ask(4)
        assert batch, "evolution stalled with a population short of full"
        hashes = [c.hash for c in batch]
        assert len(set(hashes)) == len(hashes) and not set(hashes) & set(ctx.evaluated), "proposed a repeat"
        assert ctx.seed_arch.hash not in hashes
        evo.tell([(c, ctx.evaluate(c)) for c in batch])
        moves_away += [len(c.moves) for c in batch]
    # all 24 one move away (some asks got fewer than 4 as the walks ran dry), then children, further away
    assert moves_away[:24] == [1] * 24 and min(moves_away[24:]) >= 2 and len(evo.population) == 30
