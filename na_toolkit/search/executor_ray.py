"""The `ray` executor: evaluations on a Ray cluster, measurements routed to the nodes of a device fleet.

Ray (extra `ray`) is imported only when the executor is built. The driver keeps the single run store; a
Ray task runs `run_task` in a Ray worker process, which Ray keeps between tasks, so a worker rebuilds the
search's toolkit once (`_worker_toolkit` is cached per process), not per task.

Where the time goes. Ray's own start is about 3 s here (GCS, raylet, a first worker); a task round trip is
about 1.5 ms. What makes a Ray search slow is what starts with it when `ray[default]` is installed: the
dashboard and its agents on every node (several Python processes, each importing aiohttp, grpc and the
metrics exporters, and on a machine without network retrying their connections). The dashboard is off unless
`dashboard = true`; with `ray` alone (what the extra installs) a local cluster still has Ray's minimal
dashboard process (usage statistics) and two agents per node (`ray::DashboardAgent`, `ray::RuntimeEnvAgent`),
without aiohttp and the exporters, so far lighter. Ray prints a few lines of its own on stderr at start-up
(`-q` cannot quiet them: they are not written through Python's logging).

A device fleet: a board joins the cluster with `na-toolkit worker --device NAME --address ADDR`, which starts
a Ray node with no CPUs for training and one unit of the custom resource `device:NAME`; a device whose config
names that resource (`[devices.X] resource = "device:NAME"`) has its measurements sent there, one at a time
(each needs the node's single unit), never beside training (the node offers no CPU to training tasks).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from .. import validation
from ..errors import ConfigError
from ..validation import validate_options
from .executor_local import check_toolkit_travels
from .executors import Executor, Task, TaskResult, run_task

if TYPE_CHECKING:
    from ..toolkit import Toolkit

__all__ = ["RAY_MISSING", "RayExecutor", "check_reachable", "device_resource", "run_on_ray"]

RAY_MISSING = "executor 'ray' needs Ray, which is not installed here: pip install 'na-toolkit[ray]'"
#: how long the driver tries to reach a cluster's address before it says no cluster answers there
CONNECT_TIMEOUT_S = 5.0


def device_resource(device: str) -> str:
    """The custom Ray resource a fleet node advertises for `device` (`na-toolkit worker --device`)."""
    return f"device:{device}"


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S, key: str = "executor.options.address") -> None:
    """Raise one ConfigError naming `address` when nothing listens there (instead of Ray's retries, which
    take a minute and end in a traceback); `key`: what the user wrote it as (a config key, or `--address`).
    `auto`, `local` and `ray://` client addresses are left to Ray."""
    if address in ("auto", "local") or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"executor 'ray': address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, what `ray start --head` "
            "prints), 'auto' or 'local'"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConfigError(
            f"executor 'ray': no Ray cluster answers at {address} ({exc.strerror or exc}); start one there with "
            f"`ray start --head --port PORT`, or fix {key}"
        ) from None


def run_on_ray(task: Task) -> TaskResult:
    """`run_task` in a Ray worker; the result's `worker` names the Ray node (`NODE_ID:PID`)."""
    import ray

    result = run_task(task)
    return replace(result, worker=f"{ray.get_runtime_context().get_node_id()}:{os.getpid()}")


class RayExecutor(Executor):
    """Tasks on a Ray cluster (extra `ray`): each evaluation reserves `cpus_per_task` CPUs and
    `gpus_per_task` GPUs (a task's own `gpus` wins when set), and Ray reruns a task whose worker or node was
    lost (`max_retries`); the driver stores each result once, whatever ran twice. Measurements that name a
    device resource go to the fleet node advertising it, and fail with a message past `measure_timeout_s`.
    Options: address (join a cluster; default: start a local one), num_cpus (of a local one), dashboard,
    cpus_per_task, gpus_per_task, max_retries, measure_timeout_s."""

    name = "ray"
    description = "Ray cluster: async tasks, device fleet routing, retries on worker loss (pip install na-toolkit[ray])"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        address: str | None = Field(
            None, description="Ray cluster to join (HOST:PORT or 'auto'; default: $RAY_ADDRESS, else a new local one)"
        )
        num_cpus: int | None = Field(None, ge=1, description="CPUs a local cluster declares (default: this machine's)")
        dashboard: bool = Field(False, description="start Ray's dashboard with a local cluster (needs ray[default])")
        cpus_per_task: float = Field(1.0, ge=0, description="CPUs each evaluation reserves")
        gpus_per_task: float = Field(0.0, ge=0, description="GPUs each task reserves (a task's own `gpus` wins)")
        max_retries: int = Field(3, ge=0, description="reruns of a task whose worker or node was lost")
        measure_timeout_s: float | None = Field(
            600.0,
            gt=0,
            description="longest a measurement sent to a fleet node may take, waiting for a node advertising its "
            "device to join included, before it fails with a message (null: wait forever)",
        )

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        dashboard: bool = False,
        cpus_per_task: float = 1.0,
        gpus_per_task: float = 0.0,
        max_retries: int = 3,
        measure_timeout_s: float | None = 600.0,
    ):
        options = {
            "address": address,
            "num_cpus": num_cpus,
            "dashboard": dashboard,
            "cpus_per_task": cpus_per_task,
            "gpus_per_task": gpus_per_task,
            "max_retries": max_retries,
            "measure_timeout_s": measure_timeout_s,
        }
        validate_options(self.Options, options, "executor.options")
        try:
            import ray
        except ImportError:
            raise ConfigError(RAY_MISSING) from None
        super().__init__(**options)
        self._ray = ray
        #: whether this executor started (and so shuts down) the Ray instance
        self._owns_ray = False
        if not ray.is_initialized():
            # Ray's convention: RAY_ADDRESS names the cluster to join when the config names none
            address = address or os.environ.get("RAY_ADDRESS") or None
            if address is not None:
                check_reachable(address)
                if num_cpus is not None:
                    raise ConfigError("executor 'ray': num_cpus sets a local cluster's size; leave it out with address")
            kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
            if address is None:  # a new local cluster, even when one started by `ray start` runs here
                kwargs.update(num_cpus=num_cpus, include_dashboard=dashboard)
            try:
                ray.init(address=address or "local", **kwargs)
            except ConnectionError as exc:
                raise ConfigError(f"executor 'ray': cannot join the Ray cluster at {address}: {exc}") from None
            self._owns_ray = True
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task
        self.max_retries = max_retries
        self.measure_timeout_s = measure_timeout_s
        #: device resources a measurement waited `measure_timeout_s` for in vain (not waited for again)
        self._absent: set[str] = set()
        self._remote = ray.remote(run_on_ray)
        #: ticket -> object ref of each task still running
        self._refs: dict[int, Any] = {}

    def check_toolkit(self, toolkit: Toolkit) -> None:
        check_toolkit_travels(
            toolkit, "executor 'ray' runs each task in a Ray worker", "use executor 'local' with workers = 1"
        )

    def _submit_ref(self, task: Task) -> Any:
        if task.resources:  # a fleet node's device: one at a time there, and no CPU taken from training
            opts: dict[str, Any] = {"num_cpus": 0, "resources": dict(task.resources)}
        else:
            opts = {"num_cpus": self.cpus_per_task, "num_gpus": task.gpus or self.gpus_per_task}
        return self._remote.options(max_retries=self.max_retries, retry_exceptions=False, **opts).remote(task)

    def _start(self, ticket: int, task: Task) -> None:
        self._refs[ticket] = self._submit_ref(task)

    def _running(self) -> int:
        return len(self._refs)

    def _get(self, ref: Any) -> TaskResult:
        try:
            result: TaskResult = self._ray.get(ref)
            return result
        except self._ray.exceptions.RayError as exc:  # retries exhausted: the task, not the search, failed
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return TaskResult(None, f"Ray task failed: {type(exc).__name__}: {first}", details=str(exc))

    def _collect(self, block: bool) -> None:
        if not self._refs:
            return
        by_ref = {ref: ticket for ticket, ref in self._refs.items()}
        done, _ = self._ray.wait(list(by_ref), num_returns=1, timeout=None if block else 0)
        if done:  # everything else that is ready too, without waiting
            done, _ = self._ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
        for ref in done:
            ticket = by_ref[ref]
            del self._refs[ticket]
            self._finished[ticket] = self._get(ref)

    def _run_exclusive(self, task: Task) -> TaskResult:
        if not task.resources or self.measure_timeout_s is None:
            return self._get(self._submit_ref(task))
        # a fleet measurement: Ray would wait forever for a node advertising the resource, or on a stuck one
        deadline = time.monotonic() + self.measure_timeout_s
        names = ", ".join(sorted(task.resources))
        while True:
            missing = [r for r, n in task.resources.items() if self._ray.cluster_resources().get(r, 0.0) < n]
            if not missing:
                self._absent.difference_update(task.resources)
                break
            if time.monotonic() >= deadline or set(missing) <= self._absent:
                self._absent.update(missing)  # waited for once: later measurements fail at once while absent
                return TaskResult(
                    None,
                    f"no node of the Ray cluster advertises {', '.join(missing)} (waited {self.measure_timeout_s:g} "
                    "s once, executor.options.measure_timeout_s); start one on the device with `na-toolkit worker "
                    "--device NAME --address HEAD:PORT`, or fix the device's `resource`",
                )
            time.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))
        ref = self._submit_ref(task)
        ready, _ = self._ray.wait([ref], num_returns=1, timeout=max(deadline - time.monotonic(), 0.0))
        if ready:
            return self._get(ref)
        try:
            self._ray.cancel(ref)
        except Exception:  # finished meanwhile, or its worker gone
            pass
        return TaskResult(
            None,
            f"the measurement sent to {names} did not finish within {self.measure_timeout_s:g} s "
            "(executor.options.measure_timeout_s): is the node busy, stuck or starved of CPU? Raise the "
            "timeout for slow boards",
        )

    def _drains_for(self, task: Task) -> bool:
        # a measurement routed to a fleet node runs where nothing trains: no need to wait for training
        return not task.resources

    def close(self) -> None:
        """Stop what still runs (Ctrl-C, a failed search): a cluster this executor started is shut down, its
        workers with it; on a joined cluster the tasks in flight are cancelled (not forced: Ray 2.60's core
        worker aborts the driver when a force-cancelled task's reply arrives during shutdown)."""
        ray = self._ray
        if self._owns_ray:
            self._refs.clear()
            if ray.is_initialized():
                ray.shutdown()
            self._owns_ray = False
            return
        for ref in self._refs.values():
            try:
                ray.cancel(ref)
            except Exception:  # already finished, or its worker gone
                pass
        self._refs.clear()
