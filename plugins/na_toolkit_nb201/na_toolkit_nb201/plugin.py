"""The NB201 plugin's hooks (entry point `nb201` in group `na_toolkit`). Loading it reads no data: the
table is parsed on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import na_toolkit
from na_toolkit.ir.seeds import Seed

from .move import SetEdgeOp
from .space import RESNET_CELL, nb201_architecture, parse_spec
from .table_models import NB201TableEvaluator, NB201TableTimeModel

if TYPE_CHECKING:
    from na_toolkit.ir.architecture import Architecture
    from na_toolkit.ir.layers import LayerTypeRegistry


def resnet_cell_network(layer_types: LayerTypeRegistry) -> Architecture:
    return nb201_architecture(RESNET_CELL, layer_types=layer_types)


SEED = Seed(
    "nb201",
    f"NAS-Bench-201 CIFAR-10 network with the paper's ResNet cell {RESNET_CELL}",
    resnet_cell_network,
    "cifar10",
    # `nb201:INDEX` (the table's arch_index) or `nb201:|op~0|+...` (a cell string) wherever a command takes
    # an architecture; a bare cell string too
    parse=parse_spec,
)


@na_toolkit.hookimpl
def na_register_seeds(registry):
    registry.add(SEED)


@na_toolkit.hookimpl
def na_register_moves(registry):
    registry.add(SetEdgeOp())


@na_toolkit.hookimpl
def na_register_evaluators(registry):
    registry.add(NB201TableEvaluator)


@na_toolkit.hookimpl
def na_register_time_models(registry):
    registry.add(NB201TableTimeModel)


@na_toolkit.hookimpl
def na_register_benchmarks(registry):
    from .bench import BENCHMARKS
    from .bench.controller import BENCHMARK as CONTROLLER
    from .bench.transfer import BENCHMARK as TRANSFER

    # `bench controller`: neural-architect's ablations at limited scoring budgets (docs/controller.md)
    # `bench transfer`: ImageNet16-120 from a few cells plus CIFAR columns with descriptors (docs/datasets.md)
    for benchmark in (*BENCHMARKS, CONTROLLER, TRANSFER):
        registry.add(benchmark)
    from .bench.whatif import BENCHMARK as WHATIF

    # `bench whatif`: how the best feasible network changes across a hardware sweep (docs/whatif.md)
    registry.add(WHATIF)
