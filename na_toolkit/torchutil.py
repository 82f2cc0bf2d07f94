"""Small torch helpers shared by the controller, the neural predictor and the benchmarks. Importing this
module does not import torch; calling a helper does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .errors import ConfigError, HardwareError
from .machine import parse_device


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op thread count set to `threads` (None or 0: leave it alone), and
    restore the previous count afterwards, whatever happens."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
