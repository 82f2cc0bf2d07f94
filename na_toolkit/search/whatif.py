"""What-if hardware: the paper's use of the search to guide hardware design (`na-toolkit whatif`).

`run_whatif(config, device, varies)` re-runs the search of a config once per variant of one device's
hardware model (the Cartesian product of the `--vary` flags, whatif_vary.py), and reports per variant the
best network found for that device under the config's budgets, its accuracy and latency, and which resource
bound that latency (the roofline's share of compute-bound, memory-bound and launch-overhead time).

Every variant runs the same config: the same random seed, evaluation budget, budgets, strategy and
predictors; only the hardware model file the device's time model reads differs (each variant is written
to its own TOML file, `<model>-whatif-<i>.toml`, and the device's time model is pointed at it). Each search
runs in an in-memory run store, so nothing but the what-if's own outputs is written.

Which time models can be scaled: the roofline (and a registered subclass of it), whose estimate is a pure
function of the hardware model's ceilings. The learned time model is refused: its coefficients are fitted
to one profiled device's measurements (per-kernel regressions and a network overhead calibration, with
boosted corrections that absorb the runtime's algorithm choice per shape), so "twice the bandwidth" has no
defined effect on them without assuming which kernels a faster memory speeds up; measured and table time
models are data of one real device. docs/whatif.md has the details.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, HardwareError
from ..store.memory import MemoryRunStore
from ..timemodels.hwmodel import HardwareModel, hardware_model_toml, parse_hardware_model, save_hardware_model
from ..timemodels.roofline import RooflineTimeModel
from .config import DeviceSpec, SearchConfig, load_config, parse_config
from .whatif_vary import HardwareVariant, Vary, parse_varies, short_name, variants

if TYPE_CHECKING:
    from ..toolkit import Toolkit
    from .summary import SearchResult

__all__ = ["LatencyBounds", "VariantOutcome", "WhatIfResult", "run_whatif", "select_device", "variant_note"]

#: the resources a roofline latency is split into
BOUNDS = ("compute", "memory", "launch")


@dataclass(frozen=True)
class LatencyBounds:
    """Shares of a network's roofline latency (they sum to 1): the time of its compute-bound kernels, of
    its memory-bound kernels and of its launch overheads; `bound` is the largest."""

    compute_share: float
    memory_share: float
    launch_share: float
    bound: str

    @classmethod
    def of_forward(cls, forward: Mapping[str, Any]) -> LatencyBounds:
        """From a roofline estimate's `details["forward"]`."""
        parts = {b: float(forward[f"{b}_bound_s"]) for b in BOUNDS}
        total = sum(parts.values()) or 1.0
        return cls(
            compute_share=parts["compute"] / total,
            memory_share=parts["memory"] / total,
            launch_share=parts["launch"] / total,
            bound=str(forward["bound"]),
        )


@dataclass(frozen=True)
class VariantOutcome:
    """What the search found on one hardware variant (None where no evaluated network met the budgets)."""

    index: int
    label: str
    #: short field name → the value given (`{"memory_bandwidth": "0.5x"}`)
    settings: dict[str, str]
    #: every field at 1x: the hardware model as it is
    baseline: bool
    hardware_model: str
    #: the ceilings the device's roofline used on this variant (SI units)
    flops_per_s: float
    bytes_per_s: float
    launch_overhead_s: float
    best_hash: str | None
    best_name: str | None
    accuracy: float | None
    test_accuracy: float | None
    latency_ms: float | None
    bounds: LatencyBounds | None
    #: evaluations the search made (failed ones included): fewer than asked when it stopped short
    evaluations: int
    #: evaluated networks that meet the device's budgets (and the global ones)
    feasible_evaluations: int
    #: evaluations that failed (the evaluator or a runtime rejected the network)
    failed_evaluations: int
    infeasible_reason: str | None
    #: why the search stopped (the run's stop reason): its evaluation budget spent, or why it stopped short
    stop_reason: str
    elapsed_s: float
    #: the best network is the baseline variant's (None without a baseline or a best network)
    same_as_baseline: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WhatIfResult:
    """The what-if of one device: the setting it ran in and an outcome per hardware variant."""

    config_name: str
    device: str
    hardware_model: str
    time_model: str
    dtype: str
    batch_size: int
    random_seed: int
    evaluations: int
    #: the config's budgets that decide feasibility on the device (its own and the global ones); besides them
    #: each variant's memory capacity is a hard budget on its peak memory (`components.with_capacity_budgets`)
    budgets: list[dict[str, Any]]
    varies: list[dict[str, Any]]
    outcomes: list[VariantOutcome]
    #: the variants' hardware models (written to --out as TOML)
    models: list[HardwareModel] = field(default_factory=list)
    #: how many variants were asked for (0: as many as `outcomes`); fewer outcomes: the what-if was stopped
    planned: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config_name,
            "device": self.device,
            "hardware_model": self.hardware_model,
            "time_model": self.time_model,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "random_seed": self.random_seed,
            "evaluations": self.evaluations,
            "budgets": self.budgets,
            "varies": self.varies,
            "variants": [o.to_json() for o in self.outcomes],
            "variants_planned": self.planned or len(self.outcomes),
            "distinct_best_networks": len({o.best_hash for o in self.outcomes if o.best_hash is not None}),
        }


def variant_note(outcome: Mapping[str, Any], asked: int) -> str | None:
    """What a variant's row alone does not say (`outcome` is `VariantOutcome.to_json()`, `asked` the
    evaluations per variant): why its search stopped short of `asked`, how many evaluations failed, and why
    no network is feasible. None when it used its whole budget and found a feasible network. Results written
    before the stop reason was recorded have none to give."""
    parts = []
    used = int(outcome["evaluations"])
    if used < asked:
        why = outcome.get("stop_reason")  # the loop's own words give the count and the cause
        parts.append(f"stopped short: {why}" if why else f"used {used} of {asked} evaluations")
    failed = int(outcome.get("failed_evaluations") or 0)
    if failed:
        parts.append(f"{failed} of {used} evaluations failed")
    if outcome["best_hash"] is None and outcome.get("infeasible_reason") and used >= asked:
        parts.append(f"none feasible: {outcome['infeasible_reason']}")
    return "; ".join(parts) or None


# ---- the device ------------------------------------------------------------------------------------------
def select_device(config: SearchConfig, device: str | None) -> DeviceSpec:
    """The config's device named `device`: a `[devices.NAME]` entry, or the hardware model its time model
    reads (`jetson-orin-nano`, or the name or path of a model the config gives as a .toml) when exactly one
    entry reads it; optional when the config has one device."""
    names = [d.name for d in config.devices]
    if not names:
        raise ConfigError("whatif needs a config with a device to vary ([devices.NAME] with a roofline time model)")
    if device is None:
        if len(names) > 1:
            raise ConfigError(f"the config has {len(names)} devices ({', '.join(names)}); choose one with --device")
        return config.devices[0]
    if device in names:
        return config.device(device)
    reading = [d for d in config.devices if _reads(d, device)]
    if len(reading) == 1:
        return reading[0]
    raise ConfigError(
        f"--device {device!r}: the config has no device of that name"
        + (f" ({len(reading)} devices read that hardware model)" if reading else "")
        + f"; its devices: {', '.join(names)}"
    )


def _reads(dev: DeviceSpec, model: str) -> bool:
    """Whether the device's time model reads hardware model `model`: by registered name, or by the .toml a
    config gives (`edge-npu` or `edge-npu.toml` for `device = "hw/edge-npu.toml"`: a model's name is its stem)."""
    given = dev.time_model_options().get("device")
    if not isinstance(given, str):
        return False
    if given == model:
        return True
    return (
        given.lower().endswith(".toml") and Path(given).stem == Path(model).stem and Path(model).suffix in ("", ".toml")
    )


def _roofline_of(dev: DeviceSpec, toolkit: Toolkit, **options: Any) -> RooflineTimeModel:
    """The device's time model (a roofline) with `options` over the config's; anything else is refused."""
    name = dev.time_model.name
    cls = toolkit.time_models.get(name)
    where = f"device {dev.name!r}"
    if dev.measure is not None:
        raise ConfigError(
            f"{where} measures its evaluated networks with {dev.measure.name!r} on this machine; a what-if "
            "hardware cannot be measured: remove its `measure` for the what-if"
        )
    if not (isinstance(cls, type) and issubclass(cls, RooflineTimeModel)):
        why = (
            "its coefficients are fitted to one profiled device's measurements, not hardware ceilings"
            if name == "learned"
            else "it does not read a hardware model's ceilings"
        )
        raise ConfigError(
            f"{where} is scored by the {name!r} time model, which whatif cannot scale ({why}); score it with "
            'the roofline: time_model = { name = "roofline", options = { device = "<hardware model>" } } '
            "(`na-toolkit hw list` shows the hardware models)"
        )
    model = cls.from_toolkit(toolkit, **{**dev.time_model_options(), **options})
    assert isinstance(model, RooflineTimeModel)
    return model


def _check_dtype(varies: Sequence[Vary], roofline: RooflineTimeModel, dev: DeviceSpec) -> None:
    """A varied peak of another dtype than the one the device computes in would change nothing."""
    for v in varies:
        key, _, dtype = v.field.partition(".")
        if key == "peak_flops_per_s" and dtype != roofline.dtype:
            raise ConfigError(
                f"--vary {short_name(v.field)}: device {dev.name!r} computes in {roofline.dtype} (its roofline's "
                f"dtype option), so its peak for {dtype} is never read; vary peak_flops.{roofline.dtype} or set "
                f'dtype = "{dtype}" in the device\'s time model options'
            )


# ---- one variant -----------------------------------------------------------------------------------------
def _variant_config(config: SearchConfig, dev: DeviceSpec, variant: HardwareVariant, path: Path) -> SearchConfig:
    """The config with the device's time model reading the variant's hardware model file."""
    doc = copy.deepcopy(config.doc)
    doc["name"] = f"{config.name}-whatif-{variant.index}"
    doc["devices"][dev.name]["time_model"] = {
        "name": dev.time_model.name,
        "options": {**dev.time_model.options, "device": str(path)},
    }
    return parse_config(doc, config.base_dir)


def _outcome(
    variant: HardwareVariant,
    roofline: RooflineTimeModel,
    dev: DeviceSpec,
    result: SearchResult,
    elapsed_s: float,
) -> VariantOutcome:
    ok = [e for e in result.evaluated if e.error is None]
    best_hash = result.best.get(dev.name)
    best = result.get(best_hash) if best_hash is not None else None
    bounds = None
    if best is not None:
        estimate = roofline.estimate(best.candidate.arch, dev.batch_size)
        bounds = LatencyBounds.of_forward(estimate.details["forward"])
    metrics = best.score.metrics if best is not None else {}
    return VariantOutcome(
        index=variant.index,
        label=variant.label,
        settings={short_name(k): v.text for k, v in variant.settings},
        baseline=variant.is_baseline,
        hardware_model=variant.model.name,
        flops_per_s=roofline.flops_per_s,
        bytes_per_s=roofline.bytes_per_s,
        launch_overhead_s=roofline.hardware.launch_overhead_s,
        best_hash=best_hash,
        best_name=best.candidate.arch.name if best is not None else None,
        accuracy=metrics.get("accuracy"),
        test_accuracy=metrics.get("test_accuracy"),
        latency_ms=metrics.get(f"latency_ms@{dev.name}"),
        bounds=bounds,
        evaluations=len(result.evaluated),
        feasible_evaluations=sum(bool(e.feasible_for.get(dev.name)) for e in ok),
        failed_evaluations=len(result.evaluated) - len(ok),
        infeasible_reason=result.infeasible.get(dev.name),
        stop_reason=result.stop_reason,
        elapsed_s=round(elapsed_s, 3),
    )


def run_whatif(
    config: str | os.PathLike[str] | Mapping[str, Any] | SearchConfig,
    device: str | None,
    varies: Sequence[str],
    *,
    toolkit: Toolkit,
    overrides: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    on_variant: Callable[[WhatIfResult], None] | None = None,
) -> WhatIfResult:
    """Run the config's search once per hardware variant of `device` (see the module docstring). `varies`
    are the `--vary` flags (`memory_bandwidth=0.5x,1x,2x`); `overrides` replace top-level config keys as
    `na-toolkit search` does (evaluations, random_seed); `log` receives a line per variant; `on_variant` the
    result so far after each variant (what a stopped what-if keeps: the CLI writes it to --out)."""
    from .loop import run_search

    cfg = load_config(config, overrides=overrides, toolkit=toolkit)
    dev = select_device(cfg, device)
    base = _roofline_of(dev, toolkit)
    parsed = parse_varies(varies, base.hardware)
    _check_dtype(parsed, base, dev)
    points = variants(base.hardware, parsed)
    for variant in points:  # before any search runs: a variant no device could have (a unit mistake?) is refused
        try:
            parse_hardware_model(hardware_model_toml(variant.model), Path(f"{variant.model.name}.toml"))
        except HardwareError as exc:
            raise ConfigError(f"--vary {variant.label}: that variant's hardware model {exc}") from None
    outcomes: list[VariantOutcome] = []
    with tempfile.TemporaryDirectory(prefix="na-whatif-") as tmp:
        for variant in points:
            path = save_hardware_model(variant.model, Path(tmp) / f"{variant.model.name}.toml")
            roofline = _roofline_of(dev, toolkit, device=str(path))
            vcfg = _variant_config(cfg, dev, variant, path)
            store = MemoryRunStore(f"whatif-{variant.index}", vcfg.to_json())
            t0 = time.perf_counter()
            result = run_search(vcfg, toolkit=toolkit, store=store, progress=False, outputs=False)
            outcome = _outcome(variant, roofline, dev, result, time.perf_counter() - t0)
            outcomes.append(outcome)
            if on_variant is not None:  # kept first: a Ctrl-C while the line below is written loses nothing
                on_variant(_result(cfg, dev, base, parsed, outcomes, points))
            if log is not None:
                found = (
                    f"best {outcome.best_hash}, accuracy {outcome.accuracy:.4g}, latency {outcome.latency_ms:.4g} ms"
                    if outcome.best_hash is not None and outcome.accuracy is not None and outcome.latency_ms is not None
                    else "no feasible network"
                )
                note = variant_note(outcome.to_json(), cfg.evaluations)
                log(
                    f"[whatif] {variant.index + 1}/{len(points)} {variant.label}: {found} ({outcome.elapsed_s:.1f} s)"
                    + (f"; {note}" if note else "")
                )
    return _result(cfg, dev, base, parsed, outcomes, points)


def _result(
    cfg: SearchConfig,
    dev: DeviceSpec,
    base: RooflineTimeModel,
    parsed: Sequence[Vary],
    outcomes: list[VariantOutcome],
    points: Sequence[HardwareVariant],
) -> WhatIfResult:
    """The what-if of the `outcomes` so far (of the variants `points`), each compared with the baseline's."""
    baseline = next((o for o in outcomes if o.baseline), None)
    if baseline is not None and baseline.best_hash is not None:
        outcomes = [
            replace(o, same_as_baseline=o.best_hash == baseline.best_hash) if o.best_hash is not None else o
            for o in outcomes
        ]
    budgets = [asdict(b) for b in cfg.budgets if b.device in (None, dev.name)]
    return WhatIfResult(
        config_name=cfg.name,
        device=dev.name,
        hardware_model=base.hardware.name,
        time_model=dev.time_model.name,
        dtype=base.dtype,
        batch_size=dev.batch_size,
        random_seed=cfg.random_seed,
        evaluations=cfg.evaluations,
        budgets=budgets,
        varies=[{"field": v.field, "values": [x.text for x in v.values]} for v in parsed],
        outcomes=outcomes,
        models=[p.model for p in points],
        planned=len(points),
    )
