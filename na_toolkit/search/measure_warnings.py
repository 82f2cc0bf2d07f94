"""The warnings of a search's measurements, told in the run's warnings (summary.json, report.md, stderr).

A measuring time model puts what makes a figure doubtful into its estimate's `warnings`: a median that did
not settle within the protocol's caps, a core that other processes took while it was timed (a thread-CPU
measurement whose wall clock ran far slower), a GPU measured without NVML. The ground truth stores each
measurement with them, but the scorer reads only the figures: before this, a search whose every latency was
unstable said nothing about it. One line per device names how many of its measurements warned and shows the
first few; the run store's measurements hold them all. A warning every measurement of a device repeats and
the search already told at its start (ONNX Runtime's allowed CPU fallback) is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: how many of a device's measurement warnings its line quotes
SHOWN = 3


class MeasurementWarnings:
    """Collects, per device, the warnings of each measurement the scorer reads (`add`), and tells them as one
    line per device (`lines`)."""

    def __init__(self) -> None:
        self._measured: dict[str, int] = {}
        self._said: dict[str, list[tuple[str, str]]] = {}

    def add(self, device: str, arch_hash: str, doc: Mapping[str, Any], told: Iterable[str | None] = ()) -> None:
        """One measurement of `arch_hash` on `device` (its stored estimate `doc`); warnings in `told` (already
        said at the start of the search) are left out."""
        self._measured[device] = self._measured.get(device, 0) + 1
        skip = {t for t in told if t}
        for message in doc.get("warnings") or ():
            if message not in skip:
                self._said.setdefault(device, []).append((arch_hash, str(message)))

    def lines(self) -> list[str]:
        out = []
        for device, said in self._said.items():
            networks = len({h for h, _ in said})
            quoted = "; ".join(f"network {h}: {m}" for h, m in said[:SHOWN])
            more = f"; and {len(said) - SHOWN} more in the run store's measurements" if len(said) > SHOWN else ""
            out.append(
                f"device {device}: {networks} of {self._measured[device]} measurements came with warnings, so their "
                f"figures are doubtful: {quoted}{more}"
            )
        return out


#: what a search's outputs show beside each measured latency, per device (`latency_p10_ms@cpu`, ...): the
#: run-to-run spread of the timed runs and the machine's 1-minute load average when it was measured
BESIDE_MEASURED = ("latency_p10_ms", "latency_p90_ms", "load_average_1min")


def beside_measured(doc: Mapping[str, Any]) -> dict[str, float]:
    """The figures of `BESIDE_MEASURED` a stored measurement `doc` holds (as numbers; a missing or non-numeric
    one, e.g. the load of a platform without a load average, is left out)."""
    out = {}
    for name in BESIDE_MEASURED:
        value = doc.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out
