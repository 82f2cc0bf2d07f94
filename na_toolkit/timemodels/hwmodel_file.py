"""The hardware model file's schema: a pydantic model of `hwmodels/*.toml` (schema version 1, see
`hwmodel`) and the translation of its validation errors into one `HardwareError` that names the file, the
dotted key (`peak_flops_per_s.fp16`), what the key means and what is wrong with its value."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError
from pydantic_core import PydanticCustomError

from ..errors import HardwareError, HardwareModelWarning
from ..validation import Document

SCHEMA_VERSION = 1
KINDS = ("gpu", "cpu", "soc")
VALUES_ARE = ("datasheet", "measured")
#: bytes per element of each dtype a hardware model may give a peak for (tf32 is stored as fp32)
DTYPE_BYTES: dict[str, int] = {"fp64": 8, "fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}

# key → what it means (for messages, the comments the writer adds, and a value written without a citation)
FIELD_DOCS: dict[str, str] = {
    "schema_version": f"hardware model schema version (this na_toolkit reads {SCHEMA_VERSION})",
    "name": "the registry name; equals the file stem",
    "description": "what device this is",
    "kind": "gpu | cpu | soc",
    "values_are": "datasheet | measured",
    "about": "what the device is and where its figures come from",
    "memory_bandwidth_bytes_per_s": "peak memory bandwidth, bytes per second",
    "memory_capacity_bytes": "memory the device can hold tensors in, bytes",
    "launch_overhead_s": "fixed cost of one kernel / operator launch, seconds",
    "power_w": "board power (TDP) in watts",
    "peak_flops_per_s": "peak dense FLOP/s per dtype (a multiply-add counts 2)",
    "measured_ceilings": "ceilings a benchmark reached on a real device",
    "measured_ceilings.memory_bandwidth_bytes_per_s": "measured device-to-device copy bandwidth, bytes per second",
    "measured_ceilings.flops_per_s": "measured matrix-product FLOP/s per dtype",
    "sources": "the citation of each value, by its dotted key",
}
#: tables whose keys are dtypes
_DTYPE_TABLES = ("peak_flops_per_s", "measured_ceilings.flops_per_s")
#: keys of values a `[sources]` entry may cite besides `TABLE.dtype`
_CITABLE = (
    "memory_bandwidth_bytes_per_s",
    "memory_capacity_bytes",
    "launch_overhead_s",
    "power_w",
    "measured_ceilings.memory_bandwidth_bytes_per_s",
    "description",
    "kind",
    "values_are",
)


# ---- the file's model ---------------------------------------------------------------------------------
def _problem(text: str) -> PydanticCustomError:
    # the text travels in the context: a message template would read braces in it as placeholders
    return PydanticCustomError("hardware_value", "{problem}", {"problem": text})


def _number(allow_zero: bool) -> Any:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _problem(f"must be a finite number, got {value!r}")
        if value < 0 or (value == 0 and not allow_zero):
            raise _problem(f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
        return float(value)

    return check


def _whole_bytes(value: Any) -> int:
    number = _number(False)(value)
    if number != int(number):
        raise _problem(f"must be a whole number of bytes, got {value!r}")
    return int(number)


def _choice(choices: tuple[str, ...]) -> Any:
    def check(value: Any) -> str:
        if value not in choices:
            raise _problem(f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return check


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _problem(f"must be a non-empty string, got {value!r}")
    return value


Positive = Annotated[float, BeforeValidator(_number(False))]
NonNegative = Annotated[float, BeforeValidator(_number(True))]
WholeBytes = Annotated[int, BeforeValidator(_whole_bytes)]
Kind = Annotated[str, BeforeValidator(_choice(KINDS))]
ValuesAre = Annotated[str, BeforeValidator(_choice(VALUES_ARE))]
Name = Annotated[str, BeforeValidator(_name)]


class DtypeRates(Document):
    """FLOP/s per dtype (measured ceilings: any of them)."""

    fp64: Positive | None = None
    fp32: Positive | None = None
    tf32: Positive | None = None
    fp16: Positive | None = None
    bf16: Positive | None = None
    fp8: Positive | None = None
    int8: Positive | None = None

    def given(self) -> dict[str, float]:
        return {d: v for d in DTYPE_BYTES if (v := getattr(self, d)) is not None}


class PeakRates(DtypeRates):
    """Peak FLOP/s per dtype; every hardware model gives at least fp32."""

    fp32: Positive


class MeasuredCeilings(Document):
    memory_bandwidth_bytes_per_s: Positive | None = None
    flops_per_s: DtypeRates | None = None


class HardwareModelFile(Document):
    """The content of a hardware model TOML file (see the module docstring). The fields are in the order
    their problems are reported (the peaks first: a file without them is not a hardware model at all)."""

    schema_version: int
    name: Name | None = None
    description: str = ""
    peak_flops_per_s: PeakRates
    memory_capacity_bytes: WholeBytes
    measured_ceilings: MeasuredCeilings | None = None
    kind: Kind
    memory_bandwidth_bytes_per_s: Positive
    launch_overhead_s: NonNegative
    power_w: Positive | None = None
    values_are: ValuesAre = "datasheet"
    about: str = ""
    sources: dict[str, str] = {}


def fail(where: str, key: str, problem: str) -> HardwareError:
    doc = FIELD_DOCS.get(key)
    hint = f" ({doc})" if doc else ""
    return HardwareError(f"{where}: key {key!r}{hint}: {problem}")


def _known_keys(model: type[Document]) -> list[str]:
    return sorted(model.model_fields)


def _error_of(exc: ValidationError, where: str) -> HardwareError:
    """The first problem pydantic found, as the message this module has always given: the file, the dotted
    key, what it means and what is wrong."""
    errors = exc.errors(include_url=False)
    # an unknown top-level key first: a misspelt key also shows up as a missing one
    err = next((e for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1), errors[0])
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc)
    parent = ".".join(loc[:-1])
    kind = err["type"]
    if kind == "hardware_value":
        problem = err["ctx"]["problem"]
    elif kind == "missing":
        if key in ("peak_flops_per_s",):
            problem = "missing; add it as a [table]"
        elif key == "peak_flops_per_s.fp32":
            problem = "missing; every hardware model gives at least the fp32 peak"
        elif key == "kind":
            problem = f"missing; one of {', '.join(KINDS)}"
        else:
            problem = "missing; add it"
    elif kind == "extra_forbidden":
        if parent in _DTYPE_TABLES:
            problem = f"unknown dtype; known: {', '.join(DTYPE_BYTES)}"
        else:
            tables: dict[str, type[Document]] = {"measured_ceilings": MeasuredCeilings}
            model = tables.get(parent, HardwareModelFile)
            problem = f"unknown key; known: {', '.join(_known_keys(model))}"
    elif kind in ("model_type", "dict_type"):
        problem = f"must be a table, got {err['input']!r}"
    elif kind == "string_type":
        problem = f"must be a string, got {err['input']!r}"
    else:
        problem = f"{err['msg']}, got {err['input']!r}"
    return fail(where, key, problem)


def check_sources(
    sources: Mapping[str, str], peaks: Mapping[str, float], measured: Mapping[str, float], where: str
) -> None:
    """Every citation names a value the model has (a typo would silently cite nothing)."""
    citable = set(_CITABLE) | {f"peak_flops_per_s.{d}" for d in peaks}
    citable |= {f"measured_ceilings.flops_per_s.{d}" for d in measured}
    for key in sources:
        if key not in citable:
            raise fail(where, f"sources.{key}", f"cites no value of this model; citable: {', '.join(sorted(citable))}")


#: key (dtype tables: the table) → (lowest, highest) value any real device has, the unit, and the value of an
#: example device written right: a value outside the range is a unit mistake (GB/s written as B/s, TFLOP/s as
#: FLOP/s, microseconds as seconds), which would make every roofline estimate wrong by that factor
PLAUSIBLE: dict[str, tuple[float, float, str, str]] = {
    "peak_flops_per_s": (1e6, 1e17, "FLOP/s", "0.25 TFLOP/s is 2.5e11"),
    "memory_bandwidth_bytes_per_s": (1e6, 1e14, "bytes per second", "17 GB/s is 1.7e10"),
    "memory_capacity_bytes": (1e4, 1e14, "bytes", "2 GiB is 2_147_483_648"),
    "launch_overhead_s": (0.0, 0.01, "seconds", "20 us is 2e-5"),
    "power_w": (1e-3, 1e5, "watts", "3 W is 3.0"),
}


def _check_plausible(doc: HardwareModelFile, where: str) -> None:
    """Values far outside what any device has are refused, with the unit the key wants."""
    ceilings = doc.measured_ceilings or MeasuredCeilings()
    values: list[tuple[str, str, float | None]] = [
        (key, key, getattr(doc, key))
        for key in ("memory_bandwidth_bytes_per_s", "memory_capacity_bytes", "launch_overhead_s", "power_w")
    ]
    values.append(
        ("memory_bandwidth_bytes_per_s", "measured_ceilings.memory_bandwidth_bytes_per_s",
         ceilings.memory_bandwidth_bytes_per_s)
    )  # fmt: skip
    values += [("peak_flops_per_s", f"peak_flops_per_s.{d}", v) for d, v in doc.peak_flops_per_s.given().items()]
    if ceilings.flops_per_s is not None:
        values += [
            ("peak_flops_per_s", f"measured_ceilings.flops_per_s.{d}", v)
            for d, v in ceilings.flops_per_s.given().items()
        ]
    for kind, key, value in values:
        low, high, unit, example = PLAUSIBLE[kind]
        if value is not None and not low <= value <= high:
            raise fail(
                where,
                key,
                f"{value:g} {unit} is outside what any device has ({low:g} .. {high:g}): a unit mistake? "
                f"The value is in {unit} ({example})",
            )


#: a measured ceiling may beat its datasheet peak by this factor (a boost clock, a rounded datasheet figure)
#: before a warning says it is suspect
ABOVE_PEAK_FACTOR = 1.25


def _check_ceilings(doc: HardwareModelFile, where: str) -> None:
    """A measured ceiling well above the datasheet peak of the same quantity is warned about
    (`HardwareModelWarning`): no benchmark beats the hardware, so one of the two has the wrong unit or comes
    from another device; the model is used as written (the roofline reads the measured value)."""
    ceilings = doc.measured_ceilings or MeasuredCeilings()
    pairs = [("memory_bandwidth_bytes_per_s", doc.memory_bandwidth_bytes_per_s, ceilings.memory_bandwidth_bytes_per_s)]
    if ceilings.flops_per_s is not None:
        peaks = doc.peak_flops_per_s.given()
        pairs += [(f"flops_per_s.{d}", peaks.get(d), v) for d, v in ceilings.flops_per_s.given().items()]
    for key, peak, measured in pairs:
        if peak and measured and measured > ABOVE_PEAK_FACTOR * peak:
            warnings.warn(
                f"{where}: measured_ceilings.{key} = {measured:g} is {measured / peak:.1f}x the datasheet peak "
                f"{peak:g}; a benchmark cannot beat the hardware: is one of them in another unit or from another "
                "device? (the roofline uses the measured value)",
                HardwareModelWarning,
                stacklevel=3,
            )


def validate_hardware_file(data: Mapping[str, Any], where: str) -> HardwareModelFile:
    """The parsed content of a hardware model file, checked (`where` names the file in errors). The schema
    version is checked first: a file of another version is not read further."""
    version = data.get("schema_version")
    if version is None:
        raise fail(where, "schema_version", f"missing; add `schema_version = {SCHEMA_VERSION}`")
    if version != SCHEMA_VERSION or type(version) is not int:  # `true` and 1.0 equal 1 in Python
        raise fail(
            where, "schema_version", f"version {version!r} is not supported; this na_toolkit reads {SCHEMA_VERSION}"
        )
    try:
        doc = HardwareModelFile.model_validate(data)
    except ValidationError as exc:
        raise _error_of(exc, where) from None
    _check_plausible(doc, where)
    _check_ceilings(doc, where)
    return doc
