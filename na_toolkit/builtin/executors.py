"""Built-in executors plugin: `local` (process pool) and `ray` (extra; Ray is imported only when used)."""

from __future__ import annotations

import na_toolkit
from na_toolkit.search.executors import LocalExecutor, RayExecutor


@na_toolkit.hookimpl
def na_register_executors(registry):
    registry.add(LocalExecutor)
    registry.add(RayExecutor)
