"""What a task's component returned, checked before the loop uses it: an evaluator's result or a time
model's estimate that breaks its contract is a fault of the component, not of the candidate, so it is raised
(naming the component and its plugin) rather than recorded as the candidate's failure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..registry import Registry
    from ..toolkit import Toolkit
    from .executors import Task


def check_answer(task: Task, toolkit: Toolkit, arch: Architecture, answer: Any) -> None:
    """A ComponentError naming the evaluator or time model of `task` and its plugin when `answer` is no valid
    result of it (a fault of the component, not of the candidate, so it is raised rather than recorded)."""
    from ..errors import wrong_answer
    from ..evaluation.base import result_problems
    from ..timemodels.base import estimate_problems

    registry: Registry[Any]
    if task.kind == "evaluate":
        what, registry, problems = "evaluator", toolkit.evaluators, result_problems(answer, arch)
    else:
        what, registry = "time model", toolkit.time_models
        problems = estimate_problems(answer, task.component, task.batch_size)
    if problems:
        plugin = registry.plugin_of(task.component)
        raise wrong_answer(f"{what} {task.component!r}", plugin, f"network {arch.hash} an answer", problems)
