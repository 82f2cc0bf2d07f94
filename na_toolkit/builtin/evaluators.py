"""Built-in evaluators plugin: `torch` (train on a dataset, measure accuracy and training time)."""

from __future__ import annotations

import na_toolkit


@na_toolkit.hookimpl
def na_register_evaluators(registry):
    # torch_trainer imports torch only inside its methods, so registering stays cheap
    from na_toolkit.evaluation.torch_trainer import TorchEvaluator

    registry.add(TorchEvaluator)
