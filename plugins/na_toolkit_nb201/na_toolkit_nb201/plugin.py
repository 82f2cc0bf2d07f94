"""The NB201 plugin's hooks (entry point `nb201` in group `na_toolkit`). Loading it reads no data: the
table is parsed on first use."""

from __future__ import annotations

import na_toolkit
from na_toolkit.ir.seeds import Seed

from .move import SetEdgeOp
from .space import RESNET_CELL, nb201_architecture
from .table_models import NB201TableEvaluator, NB201TableTimeModel


def resnet_cell_network():
    return nb201_architecture(RESNET_CELL)


SEED = Seed(
    "nb201",
    f"NAS-Bench-201 CIFAR-10 network with the paper's ResNet cell {RESNET_CELL}",
    resnet_cell_network,
    "cifar10",
)


@na_toolkit.hookimpl
def na_register_seeds(registry):
    registry.add(SEED)


@na_toolkit.hookimpl
def na_register_operations(registry):
    registry.add(SetEdgeOp())


@na_toolkit.hookimpl
def na_register_evaluators(registry):
    registry.add(NB201TableEvaluator)


@na_toolkit.hookimpl
def na_register_time_models(registry):
    registry.add(NB201TableTimeModel)
