"""Which weights a candidate's evaluation inherits (`search.inherit_weights`; docs/search.md).

A candidate carries its moves from the seed. Replaying them gives its ancestors; the nearest one that was
evaluated before this candidate is submitted (in `GroundTruth.evaluated`, without error) and has stored
weights is the parent it inherits from, through the moves after it. The decision reads only what the
run has recorded, in the order it recorded it, so a resumed run, which replays that order from the store,
makes the same decision for every stored evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import NAToolkitError
from ..evaluation.inherit import ParentWeights

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..moves import MoveType
    from ..store.base import RunStore
    from .strategy import Candidate
    from .summary import Evaluated


def parent_weights(
    cand: Candidate,
    seed_arch: Architecture,
    move_types: Sequence[MoveType],
    evaluated: Mapping[str, Evaluated],
    store: RunStore,
) -> ParentWeights:
    """The weights `cand` starts from: its nearest evaluated ancestor's (a `ParentWeights` with the moves
    from it), or one without weights whose `reason` says why it trains from scratch."""
    if not cand.moves:
        return ParentWeights(None, None, None, (), "no moves: the seed network trains from scratch")
    by_name = {op.name: op for op in move_types}
    archs = [seed_arch]
    try:
        for move in cand.moves:
            archs.append(by_name[move.name].apply(archs[-1], **move.params))
    except (KeyError, NAToolkitError):
        return ParentWeights(None, None, None, (), "the candidate's moves do not replay from the seed")
    if archs[-1].hash != cand.hash:
        return ParentWeights(None, None, None, (), "the candidate's moves do not lead from the seed to it")
    for i in range(len(archs) - 2, -1, -1):
        ancestor = archs[i]
        ev = evaluated.get(ancestor.hash)
        if ev is None or ev.error is not None:
            continue
        state = store.load_weights(ancestor.hash)
        if state is not None:
            moves = tuple(m.to_json() for m in cand.moves[i:])
            accuracy = ev.result.get("valid_accuracy")
            return ParentWeights(ancestor.hash, ancestor.to_json(), state, moves, "", accuracy)
    return ParentWeights(None, None, None, (), "no ancestor evaluated before it has stored weights")
