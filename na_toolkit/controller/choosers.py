"""How the controller picks one value of a masked categorical (the move selector and each parameter head):
`Controller.decide(archs, rng, choose=...)`. A chooser takes the categorical's probabilities (float64, 0 for
a masked value) and the search's numpy RNG and returns the index chosen, which must be one of positive
probability. `sample` (the default) draws from the policy; `top_k(k)` draws among its k most probable
values only (k = 1: greedy decoding), as a strategy that exploits the policy instead of sampling it would;
`temperature(t)` draws from the policy sharpened (t < 1) or flattened (t > 1). Each draws one number from the
RNG per call, so a run stays a function of its seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ConfigError

#: a chooser: (probabilities over one categorical's values, the RNG) -> the index chosen
Chooser = Callable[[np.ndarray, np.random.Generator], int]


def sample(probs: np.ndarray, rng: np.random.Generator) -> int:
    """Draw from the categorical with the search's numpy RNG (so a run is a function of its seed), never
    torch's."""
    cdf = np.cumsum(probs)
    i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return min(i, len(cdf) - 1)


def top_k(k: int) -> Chooser:
    """A chooser that draws among the `k` most probable admitted values, in proportion to their
    probabilities (ties broken by index); k = 1 takes the most probable (greedy)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"top_k takes an int k >= 1, got {k!r}")

    def choose(probs: np.ndarray, rng: np.random.Generator) -> int:
        admitted = np.flatnonzero(probs > 0)
        if len(admitted) == 0:
            return sample(probs, rng)
        best = admitted[np.argsort(-probs[admitted], kind="stable")[:k]]
        return int(best[sample(probs[best], rng)])

    choose.__name__ = f"top_{k}"
    return choose


def temperature(t: float) -> Chooser:
    """A chooser that draws from the categorical at temperature `t`: probabilities raised to 1/t and
    renormalised over the admitted values (t = 1: `sample`; t < 1 nearer greedy, t > 1 nearer uniform), so a
    strategy explores more or less than its policy without retraining it."""
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < float("inf"):
        raise ConfigError(f"temperature takes a finite t > 0, got {t!r}")

    def choose(probs: np.ndarray, rng: np.random.Generator) -> int:
        admitted = probs > 0
        if not admitted.any():
            return sample(probs, rng)
        logp = np.where(admitted, np.log(np.where(admitted, probs, 1.0)) / t, -np.inf)
        return sample(np.exp(logp - logp.max()), rng)

    choose.__name__ = f"temperature_{t:g}"
    return choose


def pick(probs: np.ndarray, rng: np.random.Generator, choose: Chooser = sample) -> int:
    """`choose(probs, rng)`, checked: an index of a value the masks admit (probability > 0)."""
    i = choose(probs, rng)
    if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < len(probs) or probs[i] <= 0:
        name = getattr(choose, "__name__", repr(choose))
        raise ConfigError(
            f"chooser {name} picked {i!r} of {len(probs)} values, not one the masks admit (probability > 0)"
        )
    return int(i)
