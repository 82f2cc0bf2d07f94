"""How long one controller update takes on a network of N nodes (the figure `update_s_at_500_nodes`).

`update_seconds(n_nodes, repeats)` builds a ResNet-like chain of exactly `n_nodes` nodes from the real
layer types (`synthetic_network`), walks 16 episodes of 3 real moves from it with the controller's own
decisions (48 transitions: the strategy's default batch), and returns the median wall-clock seconds of
`Controller.update` on that batch, with the embedding trained, the default dimensions and 2 torch threads.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..ir.builder import ArchitectureBuilder

if TYPE_CHECKING:  # pragma: no cover
    from ..ir.architecture import Architecture
    from ..ir.layers import LayerTypeRegistry
    from ..toolkit import Toolkit

#: the neural-architect strategy's default batch: episodes x episode_length transitions
EPISODES, EPISODE_LENGTH = 16, 3
TORCH_THREADS = 2
MOVES = ("insert_conv", "insert_add", "scale", "remove")
#: stem (conv, bn, relu) + head (global pool, flatten, linear); a block is 7 nodes, a stage change 3
_STEM_HEAD, _BLOCK, _TRANSITION = 6, 7, 3


def synthetic_network(n_nodes: int, layer_types: LayerTypeRegistry) -> Architecture:
    """A ResNet-like network of exactly `n_nodes` nodes (>= 7) on a (3, 32, 32) input: a conv stem, basic
    residual blocks (conv-bn-relu-conv-bn-add-relu) in three stages of 16/32/64 channels joined by strided
    conv-bn-relu transitions, dropout layers filling up the count, then global pool, flatten, linear."""
    if n_nodes < _STEM_HEAD + 1:
        raise ValueError(f"a synthetic network needs at least {_STEM_HEAD + 1} nodes, got {n_nodes}")
    body = n_nodes - _STEM_HEAD
    stages = 3 if body >= 3 * _BLOCK + 2 * _TRANSITION else 1
    blocks = max(0, (body - (stages - 1) * _TRANSITION) // _BLOCK)
    if blocks < stages:
        stages = 1
        blocks = body // _BLOCK
    per_stage = [blocks // stages + (1 if s < blocks % stages else 0) for s in range(stages)]
    filler = body - blocks * _BLOCK - (stages - 1) * _TRANSITION
    b = ArchitectureBuilder((3, 32, 32), name=f"synthetic-{n_nodes}", layer_types=layer_types)
    x = b.layer("relu", b.layer("batchnorm2d", b.layer("conv2d", b.input, filters=16, kernel=3)))
    for stage, n_blocks in enumerate(per_stage):
        width = 16 << stage
        if stage > 0:
            x = b.layer("conv2d", x, filters=width, kernel=3, stride=2)
            x = b.layer("relu", b.layer("batchnorm2d", x))
        for _ in range(n_blocks):
            y = b.layer("relu", b.layer("batchnorm2d", b.layer("conv2d", x, filters=width, kernel=3)))
            y = b.layer("batchnorm2d", b.layer("conv2d", y, filters=width, kernel=3))
            x = b.layer("relu", b.layer("add", y, x))
    for _ in range(filler):
        x = b.layer("dropout", x, rate=0.1)
    x = b.layer("linear", b.layer("flatten", b.layer("global_avg_pool", x)), units=10)
    arch = b.build()
    assert len(arch.nodes) == n_nodes, (len(arch.nodes), n_nodes)
    return arch


def update_batch(controller: Any, seed_arch: Architecture, move_types: list[Any], rng: np.random.Generator) -> tuple:
    """(states, decisions, next_states, rewards): EPISODES episodes of EPISODE_LENGTH moves from `seed_arch`,
    each move the controller's own sampled decision, applied with the real move; the reward is a toy
    function of the parameter count (its values do not change the update's cost)."""
    states: list[Any] = []
    decisions: list[Any] = []
    nexts: list[Any] = []
    live = [seed_arch] * EPISODES
    for _ in range(EPISODE_LENGTH):
        reached = []
        for arch, d in zip(live, controller.decide(live, rng)):
            if d is None:
                continue
            child = move_types[d.op].apply(arch, **d.move.params)
            states.append(arch)
            decisions.append(d)
            nexts.append(child)
            reached.append(child)
        live = reached
    rewards = np.array([-abs(np.log10(a.cost.params) - 5.0) for a in nexts])
    return states, decisions, nexts, rewards


def update_seconds(
    n_nodes: int, repeats: int = 3, toolkit: Toolkit | None = None, threads: int = TORCH_THREADS
) -> float:
    """Median wall-clock seconds of one `Controller.update` on 48 transitions from a synthetic network of
    `n_nodes` nodes (trained embedding, default dimensions, `threads` torch threads), over `repeats` updates.

    An entry point: without `toolkit` it loads the process's default toolkit (for the layer types and moves)."""
    import torch

    from ..embedding import ArchitectureTokenizer
    from .action_space import ActionSpace
    from .policy import Controller

    if toolkit is None:
        from ..plugins import get_toolkit

        toolkit = get_toolkit()
    seed_arch = synthetic_network(n_nodes, toolkit.layer_types)
    move_types = [toolkit.moves.get(name) for name in MOVES]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tokenizer = ArchitectureTokenizer.for_registry(toolkit.layer_types)
        controller = Controller(tokenizer, ActionSpace.from_move_types(move_types), seed=0, train_embedding=True)
        batch = update_batch(controller, seed_arch, move_types, np.random.default_rng(0))
        controller.update(*batch)  # warm-up: the optimizer's first step imports torch._dynamo
        times = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            controller.update(*batch)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return float(np.median(times))
