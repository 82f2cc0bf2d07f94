"""Analytic hardware models: the numbers a roofline needs, read from `hwmodels/*.toml`.

A hardware model file (schema version 1) holds, in SI units with the unit in each key's name:

    schema_version = 1
    name = "h100-sxm"                          # optional; when present it must equal the file stem
    description = "NVIDIA H100 SXM 80 GB"
    kind = "gpu"                               # gpu | cpu | soc
    values_are = "datasheet"                   # datasheet | measured (what `hw calibrate` writes)
    about = "what the device is; where its figures come from"        # optional
    memory_bandwidth_bytes_per_s = 3.35e12
    memory_capacity_bytes = 85_899_345_920     # "80 GB" on the datasheet is binary: 80 GiB
    launch_overhead_s = 5e-6
    power_w = 700                              # optional

    [peak_flops_per_s]                         # per dtype; fp32 is required
    fp32 = 6.7e13
    bf16 = 9.895e14                            # dense: half the datasheet's 1,979 TFLOPS "with sparsity"

    [measured_ceilings]                        # optional: what a benchmark reached on a real device
    memory_bandwidth_bytes_per_s = 3.0e12
    [measured_ceilings.flops_per_s]
    bf16 = 7.98e14

    [sources]                                  # the citation of each value, by its dotted key
    memory_bandwidth_bytes_per_s = "H100 datasheet: GPU memory bandwidth 3.35 TB/s"
    "peak_flops_per_s.fp32" = "H100 datasheet: FP32 67 teraFLOPS"

The file is validated by a pydantic model (`hwmodel_file.HardwareModelFile`): a missing, negative or
mistyped value, an unknown key or another schema version is a `HardwareError` that names the file and the
dotted key. The citations are data (`[sources]` and `about`, kept as `HardwareModel.notes`), so a model
written back with `save_hardware_model` still cites its sources and `hw show --json` prints them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import HardwareError, UnknownComponentError
from ..files import (
    HARDWARE_MODEL,
    looks_like_path,
    parse_toml,
    path_exists,
    read_as,
    read_text,
    warn_shadowed,
    write_text_atomic,
)
from ..files import name_or_path as named_path
from ..registry import require_registry
from .hwmodel_file import (
    DTYPE_BYTES,
    FIELD_DOCS,
    KINDS,
    SCHEMA_VERSION,
    VALUES_ARE,
    HardwareModelFile,
    MeasuredCeilings,
    check_sources,
    fail,
    validate_hardware_file,
)

if TYPE_CHECKING:
    from ..registry import Registry
    from .hardware import HardwareSource

__all__ = [
    "DTYPE_BYTES",
    "KINDS",
    "SCHEMA_VERSION",
    "VALUES_ARE",
    "HardwareModel",
    "HardwareModelFile",
    "hardware_model_from_data",
    "hardware_model_toml",
    "known_hardware_models",
    "load_hardware_model",
    "parse_hardware_model",
    "read_hardware_model",
    "save_hardware_model",
]


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
    #: citations: dotted key → source (the file's `[sources]`); "" → what the device is (`about`)
    notes: Mapping[str, str] = field(default_factory=dict, repr=False)  # long citations: read `.notes`
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
        """The model's values as plain data (what `hw show --json` prints, besides the citations)."""
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
def hardware_model_from_data(data: Mapping[str, Any], path: Path | None = None) -> HardwareModel:
    """A validated `HardwareModel` from the parsed content of a TOML file (`path` names it in errors)."""
    where = str(path) if path is not None else "<hardware model>"
    doc = validate_hardware_file(data, where)
    name = doc.name if doc.name is not None else (path.stem if path is not None else None)
    if name is None:
        raise fail(where, "name", "missing; add it (a model read without a file has no file stem to take)")
    if path is not None and name != path.stem:
        raise fail(where, "name", f"{name!r} differs from the file name {path.name!r}; rename one of them")
    peaks = doc.peak_flops_per_s.given()
    ceilings = doc.measured_ceilings or MeasuredCeilings()
    measured = ceilings.flops_per_s.given() if ceilings.flops_per_s is not None else {}
    for dtype in measured:
        if dtype not in peaks:
            raise fail(where, f"measured_ceilings.flops_per_s.{dtype}", "has no peak in [peak_flops_per_s]; add one")
    check_sources(doc.sources, peaks, measured, where)
    notes = dict(doc.sources)
    if doc.about:
        notes[""] = doc.about
    return HardwareModel(
        name=name,
        kind=doc.kind,
        peak_flops_per_s=peaks,
        memory_bandwidth_bytes_per_s=doc.memory_bandwidth_bytes_per_s,
        memory_capacity_bytes=doc.memory_capacity_bytes,
        launch_overhead_s=doc.launch_overhead_s,
        power_w=doc.power_w,
        description=doc.description,
        values_are=doc.values_are,
        measured_flops_per_s=measured,
        measured_memory_bandwidth_bytes_per_s=ceilings.memory_bandwidth_bytes_per_s,
        notes=notes,
        source=path,
        schema_version=SCHEMA_VERSION,
    )


def parse_hardware_model(text: str, path: Path | None = None) -> HardwareModel:
    """A validated `HardwareModel` from the text of a TOML file (`path` names it in errors)."""
    data = parse_toml(text, f"{path or '<hardware model>'}: the hardware model", HardwareError)
    return hardware_model_from_data(data, path)


def read_hardware_model(path: str | os.PathLike[str]) -> HardwareModel:
    """Load and validate one hardware model file."""
    p = Path(path)
    if not p.exists():
        raise HardwareError(f"{p}: no such hardware model file; `na-toolkit hw list` shows the known ones")
    if p.suffix.lower() == ".json":  # read as TOML it would be "not valid TOML", which says nothing useful
        raise HardwareError(
            f"{p} is a .json file: a device profile (made by `na-toolkit profile`) or another document, not a "
            "hardware model (a .toml file); a profile is used by the learned time model (device = its path or name)"
        )
    with read_as(p, HARDWARE_MODEL, "file", HardwareError):  # a search config: not "add schema_version = 1"
        return parse_hardware_model(read_text(p, "hardware model", HardwareError), p)


def known_hardware_models(hardware: Registry[HardwareSource]) -> list[str]:
    """Names of the hardware models (not the device profiles) in the hardware registry, sorted."""
    return sorted(e.name for e in hardware.entries() if e.obj.kind == "model")


def load_hardware_model(
    name_or_path: str | os.PathLike[str] | HardwareModel, hardware: Registry[HardwareSource] | None = None
) -> HardwareModel:
    """A hardware model by name in the hardware registry (`toolkit.hardware`; `na-toolkit hw list`) or by
    path to a TOML file. A model passed in is returned as is, so callers may accept either. A name needs
    the registry; a registered name is that model even where a file of the name exists (a warning says to
    write './NAME'), and a reference that looks like a path (`na_toolkit.files.looks_like_path`) is a path."""
    if isinstance(name_or_path, HardwareModel):
        return name_or_path
    if isinstance(name_or_path, os.PathLike):
        return read_hardware_model(name_or_path)
    hardware = require_registry(hardware, "hardware")
    name = str(name_or_path)
    registered = hardware is not None and name in hardware
    if not registered and looks_like_path(name):
        return read_hardware_model(os.path.expanduser(name))
    if hardware is None:
        exists = f" (to read the file {name!r}, write './{name}')" if path_exists(name) else ""
        raise HardwareError(
            f"hardware model {name!r}: a name is looked up in the toolkit's hardware registry; pass it "
            "(load_hardware_model(name, toolkit.hardware); a time model: hardware_registry=toolkit.hardware, or "
            f"build it with get_time_model(name, toolkit, ...)) or give the path of a .toml file{exists}"
        )
    if registered:
        warn_shadowed("hardware model", name, Path(name))
        source = hardware.get(name)
        if source.kind != "model":
            raise HardwareError(
                f"{name!r} is a device {source.kind} ({source.path}), not a hardware model; use the learned time "
                f"model for profiles. Hardware models: {', '.join(known_hardware_models(hardware))}"
            )
        return read_hardware_model(source.path)
    try:
        return read_hardware_model(named_path(name, known_hardware_models(hardware), "hardware model"))
    except UnknownComponentError as unknown:
        raise HardwareError(
            f"{unknown}; a hardware model of your own is given by the path of its .toml file (e.g. {name}.toml) or "
            "found by name in a folder of NA_TOOLKIT_HWMODELS_PATH (docs/time_models.md)"
        ) from None


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


def _toml_text_block(value: str) -> str:
    """A multi-line basic string (the newline after the opening quotes is not part of the value)."""
    # only a backslash, a run of three quotes and a quote next to the closing ones need an escape
    escaped = value.replace("\\", "\\\\").replace('"""', '""\\"')
    if escaped.endswith('"'):
        escaped = escaped[:-1] + '\\"'
    return f'"""\n{escaped}"""'


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else _toml_string(key)


def _line(key: str, value_text: str, doc_key: str) -> str:
    doc = FIELD_DOCS.get(doc_key, "")
    return f"{key} = {value_text}" + (f"  # {doc}" if doc else "")


def _citations(model: HardwareModel, value_keys: list[str]) -> dict[str, str]:
    """The `[sources]` entries: each value's citation, else (so the file still says what the value is)
    the meaning of its key, marked as uncited."""
    out: dict[str, str] = {}
    for key in value_keys:
        note = " ".join(str(model.notes.get(key, "")).split())
        if not note:
            doc = FIELD_DOCS.get(key) or FIELD_DOCS.get(key.rsplit(".", 1)[0], "")
            note = f"{doc} (no source given)" if doc else ""
        if note:
            out[key] = note
    return out


def hardware_model_toml(model: HardwareModel) -> str:
    """The TOML text of a hardware model: its values, what the device is (`about`) and each value's
    citation (`[sources]`)."""
    data = model.to_dict()
    lines = [
        f"# Hardware model for na_toolkit (schema {SCHEMA_VERSION}); values are {model.values_are}. SI units, the",
        "# unit in each key's name; [sources] cites where each value comes from.",
        "",
    ]
    for key in ("schema_version", "name", "description", "kind", "values_are"):
        value = data[key]
        lines.append(_line(key, _toml_string(value) if isinstance(value, str) else _toml_number(value), key))
    about = str(model.notes.get("", "")).strip()
    if about:
        lines.append(f"about = {_toml_text_block(about)}")
    value_keys: list[str] = []
    for key in ("memory_bandwidth_bytes_per_s", "memory_capacity_bytes", "launch_overhead_s", "power_w"):
        if key in data:
            lines.append(_line(key, _toml_number(data[key]), key))
            value_keys.append(key)
    lines += ["", "[peak_flops_per_s]  # " + FIELD_DOCS["peak_flops_per_s"]]
    for dtype, value in data["peak_flops_per_s"].items():
        lines.append(f"{dtype} = {_toml_number(float(value))}")
        value_keys.append(f"peak_flops_per_s.{dtype}")
    ceilings = data.get("measured_ceilings", {})
    if ceilings:
        lines += ["", "[measured_ceilings]  # " + FIELD_DOCS["measured_ceilings"]]
        if "memory_bandwidth_bytes_per_s" in ceilings:
            key = "measured_ceilings.memory_bandwidth_bytes_per_s"
            lines.append(
                _line(
                    "memory_bandwidth_bytes_per_s", _toml_number(float(ceilings["memory_bandwidth_bytes_per_s"])), key
                )
            )
            value_keys.append(key)
        if "flops_per_s" in ceilings:
            lines += ["", "[measured_ceilings.flops_per_s]  # " + FIELD_DOCS["measured_ceilings.flops_per_s"]]
            for dtype, value in ceilings["flops_per_s"].items():
                lines.append(f"{dtype} = {_toml_number(float(value))}")
                value_keys.append(f"measured_ceilings.flops_per_s.{dtype}")
    sources = _citations(model, value_keys)
    # citations of the descriptive keys, kept when a model has them
    sources.update(
        {k: " ".join(v.split()) for k, v in model.notes.items() if k in ("description", "kind", "values_are")}
    )
    if sources:
        lines += ["", "[sources]  # " + FIELD_DOCS["sources"]]
        lines += [f"{_toml_key(k)} = {_toml_string(v)}" for k, v in sources.items()]
    return "\n".join(lines) + "\n"


def save_hardware_model(model: HardwareModel, path: str | os.PathLike[str]) -> Path:
    """Write `model` as TOML with its citations to `path` (its name becomes the file stem's). The text is
    validated before it replaces the file, so a failed write never leaves a corrupt model behind."""
    p = Path(path)
    if p.suffix != ".toml":
        raise HardwareError(f"{p}: a hardware model file must end in .toml")
    if model.name != p.stem:
        model = replace(model, name=p.stem)
    text = hardware_model_toml(model)
    parse_hardware_model(text, p)  # what we write must read back
    p.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(p, text)  # honours the umask (0644 as every other output), never half a file
    return p
