"""The `synthetic` evaluator: a stand-in for training, for simulating a search at scale.

It trains nothing. An evaluation sleeps for a set time (`seconds`, or a time drawn uniformly from
`[seconds, seconds_max]`, the same for the same network and `seed`), and returns an accuracy that is a
smooth function of the network's size plus a deterministic per-network jitter, so predictors have something
to learn. `docs/scale.md` and `na-toolkit bench executor` use it: tasks that sleep, on a cluster that
declares many CPUs, measure what the driver, the store and the executor cost per evaluation without
paying for training. Never read its accuracies as a measure of anything.
"""

from __future__ import annotations

import math
import time
from typing import Any

from pydantic import ConfigDict, Field

from .. import validation
from ..validation import validate_options
from .base import EvaluationResult, Evaluator


def _unit(arch_hash: str, seed: int, salt: str) -> float:
    """A number in [0, 1) fixed by the network, the seed and `salt`."""
    import hashlib

    digest = hashlib.sha256(f"{arch_hash}:{seed}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SyntheticEvaluator(Evaluator):
    """Sleeps instead of training; accuracy from the network's size (simulation and tests only)."""

    name = "synthetic"
    description = "simulation: sleeps `seconds` instead of training; accuracy from the network's size"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        seconds: float = Field(0.0, ge=0, le=3600, description="time one evaluation takes (its lower end)")
        seconds_max: float | None = Field(
            None, ge=0, le=3600, description="when set: each network's time is drawn from [seconds, seconds_max]"
        )
        seed: int = Field(0, ge=0, description="draws the per-network time and accuracy jitter")
        sleep: bool = Field(True, description="sleep the time (false: only report it, as the simulated executor asks)")

    def __init__(self, seconds: float = 0.0, seconds_max: float | None = None, seed: int = 0, sleep: bool = True):
        options = {"seconds": seconds, "seconds_max": seconds_max, "seed": seed, "sleep": sleep}
        validate_options(self.Options, options, "evaluator.options")
        if seconds_max is not None and seconds_max < seconds:
            from ..errors import ConfigError

            raise ConfigError(f"evaluator 'synthetic': seconds_max ({seconds_max}) is below seconds ({seconds})")
        super().__init__(**options)
        self.seconds = seconds
        self.seconds_max = seconds_max
        self.seed = seed
        self.sleep = sleep

    def seconds_for(self, arch_hash: str) -> float:
        """How long the evaluation of the network `arch_hash` takes."""
        if self.seconds_max is None:
            return self.seconds
        return self.seconds + (self.seconds_max - self.seconds) * _unit(arch_hash, self.seed, "time")

    def evaluate(self, arch: Any) -> EvaluationResult:
        seconds = self.seconds_for(arch.hash)
        if seconds > 0 and self.sleep:
            time.sleep(seconds)
        params = max(1, arch.cost.params)
        # bigger networks score higher, saturating; plus a fixed per-network jitter of up to 5 points
        accuracy = 0.5 + 0.4 * math.tanh(math.log10(params) / 6) + 0.05 * _unit(arch.hash, self.seed, "acc")
        return EvaluationResult(
            arch.hash,
            valid_accuracy=min(1.0, accuracy),
            train_time_s=seconds,
            evaluator=self.name,
            seed=self.seed,
            extra={"synthetic": True},
        )
