"""Built-in executors plugin: `local` (process pool), `ray` (extra; Ray is imported only when used) and
`simulated` (a virtual fleet on a simulated clock, for scale studies)."""

from __future__ import annotations

import na_toolkit
from na_toolkit.search.executor_local import LocalExecutor
from na_toolkit.search.executor_ray import RayExecutor
from na_toolkit.search.executor_sim import SimulatedExecutor


@na_toolkit.hookimpl
def na_register_executors(registry):
    registry.add(LocalExecutor)
    registry.add(RayExecutor)
    registry.add(SimulatedExecutor)
