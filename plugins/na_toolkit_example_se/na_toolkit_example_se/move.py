"""The `insert_se` move: put a squeeze-and-excitation block right after a layer that outputs a feature map.

Hu et al. (2018) place SE after the last convolution of a block, before the residual add; the controller
learns where it pays, so any feature-map producing node is a valid position, except where an SE block is
already next to it (two gates in a row are redundant).
"""

from __future__ import annotations

import numpy as np

from na_toolkit.errors import MoveError
from na_toolkit.ir import edit
from na_toolkit.ir.architecture import Attrs, Node
from na_toolkit.moves import MoveType, ParamSpec

LAYER = "squeeze_excite"


class InsertSqueezeExcite(MoveType):
    name = "insert_se"
    description = "insert a squeeze-and-excitation block after a feature-map layer (Hu et al. 2018)"
    REDUCTIONS = (4, 8, 16)

    def params(self):
        # The order is the order the controller samples in: first where, then how.
        return (ParamSpec.position("position"), ParamSpec("reduction", self.REDUCTIONS))

    def _position_ok(self, arch, i: int) -> bool:
        node = arch.nodes[i]
        shape = arch.shape(node.id)
        if len(shape) != 3 or shape[0] < min(self.REDUCTIONS):
            return False
        if node.type == LAYER:
            return False
        return all(arch.node(c).type != LAYER for c in arch.consumers[node.id])

    def mask(self, arch, param, chosen):
        if param == "position":  # one entry per node of the network, however many
            if LAYER not in arch.layer_types:  # the layer type's plugin is not loaded in this toolkit
                return np.zeros(len(arch.nodes), dtype=bool)
            return np.array([self._position_ok(arch, i) for i in range(len(arch.nodes))], dtype=bool)
        if param == "reduction":
            channels = arch.shape(arch.nodes[chosen["position"]].id)[0]
            return np.array([r <= channels for r in self.REDUCTIONS], dtype=bool)
        raise MoveError(f"{self.name}: no parameter {param!r}")

    def apply(self, arch, **params):
        self.check(arch, params)  # raises MoveError naming the first inadmissible value
        target = arch.nodes[params["position"]]
        se = Node(arch.new_id("se"), LAYER, Attrs(reduction=params["reduction"]), (target.id,))
        # the block keeps the shape, so nothing downstream changes: every consumer of the target (and the
        # network output, if it was the target) now reads the gated tensor
        return edit.insert_after(arch, target.id, [se])
