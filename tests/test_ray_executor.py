"""The `ray` executor on real local Ray clusters: tasks in reused workers, the device fleet (measurements on
the node advertising the device, never beside training), a node lost mid-task, a worker killed
mid-evaluation, the driver killed and resumed, Ctrl-C, and an unreachable cluster (issue: scale-out)."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

ray = pytest.importorskip("ray", reason="needs Ray (make install installs the `ray` extra)")

from conftest import REPO_ROOT, interruptible  # noqa: E402
from na_toolkit.bench.faults import tagged_pids  # noqa: E402
from na_toolkit.errors import ConfigError  # noqa: E402
from na_toolkit.plugins import get_toolkit  # noqa: E402
from na_toolkit.search import run_search  # noqa: E402
from na_toolkit.search.executor_ray import RayExecutor, check_reachable, device_resource  # noqa: E402
from na_toolkit.search.executors import Task  # noqa: E402
from na_toolkit.store import SQLiteRunStore  # noqa: E402

pytestmark = pytest.mark.slow

# A worker that has not registered with its raylet within this many seconds (Ray's default: 60) is killed
# and restarted; on a CPU-starved machine the restarts can repeat until a task waits forever (seen once: a
# device node's measurement never started; ray-project/ray#60040). The raylets these tests start, and the
# searches' own Ray in subprocesses, read it from the environment (RAY_<config name>).
os.environ.setdefault("RAY_worker_register_timeout_seconds", "300")

TAG_ENV = "NA_TOOLKIT_TEST_TAG"
#: small measurement settings (the same protocol)
QUICK = {"warmup_runs": 3, "warmup_s": 0.01, "min_runs": 5, "max_runs": 10, "max_time_s": 0.3}


def _config(tmp_path, **search):
    return {
        "name": "ray",
        "seed_network": "simple-cnn",
        "evaluations": 8,
        "random_seed": 0,
        "output": str(tmp_path),
        "search": {"per_round": 2, "schedule": "async", "moves": ["insert_conv", "scale", "remove"], **search},
        "strategy": {"name": "random"},
        "evaluator": {"name": "synthetic", "options": {"seconds": 0.5}},
        "predictors": {"accuracy": {"name": "ensemble", "options": {"n_estimators": 10}}},
        "executor": {"name": "ray", "options": {"num_cpus": 2}},
    }


# ---- a cluster of three nodes: the head (2 CPUs) and two device nodes (no CPU, one device each) ----------
@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    devices = {}
    for name in ("board-a", "board-b"):
        node = c.add_node(num_cpus=0, resources={device_resource(name): 1})
        devices[name] = node.node_id
    ray.init(address=c.address, log_to_driver=False, configure_logging=False)
    c.wait_for_nodes()
    head = c.head_node.node_id
    yield {"cluster": c, "head": head, "devices": devices}
    ray.shutdown()
    c.shutdown()


def _node(worker: str) -> str:
    return worker.split(":")[0]


def test_tasks_reuse_workers_and_measurements_go_to_their_device_node(cluster):
    tk = get_toolkit()
    ex = RayExecutor()  # joins the cluster this process is connected to, and leaves it running
    ex.toolkit = tk
    arch = tk.seed("simple-cnn")
    sel = tk.selection.to_json()
    evals = ex.run([Task("evaluate", arch.to_json(), "synthetic", {"seconds": 0.2}, selection=sel)] * 6)
    assert all(r.ok for r in evals)
    assert {_node(r.worker) for r in evals} == {cluster["head"]}  # training never on a device node
    assert len({r.worker for r in evals}) <= 3  # workers are reused: each builds the toolkit once
    for name, node in cluster["devices"].items():
        task = Task("measure", arch.to_json(), "roofline", {"device": "x86-cpu"}, selection=sel)
        routed = Task(**{**task.__dict__, "resources": {device_resource(name): 1.0}})
        (r,) = ex.run([routed], exclusive=True)
        assert r.ok and _node(r.worker) == node, (name, r.worker, r.error)
    ex.close()
    assert ray.is_initialized()  # a joined cluster is not shut down by the executor


def test_an_async_search_measures_each_device_on_its_own_node(cluster, tmp_path):
    doc = _config(tmp_path, max_in_flight=2)
    doc["executor"] = {"name": "ray"}
    doc["devices"] = {
        name: {
            "device": "cpu",
            "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
            "measure": {"name": "onnxruntime", "options": {"settings": QUICK}},
            "resource": device_resource(name),
        }
        for name in cluster["devices"]
    }
    res = run_search(doc, progress=False, outputs=False)
    assert len({e.hash for e in res.evaluated}) == 8 and res.counters.measurements == 16
    with SQLiteRunStore.open(res.run_dir) as store:
        for e in res.evaluated:
            for name, node in cluster["devices"].items():
                settings = "measure:batch=1"
                doc_ = store.measurement(e.hash, name, "onnxruntime", settings)
                assert doc_ is not None and _node(doc_["worker"]) == node


def test_a_toolkit_a_ray_worker_cannot_rebuild_is_refused_before_a_run_folder_exists(cluster, tmp_path):
    """A Ray worker rebuilds the toolkit from its plugins, as a local worker process does: a plugin object
    that is no importable module, or an evaluator added to the toolkit directly, was found only in the worker,
    where each evaluation failed and the search spent its budget on nothing."""
    import na_toolkit
    from na_toolkit.plugins import load_toolkit

    class Obj:
        @na_toolkit.hookimpl
        def na_register_seeds(self, registry):
            pass

    doc = {**_config(tmp_path / "runs"), "evaluations": 2}
    doc["executor"] = {"name": "ray"}  # the cluster this module started
    for tk, said in (
        (load_toolkit(extra_plugins=(Obj(),)), "extra plugin objects that are not importable modules"),
        (_with_direct_evaluator(), "evaluators 'synthetic-too' were added to this toolkit directly"),
    ):
        with pytest.raises(ConfigError, match=f"executor 'ray' runs each task in a Ray worker.*{said}.*'local'"):
            run_search(doc, toolkit=tk, progress=False, outputs=False)
        assert not (tmp_path / "runs").exists()


def _with_direct_evaluator():
    from na_toolkit.evaluation.synthetic import SyntheticEvaluator
    from na_toolkit.plugins import load_toolkit

    class Again(SyntheticEvaluator):
        name = "synthetic-too"

    tk = load_toolkit()
    tk.evaluators.add(Again)
    return tk


def test_a_node_lost_mid_task_is_retried_on_another(cluster):
    tk = get_toolkit()
    c = cluster["cluster"]
    spot = c.add_node(num_cpus=1, resources={"spot": 1})
    c.wait_for_nodes()
    ex = RayExecutor(max_retries=3)
    ex.toolkit = tk
    arch = tk.seed("simple-cnn")
    task = Task(
        "evaluate",
        arch.to_json(),
        "synthetic",
        {"seconds": 4.0},
        selection=tk.selection.to_json(),
        resources={"spot": 1},
    )
    ticket = ex.submit(task)
    import ray

    # the task holds the spot node's one "spot" unit once it is placed there: remove the node only then, so the
    # retry is what brings the result (a fixed sleep let a slow machine remove the node before the task began)
    deadline = time.monotonic() + 30
    while ray.available_resources().get("spot", 0) > 0:
        assert time.monotonic() < deadline, "the task never started on the spot node"
        time.sleep(0.05)
    c.remove_node(spot)
    replacement = c.add_node(num_cpus=1, resources={"spot": 1})
    ((t, result),) = ex.wait([ticket])
    assert t == ticket and result.ok, result.error
    assert _node(result.worker) == replacement.node_id
    c.remove_node(replacement)


def test_a_fleet_measurement_that_cannot_start_or_finish_fails_with_a_message(cluster):
    """A measurement routed to a device resource no node advertises, or to a node that does not finish it in
    measure_timeout_s, fails with a message naming the resource and the option instead of waiting forever
    (and a resource waited for in vain once is not waited for again)."""
    tk = get_toolkit()
    c = cluster["cluster"]
    ex = RayExecutor(measure_timeout_s=1.5)
    ex.toolkit = tk
    task = Task(
        "evaluate", tk.seed("simple-cnn").to_json(), "synthetic", {"seconds": 20.0}, selection=tk.selection.to_json()
    )
    nobody = Task(**{**task.__dict__, "resources": {device_resource("nobody"): 1.0}})
    started = time.monotonic()
    (r,) = ex.run([nobody], exclusive=True)
    assert not r.ok and "device:nobody" in r.error and "na-toolkit worker" in r.error
    assert "measure_timeout_s" in r.error and time.monotonic() - started < 10
    started = time.monotonic()  # waited for once: the next measurement there fails at once
    (r,) = ex.run([nobody], exclusive=True)
    assert not r.ok and "device:nobody" in r.error and time.monotonic() - started < 1.0
    slow = c.add_node(num_cpus=0, resources={device_resource("slow-board"): 1})
    c.wait_for_nodes()
    started = time.monotonic()
    (r,) = ex.run([Task(**{**task.__dict__, "resources": {device_resource("slow-board"): 1.0}})], exclusive=True)
    assert not r.ok and "did not finish within 1.5 s" in r.error and "device:slow-board" in r.error
    assert time.monotonic() - started < 15
    c.remove_node(slow)


# ---- the driver's own Ray: subprocess searches killed and resumed ---------------------------------------
def _toml(tmp_path, evaluations=8, **search):
    doc = _config(tmp_path / "runs", **search)
    doc["evaluations"] = evaluations
    lines = [f"{k} = {json.dumps(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for table in ("search", "strategy", "evaluator", "executor"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in doc[table].items()]
    lines.append("[predictors.accuracy]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in doc["predictors"]["accuracy"].items()]
    path = tmp_path / "ray.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml_value(v):
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def _search(*args, env=None):
    full = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray, not the fixture's
    full.update(env or {})
    cmd = [sys.executable, "-m", "na_toolkit.cli.main", "search", *map(str, args)]
    return subprocess.Popen(
        cmd,
        env=full,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,  # the Ctrl-C test's SIGINT must reach it
    )


def _run_folder(tmp_path):
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1
    return runs[0]


def _stored(folder):
    with SQLiteRunStore.open(folder) as store:
        return [r.arch_hash for r in store.evaluations()]


def _no_orphans(tag, wait_s=15.0):
    deadline = time.monotonic() + wait_s
    while tagged_pids(tag) and time.monotonic() < deadline:
        time.sleep(0.5)
    return tagged_pids(tag)


def test_a_worker_killed_mid_evaluation_is_retried_and_stored_once(tmp_path):
    tag = uuid.uuid4().hex
    env = {"NA_TOOLKIT_KILL_AT": "task:2:0.2", "NA_TOOLKIT_KILL_ONCE": str(tmp_path / "killed"), TAG_ENV: tag}
    proc = _search(_toml(tmp_path), "--json", env=env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert (tmp_path / "killed").exists()  # a worker really died mid-task
    hashes = _stored(_run_folder(tmp_path))
    assert len(hashes) == 8 == len(set(hashes))  # none lost, none paid twice
    assert not _no_orphans(tag)


def test_the_driver_killed_then_resumed_on_ray_loses_and_repeats_nothing(tmp_path):
    tag = uuid.uuid4().hex
    proc = _search(_toml(tmp_path), env={"NA_TOOLKIT_KILL_AT": "evaluate:4", TAG_ENV: tag})
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    folder = _run_folder(tmp_path)
    before = _stored(folder)
    assert 1 <= len(before) < 8
    assert not _no_orphans(tag), "Ray's processes outlived the killed driver"
    resumed = _search("--resume", folder, "--json", env={TAG_ENV: tag})
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    after = _stored(folder)
    assert len(after) == 8 == len(set(after)) and after[: len(before)] == before
    summary = json.loads(out)
    assert summary["counters"]["evaluations_replayed"] == len(before)
    assert not _no_orphans(tag)


def test_ctrl_c_stops_a_ray_search_cleanly(tmp_path):
    tag = uuid.uuid4().hex
    # far more evaluations than run before the Ctrl-C, so that stopping early is visible in the store
    path = _toml(tmp_path, evaluations=200)
    proc = _search(path, env={TAG_ENV: tag})
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        runs = list((tmp_path / "runs").glob("*/store.sqlite")) if (tmp_path / "runs").exists() else []
        if runs and len(_stored(runs[0].parent)) >= 2:
            break
        time.sleep(0.3)
    assert proc.poll() is None and len(_stored(_run_folder(tmp_path))) >= 2  # Ctrl-C lands on a running search
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]  # 130: ended by Ctrl-C, as without Ray
    assert err.rstrip().endswith("na-toolkit: interrupted") and "--resume" in err  # it says how to continue
    assert len(_stored(_run_folder(tmp_path))) < 200  # stopped, not finished
    assert not _no_orphans(tag), "Ray's processes outlived a Ctrl-C"


def test_an_unreachable_cluster_is_one_clear_error_naming_the_address(tmp_path):
    with pytest.raises(ConfigError, match="no Ray cluster answers at 127.0.0.1:9.* fix executor.options.address$"):
        check_reachable("127.0.0.1:9", timeout_s=2)
    # `na-toolkit worker --address` names its own flag, not a config key its user never wrote
    with pytest.raises(ConfigError, match=r"no Ray cluster answers at 127.0.0.1:9.* fix --address$"):
        check_reachable("127.0.0.1:9", timeout_s=2, key="--address")
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        check_reachable("nonsense")
    path = _toml(tmp_path)
    path.write_text(path.read_text().replace("num_cpus = 2", 'address = "127.0.0.1:9"'))
    proc = _search(path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "127.0.0.1:9" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_worker_command_starts_a_device_node(run_cli):
    res = run_cli("worker", "--device", "jetson-orin-nano", "--address", "10.0.0.5:6379", "--dry-run")
    assert res.returncode == 0
    assert "--num-cpus=0" in res.stdout and '"device:jetson-orin-nano": 1' in res.stdout
    bad = run_cli("worker", "--device", "../x", "--address", "10.0.0.5:6379", "--dry-run")
    assert bad.returncode == 2 and "device name" in bad.stderr
    # a negative GPU count was printed into the `ray start` line (exit 0), for Ray to refuse once it ran
    bad = run_cli("worker", "--device", "cpu", "--address", "10.0.0.5:6379", "--num-gpus", "-1", "--dry-run")
    assert bad.returncode == 2 and "argument --num-gpus: must be >= 0, got -1" in bad.stderr and not bad.stdout
