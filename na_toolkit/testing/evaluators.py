"""`check_evaluator`: the evaluator contract (docs/plugin_hooks.md, `na_register_evaluators`) as one call.

An evaluator is built the way a search builds it (`make_evaluator`: `from_toolkit(toolkit, **options)`),
refuses an unknown option, accepts the seed network in `check` (when it has one), and answers each network
with an `EvaluationResult` the search accepts (`result_problems`: that network's hash, accuracies fractions
in [0, 1], a training time >= 0) the run store can keep; a fresh instance gives the same figures (`FIGURES`: the
accuracies, epochs, dataset and seed; a measured training time may differ), as a task run as a worker runs it
does (`run_task`: the network and the result through JSON). Run to run the same figures is what a search's
reproducibility rests on: a seeded search evaluates what the figures before it lead to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import NAToolkitError, describe
from ..evaluation import make_evaluator
from ..evaluation.base import EvaluationResult, Evaluator, result_problems
from ..search.executors import Task, run_task
from ..store.codec import to_json_value
from ._common import expect, fail, listed, resolve_options_class, toolkit_or_default

if TYPE_CHECKING:  # pragma: no cover
    from ..ir.architecture import Architecture
    from ..toolkit import Toolkit


@dataclass(frozen=True)
class EvaluatorResult:
    """What `check_evaluator` found (every check passed): one result per network."""

    name: str
    results: tuple[EvaluationResult, ...]


def check_evaluator(
    evaluator: type[Evaluator] | str,
    toolkit: Toolkit | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    seeds: Sequence[str | Architecture] = ("simple-cnn",),
) -> EvaluatorResult:
    """Check an evaluator class against its contract; raise AssertionError (`ConformanceError`) naming the
    evaluator, the network and what broke. evaluator: the class, or its name in `toolkit.evaluators`;
    options: its options (small ones: each network is evaluated three times); seeds: the networks (seed
    names or architectures) to evaluate, the first also given to `check`."""
    tk = toolkit_or_default(toolkit)
    name, _cls, label, options = resolve_options_class(tk.evaluators, evaluator, "evaluator", Evaluator, options)
    archs = [tk.seed(s) if isinstance(s, str) else s for s in listed(seeds, "seeds")]
    expect(archs, label, "no network to evaluate: give seeds")
    first, again = _build(name, options, tk, label), _build(name, options, tk, label)
    check = getattr(first, "check", None)
    if check is not None:
        try:
            check(archs[0])
        except NAToolkitError as exc:
            fail(label, f"check() refuses {archs[0].name or archs[0].hash!r}: {exc}")
    plan = first.training_plan()
    from ..timemodels.training import TrainingPlan

    expect(plan is None or isinstance(plan, TrainingPlan), label, f"training_plan() gave {type(plan).__name__}")
    results = []
    for arch in archs:
        where = f"{label} on {arch.name or arch.hash!r}"
        result = _evaluate(first, arch, where)
        problems = result_problems(result, arch)
        expect(not problems, where, f"evaluate() answered what a search refuses: {'; '.join(problems)}")
        try:
            to_json_value(result.to_json())
        except NAToolkitError as exc:
            fail(where, f"the run store cannot keep its result ({exc}): `extra` holds JSON values or numpy arrays")
        repeat = _evaluate(again, arch, where)
        expect(
            _figures(repeat) == _figures(result),
            where,
            f"another instance answers otherwise ({_difference(repeat, result)}): the ground truth must be a "
            "function of the network and the options (seed every random draw from an option, e.g. `seed`)",
        )
        task = Task("evaluate", arch.to_json(), name, options, selection=tk.selection.to_json())
        answer = run_task(task, tk)
        expect(answer.error is None, where, f"run as a worker runs it (run_task), it failed: {answer.error}")
        worker = EvaluationResult.from_json(answer.value or {})
        expect(
            _figures(worker) == _figures(result),
            where,
            f"run as a worker runs it (run_task) it answers otherwise ({_difference(worker, result)})",
        )
        results.append(result)
    return EvaluatorResult(name, tuple(results))


def _build(name: str, options: dict[str, Any], tk: Toolkit, label: str) -> Evaluator:
    try:
        return make_evaluator(name, options, tk)
    except Exception as exc:
        fail(label, f"make_evaluator(options={options}) raised {describe(exc)}")


def _evaluate(ev: Evaluator, arch: Architecture, where: str) -> Any:
    try:
        return ev.evaluate(arch)
    except Exception as exc:
        fail(where, f"evaluate() raised {describe(exc)}")


#: what a search selects on and reports of an evaluation (a measured training time may differ run to run)
FIGURES = ("arch_hash", "valid_accuracy", "test_accuracy", "epochs", "best_epoch", "dataset", "seed")


def _figures(result: Any) -> tuple[Any, ...]:
    return tuple(getattr(result, k, None) for k in FIGURES)


def _difference(got: Any, want: EvaluationResult) -> str:
    """The figures in which `got` differs from `want`."""
    return "differs in " + ", ".join(k for k, a, b in zip(FIGURES, _figures(got), _figures(want)) if a != b)
