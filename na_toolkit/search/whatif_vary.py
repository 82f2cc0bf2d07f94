"""What-if hardware variants: `--vary FIELD=V1,V2,...` parsed against a hardware model, and the Cartesian
product of every flag applied to it (pure functions: `HardwareModel` in, `HardwareModel`s out).

A field is a value of the hardware model file (`hwmodels/*.toml`), by its key or a short name:

    memory_bandwidth       memory_bandwidth_bytes_per_s       bytes/s   B/s kB/s MB/s GB/s TB/s KiB/s .. TiB/s
    peak_flops.DTYPE       peak_flops_per_s.DTYPE             FLOP/s    FLOPS GFLOPS TFLOPS PFLOPS (or FLOP/s ...)
    launch_overhead        launch_overhead_s                  s         s ms us µs ns
    memory_capacity        memory_capacity_bytes              bytes     B kB MB GB TB KiB MiB GiB TiB
    power                  power_w                            W         W mW kW

A value is a factor of the model's own (`0.5x`, `2x`) or an absolute value, with one of the field's units
or bare in the field's SI unit (`100GB/s`, `1e11`). A factor scales the datasheet value and the measured
ceiling alike (a faster memory keeps the fraction of the peak a benchmark reaches); an absolute value sets
the datasheet value and drops that field's measured ceiling (a hypothetical device has no measurement).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ..errors import ConfigError, UnknownComponentError
from ..timemodels.hwmodel import HardwareModel

#: short name → the hardware model key (peak_flops takes a dtype after a dot)
ALIASES = {
    "memory_bandwidth": "memory_bandwidth_bytes_per_s",
    "launch_overhead": "launch_overhead_s",
    "memory_capacity": "memory_capacity_bytes",
    "power": "power_w",
    "peak_flops": "peak_flops_per_s",
}
_G, _T = 1e9, 1e12
#: key (without a dtype) → unit text (case-insensitive, but a lowercase b for B is bits: refused) → SI value of one unit
UNITS: dict[str, dict[str, float]] = {
    "memory_bandwidth_bytes_per_s": {
        "B/s": 1.0,
        "kB/s": 1e3,
        "MB/s": 1e6,
        "GB/s": _G,
        "TB/s": _T,
        "KiB/s": 2.0**10,
        "MiB/s": 2.0**20,
        "GiB/s": 2.0**30,
        "TiB/s": 2.0**40,
    },
    "peak_flops_per_s": {
        **{f"{p}FLOPS": s for p, s in (("", 1.0), ("k", 1e3), ("M", 1e6), ("G", _G), ("T", _T), ("P", 1e15))},
        **{f"{p}FLOP/s": s for p, s in (("", 1.0), ("k", 1e3), ("M", 1e6), ("G", _G), ("T", _T), ("P", 1e15))},
    },
    "launch_overhead_s": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9},
    "memory_capacity_bytes": {
        "B": 1.0,
        "kB": 1e3,
        "MB": 1e6,
        "GB": _G,
        "TB": _T,
        "KiB": 2.0**10,
        "MiB": 2.0**20,
        "GiB": 2.0**30,
        "TiB": 2.0**40,
    },
    "power_w": {"W": 1.0, "mW": 1e-3, "kW": 1e3},
}
_FACTOR = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*[xX×]\s*$")
_ABSOLUTE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([^\s0-9].*)?$")


@dataclass(frozen=True)
class VaryValue:
    """One value of a `--vary` flag: a factor of the model's value, or an absolute value in SI units."""

    text: str
    factor: float | None = None
    value_si: float | None = None

    @property
    def is_identity(self) -> bool:
        return self.factor == 1.0


@dataclass(frozen=True)
class Vary:
    """One `--vary` flag: a hardware model field (its dotted key) and the values it takes."""

    field: str
    values: tuple[VaryValue, ...]


@dataclass(frozen=True)
class HardwareVariant:
    """One point of the product: the value of each varied field (its key → the value) and the model."""

    index: int
    settings: tuple[tuple[str, VaryValue], ...]
    model: HardwareModel

    @property
    def label(self) -> str:
        return ", ".join(f"{short_name(k)}={v.text}" for k, v in self.settings)

    @property
    def is_baseline(self) -> bool:
        """Every field at 1x: the hardware model as it is."""
        return all(v.is_identity for _, v in self.settings)


def short_name(key: str) -> str:
    """The short name of a hardware model key (`memory_bandwidth_bytes_per_s` → `memory_bandwidth`)."""
    for short, full in ALIASES.items():
        if key == full or key.startswith(full + "."):
            return short + key[len(full) :]
    return key


def field_names(model: HardwareModel) -> list[str]:
    """The fields of `model` a flag may vary, by their short names."""
    return [
        "memory_bandwidth",
        *(f"peak_flops.{d}" for d in model.dtypes),
        "launch_overhead",
        "memory_capacity",
        "power",
    ]


def canonical_field(name: str, model: HardwareModel) -> str:
    """The hardware model key a flag's field names (`memory_bandwidth` → `memory_bandwidth_bytes_per_s`);
    a misspelt one is a ConfigError naming the valid ones."""
    head, dot, dtype = name.strip().partition(".")
    key = ALIASES.get(head, head)
    if key == "peak_flops_per_s" and dot:
        if dtype in model.peak_flops_per_s:
            return f"{key}.{dtype}"
        raise ConfigError(
            f"--vary {name}: hardware model {model.name!r} gives no peak for dtype {dtype!r}; "
            f"it has: {', '.join(f'peak_flops.{d}' for d in model.dtypes)}"
        )
    if key in UNITS and key != "peak_flops_per_s" and not dot:
        return key
    valid = field_names(model)
    raise ConfigError(f"--vary: {UnknownComponentError('hardware field', name, valid)}")


def parse_value(text: str, field: str) -> VaryValue:
    """`0.5x` (a factor) or an absolute value of `field` with one of its units (or bare, in SI)."""
    unit_table = UNITS[field.partition(".")[0]]
    factor = _FACTOR.match(text)
    if factor:
        f = float(factor.group(1))
        if not (math.isfinite(f) and f > 0):
            raise ConfigError(f"--vary {short_name(field)}: factor {text!r} must be > 0")
        return VaryValue(text.strip(), factor=f)
    absolute = _ABSOLUTE.match(text)
    units = ", ".join(unit_table)
    if not absolute:
        raise ConfigError(
            f"--vary {short_name(field)}: {text!r} is neither a factor (0.5x, 2x) nor a value with a unit ({units})"
        )
    number, unit = float(absolute.group(1)), (absolute.group(2) or "").strip()
    scale = 1.0
    if unit:
        by_lower = {u.lower(): u for u in unit_table}
        if unit.lower() not in by_lower:
            raise ConfigError(f"--vary {short_name(field)}: unknown unit {unit!r} in {text!r}; units: {units}")
        known = by_lower[unit.lower()]
        if "B" in known and unit[known.index("B")] == "b":  # Gb/s: gigabits, an 8x slip if read as bytes
            raise ConfigError(
                f"--vary {short_name(field)}: {unit!r} in {text!r} is bits (a lowercase b), and {short_name(field)} "
                f"is in bytes: write {known} (a value in bits divided by 8)"
            )
        scale = unit_table[known]
    value = float(f"{number * scale:.15g}")  # 5us is 5e-06, not 4.9999999999999996e-06
    if not math.isfinite(value) or value < 0 or (value == 0 and field != "launch_overhead_s"):
        raise ConfigError(f"--vary {short_name(field)}: {text!r} must be a positive value")
    return VaryValue(text.strip(), value_si=value)


def parse_vary(spec: str, model: HardwareModel) -> Vary:
    """One `--vary FIELD=V1,V2,...` flag, checked against `model`."""
    name, eq, values = spec.partition("=")
    if not eq or not name.strip() or not values.strip():
        raise ConfigError(
            f"--vary {spec!r}: write FIELD=V1,V2,... (e.g. memory_bandwidth=0.5x,1x,2x); "
            f"fields: {', '.join(field_names(model))}"
        )
    field = canonical_field(name, model)
    texts = [v for v in (t.strip() for t in values.split(",")) if v]
    parsed = tuple(parse_value(t, field) for t in texts)
    if not parsed:
        raise ConfigError(f"--vary {spec!r}: give at least one value after '='")
    seen: dict[tuple[float | None, float | None], str] = {}
    for v in parsed:  # the same value twice would search the same hardware twice
        first = seen.setdefault((v.factor, v.value_si), v.text)
        if first != v.text or sum(w.text == v.text for w in parsed) > 1:
            raise ConfigError(f"--vary {spec!r}: {first!r} and {v.text!r} are the same value; give each once")
    return Vary(field, parsed)


def parse_varies(specs: Sequence[str], model: HardwareModel) -> list[Vary]:
    """Every `--vary` flag; a field varied twice is an error (the product would be ambiguous)."""
    if isinstance(specs, str):  # read letter by letter, its first flag would be 'm'
        raise ConfigError(f"varies: a list of FIELD=V1,V2,... (one per --vary), got the string {specs!r}: [{specs!r}]")
    if not specs:
        raise ConfigError(
            f"give at least one --vary FIELD=V1,V2,... (e.g. --vary memory_bandwidth=0.5x,1x,2x); "
            f"fields of {model.name!r}: {', '.join(field_names(model))}"
        )
    varies = [parse_vary(s, model) for s in specs]
    seen: set[str] = set()
    for v in varies:
        if v.field in seen:
            raise ConfigError(f"--vary {short_name(v.field)} is given twice; give all its values in one flag")
        seen.add(v.field)
    return varies


def _current(model: HardwareModel, field: str) -> float | None:
    key, _, dtype = field.partition(".")
    if key == "peak_flops_per_s":
        return float(model.peak_flops_per_s[dtype])
    value = getattr(model, key)
    return None if value is None else float(value)


def apply_value(model: HardwareModel, field: str, value: VaryValue) -> HardwareModel:
    """`model` with `field` set (absolute) or scaled (factor); see the module docstring for the measured
    ceilings."""
    key, _, dtype = field.partition(".")
    current = _current(model, field)
    if value.factor is not None:
        if current is None:
            raise ConfigError(
                f"--vary {short_name(field)}={value.text}: hardware model {model.name!r} has no {key} to scale; "
                "give an absolute value"
            )
        new = current * value.factor
    else:
        assert value.value_si is not None
        new = value.value_si
    if key == "peak_flops_per_s":
        measured = dict(model.measured_flops_per_s)
        if dtype in measured:
            if value.factor is not None:
                measured[dtype] = measured[dtype] * value.factor
            else:
                del measured[dtype]
        return replace(model, peak_flops_per_s={**model.peak_flops_per_s, dtype: new}, measured_flops_per_s=measured)
    if key == "memory_bandwidth_bytes_per_s":
        ceiling = model.measured_memory_bandwidth_bytes_per_s
        if ceiling is not None:
            ceiling = ceiling * value.factor if value.factor is not None else None
        return replace(model, memory_bandwidth_bytes_per_s=new, measured_memory_bandwidth_bytes_per_s=ceiling)
    if key == "memory_capacity_bytes":
        return replace(model, memory_capacity_bytes=max(1, int(round(new))))
    if key == "launch_overhead_s":
        return replace(model, launch_overhead_s=new)
    return replace(model, power_w=new)


def variants(model: HardwareModel, varies: Sequence[Vary]) -> list[HardwareVariant]:
    """The Cartesian product of every flag's values applied to `model`, in flag order (the last flag varies
    fastest). Each variant is named `<model>-whatif-<index>`."""
    out = []
    for index, combo in enumerate(itertools.product(*(v.values for v in varies))):
        varied = model
        settings = []
        for vary, value in zip(varies, combo):
            varied = apply_value(varied, vary.field, value)
            settings.append((vary.field, value))
        label = ", ".join(f"{short_name(k)}={v.text}" for k, v in settings)
        notes: Mapping[str, str] = {
            **varied.notes,
            **{k: f"what-if {v.text} of {model.name} (na-toolkit whatif)" for k, v in settings},
        }
        varied = replace(
            varied,
            name=f"{model.name}-whatif-{index}",
            description=f"{model.description or model.name} [what-if: {label}]",
            notes=notes,
            source=None,
        )
        out.append(HardwareVariant(index, tuple(settings), varied))
    return out
