"""Built-in evaluators plugin: `torch` (train on a dataset, measure accuracy and training time) and
`synthetic` (sleeps instead of training: simulation at scale, docs/scale.md)."""

from __future__ import annotations

import na_toolkit


@na_toolkit.hookimpl
def na_register_evaluators(registry):
    # torch_trainer imports torch only inside its methods, so registering stays cheap
    from na_toolkit.evaluation.synthetic import SyntheticEvaluator
    from na_toolkit.evaluation.torch_trainer import TorchEvaluator

    registry.add(TorchEvaluator)
    registry.add(SyntheticEvaluator)
