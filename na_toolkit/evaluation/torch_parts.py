"""The torch pieces of the `torch` evaluator (`na_toolkit.evaluation.torch_trainer`): the device a name asks for,
the optimizer its options name, and a network's accuracy on a split. torch is imported inside each function."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..torchutil import resolve_device

__all__ = ["accuracy", "make_optimizer", "resolve_device"]  # the device parser lives in torchutil (shared)


def make_optimizer(model, o: dict[str, Any]):
    """SGD with Nesterov momentum, Adam or AdamW over `model`'s parameters, from the evaluator's options."""
    import torch

    params = model.parameters()
    if o["optimizer"] == "sgd":
        return torch.optim.SGD(
            params, lr=o["lr"], momentum=o["momentum"], nesterov=o["momentum"] > 0, weight_decay=o["weight_decay"]
        )
    if o["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=o["lr"], weight_decay=o["weight_decay"])
    return torch.optim.AdamW(params, lr=o["lr"], weight_decay=o["weight_decay"])


def accuracy(model, x, y: np.ndarray, batch: int) -> float:
    """The share of `x` (a tensor on the model's device) that `model` classifies as `y`, in eval mode."""
    import torch

    model.eval()
    predicted = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            predicted.append(model(x[i : i + batch]).argmax(dim=1).cpu().numpy())
    return float(np.mean(np.concatenate(predicted) == y))


def recovery_epochs(options: dict[str, Any]) -> int:
    """Epochs that recover a damaged approximate start: `inherit_recovery_epochs`, by default half of `epochs`
    rounded up: the children the example's searches recover then record about their from-scratch accuracy
    (a median 0.28 points above it over 14 children, benchmarks/inheritance.json; at 3/4 of `epochs` 1.12
    above, benchmarks/inheritance-r6.json), and the recovery bench's single-move children a median one
    validation image below it (benchmarks/inheritance-recovery.json; docs/moves.md, "Weight inheritance")."""
    given = options.get("inherit_recovery_epochs")
    return int(given) if given is not None else max(1, math.ceil(int(options["epochs"]) / 2))
