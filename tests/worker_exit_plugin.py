"""An evaluator plugin whose worker process dies once, for tests/test_interrupts.py: `exits-once` ends the
process that runs it (as the out-of-memory killer would) the first time it evaluates a network, marked by a
file in the folder its `marker` option names; every other evaluation is the synthetic evaluator's."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ConfigDict

import na_toolkit
from na_toolkit.evaluation.synthetic import SyntheticEvaluator


class ExitsOnce(SyntheticEvaluator):
    name = "exits-once"
    description = "synthetic, but the process running the first evaluation dies (exit status 3)"

    class Options(SyntheticEvaluator.Options):
        model_config = ConfigDict(strict=True)

        marker: str = ""

    def __init__(self, marker: str = "", **options):
        super().__init__(**options)
        self.marker = marker

    def evaluate(self, arch):
        mark = Path(self.marker) / "died"
        if self.marker and not mark.exists():
            mark.write_text(arch.hash)
            os._exit(3)
        return super().evaluate(arch)


@na_toolkit.hookimpl
def na_register_evaluators(registry):
    registry.add(ExitsOnce)
