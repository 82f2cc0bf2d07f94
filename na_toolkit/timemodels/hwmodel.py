"""Analytic hardware models: the numbers a roofline needs, read from `hwmodels/*.toml`.

A hardware model file (schema version 1) holds, in SI units with the unit in each key's name:

    schema_version = 1
    name = "h100-sxm"                          # optional; when present it must equal the file stem
    description = "NVIDIA H100 SXM5 80 GB"
    kind = "gpu"                               # gpu | cpu | soc
    values_are = "datasheet"                   # datasheet | measured (what `hw calibrate` writes)
    memory_bandwidth_bytes_per_s = 3.35e12     # each value cites its source in a trailing comment
    memory_capacity_bytes = 80_000_000_000
    launch_overhead_s = 4e-6
    power_w = 700                              # optional

    [peak_flops_per_s]                         # per dtype; fp32 is required
    fp32 = 6.7e13
    bf16 = 9.894e14

    [measured_ceilings]                        # optional: what a benchmark reached on a real device
    memory_bandwidth_bytes_per_s = 3.0e12
    [measured_ceilings.flops_per_s]
    bf16 = 7.98e14

Validation is strict: a missing, negative or mistyped value, an unknown key or another schema version is a
`HardwareError` that names the file and the key. Trailing comments are kept (`HardwareModel.notes`) so a
model written back with `save_hardware_model` still cites its sources.
"""

from __future__ import annotations

import math
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import HardwareError, UnknownComponentError

SCHEMA_VERSION = 1
KINDS = ("gpu", "cpu", "soc")
VALUES_ARE = ("datasheet", "measured")
#: bytes per element of each dtype a hardware model may give a peak for (tf32 is stored as fp32)
DTYPE_BYTES: dict[str, int] = {"fp64": 8, "fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}

# key → (what it means, for messages and the comments `save_hardware_model` writes when no note is known)
_FIELD_DOCS: dict[str, str] = {
    "schema_version": f"hardware model schema version (this na_toolkit reads {SCHEMA_VERSION})",
    "name": "the registry name; equals the file stem",
    "description": "what device this is",
    "kind": "gpu | cpu | soc",
    "values_are": "datasheet | measured",
    "memory_bandwidth_bytes_per_s": "peak memory bandwidth, bytes per second",
    "memory_capacity_bytes": "memory the device can hold tensors in, bytes",
    "launch_overhead_s": "fixed cost of one kernel / operator launch, seconds",
    "power_w": "board power (TDP) in watts",
    "peak_flops_per_s": "peak dense FLOP/s per dtype (a multiply-add counts 2)",
    "measured_ceilings": "ceilings a benchmark reached on a real device",
    "measured_ceilings.memory_bandwidth_bytes_per_s": "measured device-to-device copy bandwidth, bytes per second",
    "measured_ceilings.flops_per_s": "measured matrix-product FLOP/s per dtype",
}
_TOP_KEYS = set(_FIELD_DOCS) - {k for k in _FIELD_DOCS if "." in k}
_CEILING_KEYS = {"memory_bandwidth_bytes_per_s", "flops_per_s"}


@dataclass(frozen=True)
class HardwareModel:
    """The roofline numbers of one device. Units are in the field names; FLOP/s count a multiply-add as 2."""

    name: str
    kind: str
    peak_flops_per_s: Mapping[str, float]
    memory_bandwidth_bytes_per_s: float
    memory_capacity_bytes: int
    launch_overhead_s: float
    power_w: float | None = None
    description: str = ""
    #: "datasheet" (vendor figures) or "measured" (written by `na-toolkit hw calibrate`)
    values_are: str = "datasheet"
    #: ceilings a benchmark actually reached (e.g. an H100 copies at ~3.0 TB/s of its 3.35 TB/s datasheet)
    measured_flops_per_s: Mapping[str, float] = field(default_factory=dict)
    measured_memory_bandwidth_bytes_per_s: float | None = None
    #: comments from the file: dotted key → citation text; "" → the header comment
    notes: Mapping[str, str] = field(default_factory=dict)
    source: Path | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def dtypes(self) -> list[str]:
        return sorted(self.peak_flops_per_s, key=list(DTYPE_BYTES).index)

    def flops_per_s(self, dtype: str = "fp32", prefer_measured: bool = True) -> float:
        """The compute ceiling for `dtype`: the measured one when known and preferred, else the peak."""
        if dtype not in self.peak_flops_per_s:
            raise HardwareError(
                f"hardware model {self.name!r} gives no peak for dtype {dtype!r}; it has: {', '.join(self.dtypes)}"
            )
        if prefer_measured and dtype in self.measured_flops_per_s:
            return float(self.measured_flops_per_s[dtype])
        return float(self.peak_flops_per_s[dtype])

    def bandwidth_bytes_per_s(self, prefer_measured: bool = True) -> float:
        """The memory ceiling: the measured copy bandwidth when known and preferred, else the datasheet's."""
        if prefer_measured and self.measured_memory_bandwidth_bytes_per_s is not None:
            return float(self.measured_memory_bandwidth_bytes_per_s)
        return float(self.memory_bandwidth_bytes_per_s)

    def ridge_point_flops_per_byte(self, dtype: str = "fp32", prefer_measured: bool = True) -> float:
        """Arithmetic intensity above which a kernel is compute-bound (Williams et al., CACM 2009)."""
        return self.flops_per_s(dtype, prefer_measured) / self.bandwidth_bytes_per_s(prefer_measured)

    def to_dict(self) -> dict[str, Any]:
        """The file's content as plain data (what `hw show --json` prints)."""
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "values_are": self.values_are,
            "memory_bandwidth_bytes_per_s": self.memory_bandwidth_bytes_per_s,
            "memory_capacity_bytes": self.memory_capacity_bytes,
            "launch_overhead_s": self.launch_overhead_s,
        }
        if self.power_w is not None:
            out["power_w"] = self.power_w
        out["peak_flops_per_s"] = {d: self.peak_flops_per_s[d] for d in self.dtypes}
        ceilings: dict[str, Any] = {}
        if self.measured_memory_bandwidth_bytes_per_s is not None:
            ceilings["memory_bandwidth_bytes_per_s"] = self.measured_memory_bandwidth_bytes_per_s
        if self.measured_flops_per_s:
            ceilings["flops_per_s"] = dict(self.measured_flops_per_s)
        if ceilings:
            out["measured_ceilings"] = ceilings
        return out


# ---- reading ----------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Checker:
    """Validates one parsed file; every message starts with the file and names the key."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, problem: str) -> HardwareError:
        doc = _FIELD_DOCS.get(key)
        hint = f" ({doc})" if doc else ""
        return HardwareError(f"{self.where}: key {key!r}{hint}: {problem}")

    def table(self, data: Mapping[str, Any], key: str, required: bool = True) -> Mapping[str, Any] | None:
        value = data.get(key.rsplit(".", 1)[-1])
        if value is None:
            if required:
                raise self.fail(key, "missing; add it as a [table]")
            return None
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {value!r}")
        return value

    def number(self, data: Mapping[str, Any], key: str, *, required: bool = True, allow_zero: bool = False) -> float | None:
        value = data.get(key.rsplit(".", 1)[-1])
        if value is None:
            if required:
                raise self.fail(key, "missing; add it")
            return None
        if not _is_number(value) or not math.isfinite(value):
            raise self.fail(key, f"must be a finite number, got {value!r}")
        if value < 0 or (value == 0 and not allow_zero):
            raise self.fail(key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
        return float(value)

    def choice(self, data: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str | None) -> str:
        value = data.get(key, default)
        if value is None:
            raise self.fail(key, f"missing; one of {', '.join(choices)}")
        if value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def per_dtype(self, table: Mapping[str, Any], key: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for dtype in table:
            if dtype not in DTYPE_BYTES:
                raise self.fail(f"{key}.{dtype}", f"unknown dtype; known: {', '.join(DTYPE_BYTES)}")
            out[dtype] = self.number(table, f"{key}.{dtype}")
        return out

    def unknown_keys(self, data: Mapping[str, Any], known: set[str], prefix: str = "") -> None:
        for key in data:
            if key not in known:
                raise self.fail(prefix + key, f"unknown key; known: {', '.join(sorted(known))}")


def _validate(data: Mapping[str, Any], path: Path | None, notes: Mapping[str, str]) -> HardwareModel:
    check = _Checker(str(path) if path is not None else "<hardware model>")
    version = data.get("schema_version")
    if version is None:
        raise check.fail("schema_version", f"missing; add `schema_version = {SCHEMA_VERSION}`")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise check.fail("schema_version", f"version {version!r} is not supported; this na_toolkit reads {SCHEMA_VERSION}")
    check.unknown_keys(data, _TOP_KEYS)

    name = data.get("name", path.stem if path is not None else None)
    if not isinstance(name, str) or not name.strip():
        raise check.fail("name", f"must be a non-empty string, got {name!r}")
    if path is not None and name != path.stem:
        raise check.fail("name", f"{name!r} differs from the file name {path.name!r}; rename one of them")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise check.fail("description", f"must be a string, got {description!r}")

    peaks = check.per_dtype(check.table(data, "peak_flops_per_s"), "peak_flops_per_s")
    if "fp32" not in peaks:
        raise check.fail("peak_flops_per_s.fp32", "missing; every hardware model gives at least the fp32 peak")

    capacity = check.number(data, "memory_capacity_bytes")
    if capacity != int(capacity):
        raise check.fail("memory_capacity_bytes", f"must be a whole number of bytes, got {capacity!r}")

    ceilings = check.table(data, "measured_ceilings", required=False) or {}
    check.unknown_keys(ceilings, _CEILING_KEYS, "measured_ceilings.")
    measured_flops = check.per_dtype(
        check.table(ceilings, "measured_ceilings.flops_per_s", required=False) or {}, "measured_ceilings.flops_per_s"
    )
    for dtype in measured_flops:
        if dtype not in peaks:
            raise check.fail(f"measured_ceilings.flops_per_s.{dtype}", "has no peak in [peak_flops_per_s]; add one")

    return HardwareModel(
        name=name,
        kind=check.choice(data, "kind", KINDS, None),
        peak_flops_per_s=peaks,
        memory_bandwidth_bytes_per_s=check.number(data, "memory_bandwidth_bytes_per_s"),
        memory_capacity_bytes=int(capacity),
        launch_overhead_s=check.number(data, "launch_overhead_s", allow_zero=True),
        power_w=check.number(data, "power_w", required=False),
        description=description,
        values_are=check.choice(data, "values_are", VALUES_ARE, "datasheet"),
        measured_flops_per_s=measured_flops,
        measured_memory_bandwidth_bytes_per_s=check.number(
            ceilings, "measured_ceilings.memory_bandwidth_bytes_per_s", required=False
        ),
        notes=dict(notes),
        source=path,
        schema_version=SCHEMA_VERSION,
    )


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one TOML line; a '#' inside a quoted string is not a comment."""
    quote = None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i].strip(), line[i + 1 :].strip()
        i += 1
    return line.strip(), ""


def _notes_of(text: str) -> dict[str, str]:
    """Comments of a hardware model file: trailing comments by dotted key, the leading block under ""."""
    notes: dict[str, str] = {}
    header: list[str] = []
    table = ""
    seen_code = False
    for raw in text.splitlines():
        code, comment = _split_comment(raw)
        if not code:
            if comment and not seen_code:
                header.append(comment)
            continue
        seen_code = True
        if code.startswith("["):
            table = code.strip("[] ")
            key = table
        else:
            key = f"{table}.{code.split('=', 1)[0].strip()}" if table else code.split("=", 1)[0].strip()
        if comment:
            notes[key] = comment
    if header:
        notes[""] = "\n".join(header)
    return notes


def parse_hardware_model(text: str, path: Path | None = None) -> HardwareModel:
    """A validated `HardwareModel` from the text of a TOML file (`path` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HardwareError(f"{path or '<hardware model>'}: not valid TOML ({exc}); fix the file") from None
    return _validate(data, path, _notes_of(text))


def read_hardware_model(path: str | os.PathLike) -> HardwareModel:
    """Load and validate one hardware model file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HardwareError(f"{p}: no such hardware model file; `na-toolkit hw list` shows the known ones") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HardwareError(f"{p}: cannot read the hardware model ({exc})") from None
    return parse_hardware_model(text, p)


def _hardware_registry():
    from ..plugins import get_toolkit

    return get_toolkit().hardware


def known_hardware_models() -> list[str]:
    """Names of the registered hardware models (not the device profiles), sorted."""
    return sorted(e.name for e in _hardware_registry().entries() if e.obj.kind == "model")


def _looks_like_path(text: str) -> bool:
    return text.endswith(".toml") or os.sep in text or (os.altsep is not None and os.altsep in text)


def load_hardware_model(name_or_path: str | os.PathLike | HardwareModel) -> HardwareModel:
    """A hardware model by registry name (`na-toolkit hw list`) or by path to a TOML file. A model passed in
    is returned as is, so callers may accept either."""
    if isinstance(name_or_path, HardwareModel):
        return name_or_path
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(str(name_or_path)):
        return read_hardware_model(name_or_path)
    name = str(name_or_path)
    registry = _hardware_registry()
    if name in registry:
        source = registry.get(name)
        if source.kind != "model":
            raise HardwareError(
                f"{name!r} is a device {source.kind} ({source.path}), not a hardware model; use the learned time "
                f"model for profiles. Hardware models: {', '.join(known_hardware_models())}"
            )
        return read_hardware_model(source.path)
    raise HardwareError(str(UnknownComponentError("hardware model", name, known_hardware_models())))


# ---- writing ----------------------------------------------------------------------------------------


def _toml_number(value: float | int) -> str:
    """Shortest TOML text that reads back as exactly `value`: exponent form for large/small floats,
    underscored integers."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:_d}"
    value = float(value)
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return repr(value)
    for digits in range(17):
        mantissa, _, exponent = f"{value:.{digits}e}".partition("e")
        text = f"{mantissa}e{int(exponent)}"  # 3.35e12, not 3.35e+12
        if float(text) == value:
            return text
    return repr(value)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _line(key: str, value_text: str, note_key: str, notes: Mapping[str, str]) -> str:
    comment = notes.get(note_key) or _FIELD_DOCS.get(note_key, "")
    comment = " ".join(comment.split())
    return f"{key} = {value_text}" + (f"  # {comment}" if comment else "")


def hardware_model_toml(model: HardwareModel) -> str:
    """The TOML text of a hardware model, with each value's note (citation) as a trailing comment."""
    notes = model.notes
    header = notes.get("") or (
        f"Hardware model for na_toolkit (schema {SCHEMA_VERSION}); values are {model.values_are}."
    )
    lines = [f"# {h}".rstrip() for h in header.splitlines()]
    lines.append("")
    data = model.to_dict()
    for key in ("schema_version", "name", "description", "kind", "values_are"):
        value = data[key]
        text = _toml_string(value) if isinstance(value, str) else _toml_number(value)
        lines.append(_line(key, text, key, notes))
    for key in ("memory_bandwidth_bytes_per_s", "memory_capacity_bytes", "launch_overhead_s", "power_w"):
        if key in data:
            lines.append(_line(key, _toml_number(data[key]), key, notes))
    lines += ["", "[peak_flops_per_s]"]
    for dtype, value in data["peak_flops_per_s"].items():
        lines.append(_line(dtype, _toml_number(float(value)), f"peak_flops_per_s.{dtype}", notes))
    ceilings = data.get("measured_ceilings", {})
    if ceilings:
        lines += ["", "[measured_ceilings]"]
        if "memory_bandwidth_bytes_per_s" in ceilings:
            key = "measured_ceilings.memory_bandwidth_bytes_per_s"
            lines.append(_line("memory_bandwidth_bytes_per_s", _toml_number(float(ceilings["memory_bandwidth_bytes_per_s"])), key, notes))
        if "flops_per_s" in ceilings:
            lines += ["", "[measured_ceilings.flops_per_s]"]
            for dtype, value in ceilings["flops_per_s"].items():
                key = f"measured_ceilings.flops_per_s.{dtype}"
                lines.append(_line(dtype, _toml_number(float(value)), key, notes))
    return "\n".join(lines) + "\n"


def save_hardware_model(model: HardwareModel, path: str | os.PathLike) -> Path:
    """Write `model` as TOML with comments to `path` (its name becomes the file stem's). The text is
    validated before it replaces the file, so a failed write never leaves a corrupt model behind."""
    p = Path(path)
    if p.suffix != ".toml":
        raise HardwareError(f"{p}: a hardware model file must end in .toml")
    if model.name != p.stem:
        model = replace(model, name=p.stem)
    text = hardware_model_toml(model)
    parse_hardware_model(text, p)  # what we write must read back
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
