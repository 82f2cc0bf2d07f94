"""The network of a task that runs in the search's own process, without its trip through JSON.

A `Task` carries its network as JSON (`Task.arch_json`) because it may travel to a worker process or a Ray
node, which rebuilds it with `Architecture.from_json`. A task run in the driver's process would pay for that
rebuild (a full validation and shape inference of every node) only to get back the network it was made from;
`task_for` attaches that network to the task, and `task_architecture` hands it to `run_task` instead, where
the rebuild would give the same network: the same layer-type registry, and nothing in it that the JSON reader
refuses (`ir/serialize.py`). Otherwise, and in every worker, the network is rebuilt from `arch_json` as
always. The attached network never travels: pickling a task drops it (`Task.__getstate__`), and a task
copied with `dataclasses.replace` goes without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..ir.layers import LayerTypeRegistry
    from .executors import Task

#: the attribute of a `Task` holding the network its `arch_json` was made from (not a dataclass field: a
#: task's fields are plain data)
ATTACHED = "_arch"
_SCALARS = (int, float, str, bool)


def task_for(task: Task, arch: Architecture) -> Task:
    """`task`, whose `arch_json` is `arch.to_json()`, with `arch` attached for a run in this process."""
    object.__setattr__(task, ATTACHED, arch)
    return task


def task_architecture(task: Task, layer_types: LayerTypeRegistry) -> Architecture:
    """The network of `task` as `Architecture.from_json(task.arch_json, layer_types)` gives it: the attached
    network where that rebuild would give the same one, else the rebuild."""
    from ..ir.architecture import Architecture

    arch = task.__dict__.get(ATTACHED)
    if arch is not None and _rebuilds_to_itself(arch, layer_types):
        return arch
    return Architecture.from_json(task.arch_json, layer_types=layer_types)


def _rebuilds_to_itself(arch: Architecture, layer_types: LayerTypeRegistry) -> bool:
    """Whether `from_json(arch.to_json(), layer_types)` is `arch` again: the same registry, and every field
    of the kind the JSON reader accepts (the constructor alone lets a bool through as a dimension, or a
    tuple as an attribute value, which the reader refuses)."""
    if arch.layer_types is not layer_types or not isinstance(arch.name, str):
        return False
    if any(isinstance(d, bool) for d in arch.input_shape):
        return False
    for node in arch.nodes:
        if not isinstance(node.type, str) or not all(isinstance(v, _SCALARS) for v in node.attrs.to_dict().values()):
            return False
    return True
