"""A task run in the search's own process evaluates the network it was made from (search/task_arch.py),
with exactly the answer a worker process gives after rebuilding the network from the task's JSON."""

from __future__ import annotations

import pickle
from dataclasses import replace

from conftest import default_toolkit
from na_toolkit.builtin.layers import builtin_layer_types
from na_toolkit.ir.architecture import Architecture
from na_toolkit.search.executors import Task, run_task
from na_toolkit.search.task_arch import ATTACHED, task_architecture, task_for


def _task(arch: Architecture, seed: int = 3) -> Task:
    tk = default_toolkit()
    task = Task("evaluate", arch.to_json(), "synthetic", {"seed": seed}, selection=tk.selection.to_json())
    return task_for(task, arch)


def test_a_task_run_here_uses_its_network_and_answers_as_a_worker_does():
    tk = default_toolkit()
    arch = tk.seed("simple-cnn")
    task = _task(arch)
    assert task_architecture(task, tk.layer_types) is arch  # no rebuild in this process
    travelled = pickle.loads(pickle.dumps(task))  # what a worker process receives
    assert ATTACHED not in travelled.__dict__ and travelled == task
    assert task_architecture(travelled, tk.layer_types) is not arch
    here, worker = run_task(task, tk), run_task(travelled)  # no toolkit: the worker's view, rebuilt from JSON
    assert here.ok and worker.ok and here.worker == worker.worker
    assert here.value == worker.value and here.value["arch_hash"] == arch.hash
    assert ATTACHED not in replace(task, options={"seed": 4}).__dict__  # a copy is another task


def test_a_network_the_json_reader_would_rebuild_otherwise_is_rebuilt():
    tk = default_toolkit()
    # made with another layer-type registry: a worker's network has the toolkit's
    other = Architecture.from_json(tk.seed("simple-cnn").to_json(), builtin_layer_types())
    assert other.layer_types is not tk.layer_types
    rebuilt = task_architecture(_task(other), tk.layer_types)
    assert rebuilt is not other and rebuilt.layer_types is tk.layer_types and rebuilt.hash == other.hash
    # a bool as a dimension: the constructor lets it through, the JSON reader (and so every worker) refuses it
    seed = tk.seed("simple-cnn")
    odd = Architecture((True, *seed.input_shape[1:]), seed.nodes, seed.output, layer_types=tk.layer_types)
    here, worker = run_task(_task(odd), tk), run_task(pickle.loads(pickle.dumps(_task(odd))))
    assert not here.ok and not worker.ok and here.error == worker.error and "ArchitectureError" in here.error
