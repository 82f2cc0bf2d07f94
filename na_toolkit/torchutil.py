"""Small torch helpers shared by the controller, the neural predictor and the benchmarks. Importing this
module does not import torch; calling a helper does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


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
