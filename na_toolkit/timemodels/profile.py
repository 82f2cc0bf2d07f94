"""The device profile format: measured kernels and whole networks of one device + runtime, as
schema-versioned JSON (`"schema": "na_toolkit.device_profile"`, `"schema_version": 1`).

A profile is data, never a pickled model: the `learned` time model is fitted from it when it is loaded.
`DeviceProfile` is the document (a pydantic model: a bad file is one `ProfileError` naming the path of the
bad value, e.g. `networks[3].measurement`); `save` writes it atomically. `profiler.ProfileBuilder` builds
and resumes profiles; this module knows nothing of measuring.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator

from ..errors import HardwareError, NAToolkitError, NAToolkitWarning, ProfileError
from ..files import (
    DEVICE_PROFILE,
    HARDWARE_MODEL,
    document_kind,
    kind_of_document,
    looks_like_path,
    name_or_path,
    parse_json,
    path_exists,
    read_text,
    with_article,
)
from ..ir.architecture import MAX_TENSOR_ELEMENTS, Architecture
from ..validation import Document, format_validation_error
from .devices import describe_device, parse_device
from .measure_noise import contention_record
from .profile_plan import check_plan, check_record, check_settings

if TYPE_CHECKING:
    from ..ir.layers import LayerTypeRegistry
    from ..registry import Registry
    from .hardware import HardwareSource

PROFILE_SCHEMA = "na_toolkit.device_profile"
PROFILE_SCHEMA_VERSION = 1
#: what a profile keeps of each item's measurement (the measurement's context is stored once per profile)
SUMMARY_KEYS = tuple("median_ms p10_ms p90_ms iqr_ms min_ms cv runs calls_per_run stable wall_median_ms".split())


class ProfileDeviceWarning(NAToolkitWarning):
    """A profile measured on another device than the one here."""


def measurement_summary(details: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a time estimate's measurement a profile keeps per item (`TimeEstimate.details`)."""
    m = details["measurement"]
    # + whether other processes took the measuring thread's core (measure_noise.contention): absent where the
    # rule cannot tell (a wall clock) and in profiles written before it was recorded
    out = {k: m[k] for k in SUMMARY_KEYS if k in m} | contention_record(m)
    nv = details.get("nvml") or {}
    if nv.get("before") is not None:  # GPU: keep the telemetry per item
        out["nvml"] = nv
    return out


# ---- records --------------------------------------------------------------------------------------------
class MeasuredItem(Document):
    """One measured architecture of a profile (a kernel's standalone network or a whole network)."""

    #: Architecture JSON
    arch: dict[str, Any]
    #: `measurement_summary` of its measurement: latency statistics in ms, run counts, stability, contention
    measurement: dict[str, Any]
    phase: str = "initial"
    remeasured: int = 0

    @field_validator("arch")
    @classmethod
    def _architecture_shape(cls, arch: dict[str, Any]) -> dict[str, Any]:
        # the full check needs the layer types (the learned model builds each one); the shape is checked here,
        # so a record a resumed profile only carries along is not corrupt either
        shape = arch.get("input_shape")
        if not (
            isinstance(shape, list)
            and shape
            and all(type(d) is int and d > 0 for d in shape)
            and math.prod(shape) <= MAX_TENSOR_ELEMENTS
        ):
            raise ValueError(f"arch needs an 'input_shape' of positive ints of a sane size, got {str(shape)[:80]}")
        if not isinstance(arch.get("nodes"), list) or not arch["nodes"]:
            raise ValueError("arch needs a non-empty list of 'nodes'")
        return arch

    @field_validator("measurement")
    @classmethod
    def _positive_median(cls, m: dict[str, Any]) -> dict[str, Any]:
        median = m.get("median_ms")
        if isinstance(median, bool) or not isinstance(median, (int, float)) or not 0 < median < math.inf:
            raise ValueError(f"measurement needs a positive 'median_ms', got {m!r}")
        return m

    def latency_ms(self, statistic: str = "median") -> float:
        return float(self.measurement[f"{statistic}_ms"])


class KernelRecord(MeasuredItem):
    """A kernel configuration (`kernels.Kernel.key`) measured as a standalone network."""

    key: str
    kind: str


class NetworkRecord(MeasuredItem):
    """A whole network: a seed and the moves that made it from the seed."""

    hash: str
    seed: str
    moves: list[dict[str, Any]]


# ---- a few-shot profile's record of how it was made (profile_fewshot.py builds it) -------------------------
class FewShotPrior(Document):
    """A prior device profile a few-shot profile was fitted with, embedded whole (a profile is data: the
    few-shot model refits the prior's learned model on load, with no other file needed)."""

    name: str
    #: `DeviceProfile.content_hash()` of the prior: which measurements these are
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    device: str
    runtime: str
    profile: dict[str, Any]


class FewShotSection(Document):
    """How a few-shot profile was made: `n` networks measured here, chosen among `pool` candidates by
    `selection`, with the latency structure of `priors` (other devices' profiles)."""

    n: int = Field(ge=3, le=10_000, strict=True)
    pool: int = Field(ge=1, le=1_000_000, strict=True)
    selection: str
    #: hashes of the chosen networks, in the order they are measured (a resume measures the rest)
    chosen: list[str] = Field(max_length=10_000)
    priors: list[FewShotPrior] = Field(min_length=1, max_length=64)
    #: per chosen network (in `chosen` order): how many pool candidates it stands for (those nearest to it in
    #: the selection's features); the fit weighs its leave-one-out errors by them. Absent before 0.4.0.
    pool_share: list[int] | None = Field(default=None, max_length=10_000)

    def dump(self) -> dict[str, Any]:
        doc = self.model_dump()
        if doc["pool_share"] is None:  # a profile written before the field stays byte for byte as it was
            del doc["pool_share"]
        return doc


# ---- the profile ----------------------------------------------------------------------------------------
#: fields a file may leave null, and what null reads as
_NULLABLE: dict[str, Any] = {
    "complete": False,
    "stopped": "",
    "created": "",
    "updated": "",
    "elapsed_s": 0.0,
    "nvml": {},
    "failures": [],
    "speed_checks": [],
}


class DeviceProfile(Document):
    """A measured device profile. `device` and `software` describe where it was measured; `plan` holds the
    arguments and the seed networks that regenerate the sampling plan on --resume. `path` is where it was
    read or saved."""

    schema_id: str = Field(default=PROFILE_SCHEMA, alias="schema")
    schema_version: int = PROFILE_SCHEMA_VERSION
    name: str
    complete: bool = Field(False, strict=True)
    stopped: str = ""
    created: str = ""
    updated: str = ""
    elapsed_s: float = 0.0
    device: dict[str, Any]
    software: dict[str, Any]
    runtime: dict[str, Any]
    batch_size: int = Field(ge=1, le=65_536, strict=True)
    plan: dict[str, Any]
    settings: dict[str, Any]
    nvml: dict[str, Any] = {}
    #: written for readers of the file; derived from the lists, so ignored when read
    counts: dict[str, Any] | None = Field(default=None, exclude=True)
    kernels: list[KernelRecord]
    networks: list[NetworkRecord]
    failures: list[dict[str, Any]] = []
    #: [elapsed seconds, reference network latency in ms]: the machine's speed over the run
    speed_checks: list[list[float]] = []
    #: set on a few-shot profile (`na-toolkit profile --fewshot N --prior ...`), absent on a full one
    fewshot: FewShotSection | None = None

    _path: Path | None = PrivateAttr(None)
    #: a few-shot profile's priors, parsed (and checked against their content hashes) when it is read
    _priors: list[DeviceProfile] = PrivateAttr(default_factory=list)

    @field_validator(*_NULLABLE, mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        # these may be null in a file (unset): read as their defaults
        return copy.copy(_NULLABLE[str(info.field_name)]) if value is None else value

    @field_validator("plan")
    @classmethod
    def _bounded_plan(cls, plan: dict[str, Any]) -> dict[str, Any]:
        return check_plan(plan)

    @field_validator("settings")
    @classmethod
    def _bounded_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        return check_settings(settings)

    @field_validator("runtime", "device")
    @classmethod
    def _known_values(cls, record: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        return check_record(str(info.field_name), record)

    @property
    def path(self) -> Path | None:
        return self._path

    @path.setter
    def path(self, value: Path | None) -> None:
        self._path = value

    # ---- identity of the device -------------------------------------------------------------------------
    @property
    def device_name(self) -> str:
        return str(self.device.get("name", "?"))

    @property
    def runtime_name(self) -> str:
        return str(self.runtime.get("name", "?"))

    @property
    def statistic(self) -> str:
        """Which statistic of the samples the profile's latencies are (see measured.STATISTICS)."""
        return str(self.runtime.get("statistic", "median"))

    @property
    def quick(self) -> bool:
        """Measured with `na-toolkit profile --quick`: the smoke tests' measurement minimums, noisier latencies."""
        from .measure import MeasureSettings

        quick = MeasureSettings.quick().to_json()
        return bool(self.settings) and all(v == quick for v in self.settings.values())

    def kernel_keys(self) -> set[str]:
        return {k.key for k in self.kernels}

    def network_hashes(self) -> set[str]:
        return {n.hash for n in self.networks}

    def content_hash(self) -> str:
        """SHA-256 of what the profile measured (its document without the run's bookkeeping: times,
        complete, stopped): the identity a few-shot profile records its priors by."""
        doc = self.to_json()
        for key in ("updated", "elapsed_s", "complete", "stopped"):
            doc.pop(key, None)
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def architectures(self, layer_types: LayerTypeRegistry) -> list[Architecture]:
        """The profile's networks, built with `layer_types`."""
        return [Architecture.from_json(n.arch, layer_types=layer_types) for n in self.networks]

    # ---- JSON -------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "schema": PROFILE_SCHEMA,
            "schema_version": PROFILE_SCHEMA_VERSION,
            "name": self.name,
            "complete": self.complete,
            "stopped": self.stopped,
            "created": self.created,
            "updated": self.updated,
            "elapsed_s": round(self.elapsed_s, 3),
            "device": self.device,
            "software": self.software,
            "runtime": self.runtime,
            "batch_size": self.batch_size,
            "plan": self.plan,
            "settings": self.settings,
            "nvml": self.nvml,
            "counts": {"kernels": len(self.kernels), "networks": len(self.networks), "failures": len(self.failures)},
            "kernels": [k.model_dump() for k in self.kernels],
            "networks": [n.model_dump() for n in self.networks],
            "failures": self.failures,
            "speed_checks": self.speed_checks,
            # only on a few-shot profile: a full profile's document (and its content hash) stays as it was
            **({"fewshot": self.fewshot.dump()} if self.fewshot is not None else {}),
        }

    def save(self, path: str | Path | None = None) -> Path:
        """Write atomically: a temp file in the same folder, fsync, then os.replace (never a torn file)."""
        target = Path(path or self.path or f"{self.name}.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        self.updated = utc_now()
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        text = json.dumps(self.to_json(), separators=(",", ":"), default=str)
        with open(tmp, "w") as f:
            f.write(text)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        self.path = target
        return target

    @classmethod
    def from_json(cls, doc: Any, where: str = "profile") -> DeviceProfile:
        """A profile from its JSON document; `where` names it in errors."""
        if not isinstance(doc, dict) or doc.get("schema") != PROFILE_SCHEMA:
            raise ProfileError(f'{where} is not a na_toolkit device profile (no "schema": "{PROFILE_SCHEMA}")')
        version = doc.get("schema_version")
        if version != PROFILE_SCHEMA_VERSION or type(version) is not int:
            raise ProfileError(
                f"{where} has profile schema_version {version!r}; this toolkit reads {PROFILE_SCHEMA_VERSION}: "
                "rebuild it with `na-toolkit profile`"
            )
        try:
            profile = cls.model_validate(doc)
        except ValidationError as exc:
            raise ProfileError(f"{where}: {format_validation_error(exc, cls)}") from None
        profile.require_statistic(profile.statistic, where)  # what the learned model and the profiler read
        profile.prior_profiles(where)  # a few-shot profile's priors are checked on reading
        return profile

    def record_arch(self, where: str, doc: Any, layer_types: LayerTypeRegistry) -> Architecture:
        """The architecture a record (`where`: `networks[3]`) stores; one this toolkit cannot build (a layer type
        of a plugin not installed here, an edited file) is a ProfileError naming the file and the record."""
        try:
            return Architecture.from_json(doc, layer_types=layer_types)
        except NAToolkitError as e:
            raise ProfileError(
                f"profile {str(self.path or self.name)!r}: {where}.arch cannot be built here: {e}. Install the "
                "plugin that registers its layer types, or measure the profile again with `na-toolkit profile`"
            ) from e

    def require_statistic(self, statistic: str, where: str | None = None) -> None:
        """ProfileError unless every kernel and network record holds a positive `<statistic>_ms` (every profile
        records the median, p10 and min of each item; a learned model may be fitted on any of them)."""
        key = f"{statistic}_ms"
        own = " (the profile's statistic)" if statistic == self.statistic else ""
        where = where or f"profile {self.name!r}" + (f" ({self.path})" if self.path is not None else "")
        for part, items in (("kernels", self.kernels), ("networks", self.networks)):
            for i, item in enumerate(items):
                value = item.measurement.get(key)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                    raise ProfileError(
                        f"{where}: {part}[{i}].measurement needs a positive {key!r}"
                        f"{own}, got {value!r}: rebuild it with `na-toolkit profile`"
                    )

    def prior_profiles(self, where: str | None = None) -> list[DeviceProfile]:
        """A few-shot profile's prior profiles, each checked against its content hash (empty for a full
        profile); `where` names the profile in errors."""
        if self.fewshot is None:
            return []
        if len(self._priors) != len(self.fewshot.priors):
            where = where or f"profile {self.name!r}"
            parsed = []
            for i, prior in enumerate(self.fewshot.priors):
                embedded = DeviceProfile.from_json(prior.profile, where=f"{where}: fewshot.priors[{i}].profile")
                if embedded.fewshot is not None or embedded.content_hash() != prior.content_hash:
                    raise ProfileError(
                        f"{where}: fewshot.priors[{i}] ({prior.name!r}) is not the full profile its content_hash "
                        "names (edited or damaged): rebuild the few-shot profile with `na-toolkit profile --fewshot`"
                    )
                parsed.append(embedded)
            self._priors = parsed
        return list(self._priors)

    @classmethod
    def load(cls, path: str | Path) -> DeviceProfile:
        p = Path(path)
        text = read_text(p, "profile", ProfileError)
        try:
            doc = parse_json(text, f"profile {str(p)!r}", ProfileError)
        except ProfileError as exc:
            _refuse_other_document(p, document_kind(p))  # no JSON: a hardware model's TOML, say
            raise ProfileError(f"{exc}; the file is damaged: measure it again with `na-toolkit profile`") from None
        _refuse_other_document(p, kind_of_document(doc, ".json"))  # parsed as JSON, whatever its name
        prof = cls.from_json(doc, where=f"profile {str(p)!r}")
        prof.path = p
        return prof


def _refuse_other_document(p: Path, kind: str | None) -> None:
    """A ProfileError saying what the file at `p` is when it is another toolkit document (`kind`, from
    `files.document_kind`): a hardware model or an architecture given where a profile goes."""
    if kind in (None, DEVICE_PROFILE):
        return
    use = (
        'the roofline time model reads hardware models (name = "roofline"); the learned one needs a profile'
        if kind == HARDWARE_MODEL
        else "give the .json of a device profile"
    )
    raise ProfileError(
        f"{str(p)!r} is {with_article(kind)}, not a device profile: {use} (`na-toolkit profile` measures one)"
    )


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# ---- where a profile is, whose device it describes ----------------------------------------------------
def check_device(profile: DeviceProfile, strict: bool = False) -> str | None:
    """Compare the profile's device with this machine's device of the same kind. Returns the warning text
    (also issued as ProfileDeviceWarning) when they differ; strict=True raises ProfileError instead."""
    stored = str(profile.device.get("device", "cpu"))
    try:
        spec = parse_device(stored)
    except HardwareError as exc:
        raise ProfileError(f"profile {profile.name!r}: its device {stored!r} is not a local device ({exc})") from None
    kind = profile.device.get("kind", spec.kind)
    here = describe_device(spec)
    there = profile.device_name
    if here == there:
        return None
    if spec.is_cuda and here.endswith("(unknown GPU)"):  # no GPU here at all (or none torch or NVML can see)
        here_text = f"this machine has no {stored} (no GPU that torch or NVML can see)"
    else:
        here_text = f"this machine's {kind} is {here!r}"
    msg = f"profile {profile.name!r} was measured on {there!r} ({profile.device.get('device', '?')}), but {here_text}"
    if strict:
        raise ProfileError(msg + "; build a new profile here instead of resuming that one")
    warnings.warn(msg + "; its latencies describe that device", ProfileDeviceWarning, stacklevel=3)
    return msg


def _is_local_device(text: str) -> bool:
    try:
        parse_device(text)
    except HardwareError:
        return False
    return True


def resolve_profile_path(device: str | Path, hardware: Registry[HardwareSource] | None = None) -> Path:
    """A profile file from a path, or from a profile name registered in `hardware` (the toolkit's hardware
    registry; `na-toolkit hw list` shows the names). A registered name is that profile even where a file of
    the name exists (a warning says to write './NAME'); a reference that looks like a path is a path
    (`na_toolkit.files.name_or_path`); without a registry a bare name is refused, not read from the working
    directory in place of the registered profile it would mean elsewhere."""
    text = str(device)
    if isinstance(device, Path):
        p = device
    elif hardware is not None:
        profiles = [name for name, src in hardware.items() if src.kind == "profile"]
        other = hardware.get(text) if text in hardware and text not in profiles else None
        if other is not None and not path_exists(text):
            raise ProfileError(
                f"{text!r} is a hardware model ({other.path}), not a device profile: the roofline time model "
                'reads hardware models (name = "roofline"); the learned one needs a profile '
                f"({', '.join(profiles) or 'none registered'}, or one `na-toolkit profile` measures)"
            )
        if text not in hardware and not path_exists(text) and _is_local_device(text):
            raise ProfileError(
                f"{text!r} names a local device, not a device profile: the learned time model predicts from "
                f"a profile measured on it (`na-toolkit profile --device {text} --out profiles/NAME.json`, then "
                f"give that path); to measure instead, use the onnxruntime or torch time model with device {text!r}"
            )
        found = name_or_path(text, profiles, "device profile")
        if found is None:
            return Path(hardware.get(text).path)
        p = found
    elif looks_like_path(text):
        p = Path(os.path.expanduser(text))
    else:
        exists = f"; to read the file {text!r}, write './{text}'" if path_exists(text) else ""
        raise ProfileError(
            f"device profile {text!r}: a name is looked up in the toolkit's hardware registry; pass it "
            "(resolve_profile_path(name, toolkit.hardware); the learned time model: hardware_registry="
            "toolkit.hardware, or build it with get_time_model('learned', toolkit, device=...)) or give the path "
            f"of a .json profile{exists}"
        )
    if not p.exists():
        raise ProfileError(f"profile file {str(p)!r} does not exist")
    return p
