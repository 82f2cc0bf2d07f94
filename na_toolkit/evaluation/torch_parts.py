"""The torch pieces of the `torch` evaluator (`na_toolkit.evaluation.torch_trainer`): the device a name asks for,
the optimizer its options name, and a network's accuracy on a split. torch is imported inside each function."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, HardwareError
from ..machine import parse_device


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


def resolve_device(name: str) -> Any:
    """A torch.device for "cpu", "cuda", "cuda:N" or "auto"; ConfigError when CUDA is asked for and absent.
    The name is parsed by the one device parser (`na_toolkit.machine.parse_device`)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        spec = parse_device(name)
    except HardwareError:
        raise ConfigError(f"unknown device {name!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if not spec.is_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} was asked for but torch sees no CUDA device (torch {torch.__version__}, "
            f"torch.cuda.is_available() is False); use device 'cpu' or 'auto'"
        )
    if spec.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return torch.device("cuda", spec.index)
