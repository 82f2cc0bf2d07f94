"""`na-toolkit hw estimate ARCH [ARCH ...] --device D [--time-model NAME] [--batch-size B] [--json]`: a network's
latency, peak memory and energy from a time model, without a search: the learned model of a device profile,
the roofline of a hardware model, or a measurement on this machine. What the estimate warns about (a profile
of another device, a network outside what the profile measured) goes to stderr, and into `--json`."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any


def configure(sub: Any) -> None:
    p = sub.add_parser(
        "estimate",
        help="estimate networks' latency, peak memory and energy with a time model (learned, roofline, measured)",
    )
    p.add_argument("archs", nargs="+", metavar="ARCH", help="a seed name, or an architecture .json or .onnx file")
    p.add_argument(
        "--device",
        required=True,
        help="a device profile (name or .json: the learned model), a hardware model (name or .toml: the "
        "roofline) or a local device (cpu, cuda:N: measured with onnxruntime)",
    )
    p.add_argument("--time-model", default=None, help="a registered time model (default: from --device, as above)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size (default 1)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a time-model option, as a config's time_model options (repeatable): dtype=int8 for the roofline; "
        "`na-toolkit plugins --options NAME` lists a model's",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def default_time_model(device: str, hardware: Any) -> str:
    """learned for a profile, roofline for a hardware model, onnxruntime for a device of this machine."""
    from ..errors import UnknownComponentError
    from ..files import path_exists
    from ..machine import parse_device

    suffix = Path(device).suffix.lower()
    if suffix == ".json" or (device in hardware and hardware.get(device).kind == "profile"):
        return "learned"
    if suffix == ".toml" or device in hardware:
        return "roofline"
    try:
        parse_device(device)
    except Exception:
        if path_exists(device):
            return "learned"  # a file named without its suffix: read as a profile, which says what it is
        # none of the three: name them all (a hardware model's lookup alone would not mention profiles)
        near = [f"./{device}{s}" for s in (".toml", ".json") if Path(device + s).is_file()]
        raise UnknownComponentError(
            "device profile, hardware model or local device",
            device,
            hardware.names(),
            (f"Did you mean the file {' or '.join(near)}? " if near else "")
            + "A local device is cpu or cuda:N; a file of your own is given by its path (a hardware model's "
            ".toml, a profile's .json).",
        ) from None
    return "onnxruntime"


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..timemodels import get_time_model
    from ._format import parse_key_values
    from ._output import warn
    from .arch import MAX_BATCH_SIZE, load_architecture

    if args.batch_size > MAX_BATCH_SIZE:  # 1e20 was estimated (needing 1.5e15 GiB), as no config's device takes
        raise ConfigError(f"--batch-size must be <= {MAX_BATCH_SIZE} (a config's largest), got {args.batch_size}")
    toolkit = args.toolkit
    name = args.time_model or default_time_model(args.device, toolkit.hardware)
    options = parse_key_values(args.option, "--option")
    if "device" in options:
        raise ConfigError("--option device=...: give the device with --device")
    archs = [load_architecture(spec, toolkit) for spec in args.archs]  # every file read before any estimate
    with warnings.catch_warnings(record=True) as caught:
        # the model's warnings (a measured ceiling above the datasheet, a profile too small to calibrate) are
        # said once on stderr and kept in every estimate's `warnings`: they are true of each figure
        warnings.simplefilter("always")
        model = get_time_model(name, toolkit, device=args.device, **options)
    model_warnings = list(dict.fromkeys(str(w.message) for w in caught))
    for w in model_warnings:
        warn(w)
    source = model.figure_source("latency_ms")  # what the latency is: measured or estimated, how (the dtype)
    rows: list[dict[str, Any]] = []
    for spec, arch in zip(args.archs, archs):
        est = model.estimate(arch, args.batch_size)
        own = [w for w in est.warnings if w not in model_warnings]
        rows.append(
            {
                "arch": spec,
                "hash": arch.hash,
                "batch_size": est.batch_size,  # the figure's: a table of batch 1 answers 1 whatever was asked
                "latency_ms": est.latency_ms,
                "peak_memory_bytes": est.peak_memory_bytes,
                "energy_mj": est.energy_mj,
                # a measurement's spread and the machine's load around it, beside the figure
                "latency_p10_ms": est.latency_p10_ms,
                "latency_p90_ms": est.latency_p90_ms,
                "load_average_1min": (est.details.get("measurement") or {}).get("context", {}).get("load_average_1min"),
                "warnings": model_warnings + own,
                "outside_profile_domain": list(est.details.get("outside_profile_domain", [])),
            }
        )
        for w in own:
            warn(f"{spec}: {w}")
    sizes = sorted({r["batch_size"] for r in rows})
    batch_size = sizes[0] if len(sizes) == 1 else args.batch_size
    if args.json:
        doc = {
            "time_model": model.name,
            "device": model.device,
            "options": options,
            "latency_source": source.to_json() if source is not None else None,
            "batch_size": batch_size,
            "batch_size_asked": args.batch_size,
            "estimates": rows,
        }
        print(json.dumps(doc, indent=2))
        return 0
    asked = f" (asked {args.batch_size})" if sizes != [args.batch_size] else ""
    per_row = len(sizes) > 1
    print(
        f"{model.name} on {model.device}, batch size {'per network' if per_row else batch_size}{asked}"
        + (f" ({source.kind}: {source.how})" if source else "")
        + ":"
    )
    for r in rows:
        memory = f"{r['peak_memory_bytes'] / 2**20:.3g} MiB" if r["peak_memory_bytes"] is not None else "-"
        energy = f"{r['energy_mj']:.3g} mJ" if r["energy_mj"] is not None else "-"
        flag = "  (outside the profile: an extrapolation)" if r["outside_profile_domain"] else ""
        batch = f" (batch size {r['batch_size']})" if per_row else ""
        print(f"  {r['arch']}: {r['latency_ms']:.4g} ms{_noise(r)}{batch}, peak memory {memory}, energy {energy}{flag}")
    return 0


def _noise(row: dict[str, Any]) -> str:
    """ " (p10 A .. p90 B ms, load L -> L' on N cores)" of a measured figure; "" for an estimate."""
    p10, p90, load = row["latency_p10_ms"], row["latency_p90_ms"], row["load_average_1min"]
    parts = [f"p10 {p10:.4g} .. p90 {p90:.4g} ms"] if p10 is not None and p90 is not None else []
    if load:
        parts.append(f"load {load['before']:g} -> {load['after']:g} on {load['cores']} cores")
    return f" ({', '.join(parts)})" if parts else ""
