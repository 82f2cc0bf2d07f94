"""The move `set_edge_op(edge, op)`: give one edge of the NB201 cell another operation.

It applies to NB201 networks only (recognised by `nb201_cell_of`); on any other architecture every choice
is masked, so a strategy mixing moves simply never picks it there. The mask on `op` removes the edge's
current operation (the move always changes the network)."""

from __future__ import annotations

from typing import Any

import numpy as np

from na_toolkit.errors import MoveError
from na_toolkit.ir.architecture import Architecture
from na_toolkit.moves import MoveType, ParamSpec

from .space import N_EDGES, OPS, cell_string, nb201_architecture, nb201_cell_of, parse_cell


class SetEdgeOp(MoveType):
    name = "set_edge_op"
    description = "NAS-Bench-201: set the operation of cell edge 0..5 (the same cell in all 15 positions)"

    def params(self) -> tuple[ParamSpec, ...]:
        return (ParamSpec("edge", tuple(range(N_EDGES))), ParamSpec("op", OPS))

    def mask(self, arch: Architecture, param: str, chosen: dict[str, Any]) -> np.ndarray:
        cell = nb201_cell_of(arch, default=None)
        if param == "edge":
            return np.full(N_EDGES, cell is not None)
        if param == "op":
            if cell is None or chosen.get("edge") not in range(N_EDGES):
                return np.zeros(len(OPS), dtype=bool)
            current = parse_cell(cell)[chosen["edge"]]
            return np.array([op != current for op in OPS])
        raise MoveError(f"{self.name}: no parameter {param!r}; expected edge, op")

    def apply(self, arch: Architecture, **params: Any) -> Architecture:
        self.check(arch, params)
        ops = list(parse_cell(nb201_cell_of(arch)))
        ops[params["edge"]] = params["op"]
        return nb201_architecture(
            cell_string(ops),
            classes=arch.output_shape[0],
            input_shape=arch.input_shape,  # type: ignore[arg-type]
            layer_types=arch.layer_types,
        )
