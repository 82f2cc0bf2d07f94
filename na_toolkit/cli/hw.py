"""`na-toolkit hw list | show NAME | calibrate [--device cpu|cuda:N] [--out hwmodels/NAME.toml] | estimate ARCH`:
the hardware models (analytic, TOML) and device profiles (measured, JSON) the toolkit knows, a calibration that
measures this machine's roofline ceilings into a new hardware model, and networks estimated with a time model
(hw_estimate.py)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import hw_estimate
from ._format import render_table
from .command import Command

#: the most timed runs per measurement `hw calibrate --repeats` takes (the median of 1000 is as good as any)
MAX_REPEATS = 1_000

if TYPE_CHECKING:
    from ..timemodels.hwmodel import HardwareModel
    from ..timemodels.profile import DeviceProfile


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hw_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="list the registered hardware models and device profiles")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = sub.add_parser(
        "show", help="show one hardware model with the source of each value, or what a device profile measured"
    )
    p.add_argument(
        "name",
        help="a hardware model or device profile name (see `hw list`), a .toml hardware model or a .json profile "
        "(./NAME: a file named like a registered one)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = sub.add_parser(
        "calibrate",
        help="measure this machine's ceilings (matrix product, copy bandwidth, launch overhead) into a hardware model",
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument(
        "--out",
        help="write the model to this .toml file (its stem is the model's name); without it the TOML is printed",
    )
    p.add_argument("--name", help="model name when no --out is given (default local-cpu / local-cudaN)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement; the median is kept")
    p.add_argument("--json", action="store_true", help="print the model as one JSON object")
    hw_estimate.configure(sub)


def _gb(value: float, unit: float = 1e9) -> str:
    """A table number: whole above 100, else three significant digits."""
    v = value / unit
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


#: dtypes whose peak is an integer rate (TOPS, not FLOP/s): left out of `hw list`'s "best TFLOP/s"
INTEGER_DTYPES = ("int8",)


def _best_float_peak(peaks: dict[str, float]) -> float:
    """The highest floating-point peak (an int8 rate is operations, not FLOPs: a T4's 130 TOPS is not its best
    TFLOP/s, 65 at fp16 is)."""
    return max(v for d, v in peaks.items() if d not in INTEGER_DTYPES)


def _model_json(model: HardwareModel) -> dict[str, Any]:
    """The model's values, `about` (what the device is), `notes` (each value's citation) and its file."""
    sources = {k: v for k, v in model.notes.items() if k}  # HardwareModel.notes[""] is the file's `about`
    about = model.notes.get("") or None
    return {**model.to_dict(), "about": about, "notes": sources, "source": str(model.source) if model.source else None}


def _list(args: argparse.Namespace) -> int:
    from ..errors import HardwareError
    from ..timemodels.hwmodel import read_hardware_model

    entries = sorted(args.toolkit.hardware.entries(), key=lambda e: (e.obj.kind, e.name))
    items: list[dict[str, Any]] = []
    for entry in entries:
        source = entry.obj
        item: dict[str, Any] = {
            "name": source.name,
            "kind": source.kind,
            "path": str(source.path),
            "plugin": entry.plugin,
        }
        if source.kind == "model":
            try:
                item["model"] = read_hardware_model(source.path).to_dict()
            except HardwareError as exc:  # one broken file must not hide the others
                item["error"] = str(exc)
        items.append(item)
    if args.json:
        print(json.dumps({"hardware": items}, indent=2))
        return 0
    rows = []
    for item in items:
        m = item.get("model")
        if m is not None:
            rows.append(
                [
                    item["name"],
                    m["kind"],
                    _gb(m["peak_flops_per_s"]["fp32"], 1e12),
                    _gb(_best_float_peak(m["peak_flops_per_s"]), 1e12),
                    _gb(m["memory_bandwidth_bytes_per_s"]),
                    _gb(m["memory_capacity_bytes"], 2**30),
                    f"{m['launch_overhead_s'] * 1e6:.1f}",
                    f"{m['power_w']:g}" if "power_w" in m else "-",
                    m["values_are"],
                ]
            )
        elif "error" in item:
            rows.append([item["name"], "model", "-", "-", "-", "-", "-", "-", f"error: {item['error']}"])
        else:
            rows.append([item["name"], item["kind"], "-", "-", "-", "-", "-", "-", item["path"]])
    headers = ["name", "kind", "fp32 TFLOP/s", "best TFLOP/s", "GB/s", "GiB", "launch us", "W", "values"]
    print(render_table(headers, rows, right={2, 3, 4, 5, 6, 7}))
    return 0


def _is_profile(name: str, hardware: Any) -> bool:
    if Path(name).suffix.lower() == ".json":
        return True
    return name in hardware and hardware.get(name).kind == "profile"


def _show(args: argparse.Namespace) -> int:
    from ..files import name_or_path
    from ..timemodels.hwmodel import load_hardware_model

    # a bare name that is neither registered nor a file here: the close names of both kinds, './NAME' for a file
    name_or_path(args.name, args.toolkit.hardware.names(), "hardware model or device profile")
    if _is_profile(args.name, args.toolkit.hardware):
        return _show_profile(args)
    model = load_hardware_model(args.name, args.toolkit.hardware)
    if args.json:
        print(json.dumps(_model_json(model), indent=2))
        return 0
    print(f"{model.name}: {model.description}  [{model.kind}, {model.values_are}]  ({model.source})")
    notes = model.notes
    if notes.get("", "").strip():
        print("\n".join(f"  {line}" for line in notes[""].strip().splitlines()))

    def row(key: str, label: str, value: str) -> list[str]:
        return [label, value, notes.get(key, "")]

    rows = [
        row("memory_bandwidth_bytes_per_s", "memory bandwidth", f"{model.memory_bandwidth_bytes_per_s / 1e9:.4g} GB/s"),
        row("memory_capacity_bytes", "memory capacity", f"{model.memory_capacity_bytes / 2**30:.4g} GiB"),
        row("launch_overhead_s", "launch overhead", f"{model.launch_overhead_s * 1e6:.4g} us"),
        row("power_w", "power", f"{model.power_w:g} W" if model.power_w is not None else "-"),
    ]
    rows += [
        row(f"peak_flops_per_s.{d}", f"peak {d}", f"{model.peak_flops_per_s[d] / 1e12:.4g} TFLOP/s")
        for d in model.dtypes
    ]
    if model.measured_memory_bandwidth_bytes_per_s is not None:
        rows.append(
            row(
                "measured_ceilings.memory_bandwidth_bytes_per_s",
                "measured bandwidth",
                f"{model.measured_memory_bandwidth_bytes_per_s / 1e9:.4g} GB/s",
            )
        )
    for d, v in model.measured_flops_per_s.items():
        rows.append(row(f"measured_ceilings.flops_per_s.{d}", f"measured {d}", f"{v / 1e12:.4g} TFLOP/s"))
    rows.append(
        [
            "ridge point fp32",
            f"{model.ridge_point_flops_per_byte('fp32'):.1f} FLOP/byte",
            "above it a kernel is compute-bound",
        ]
    )
    print(render_table(["quantity", "value", "source"], rows))
    return 0


def _range(values: list[float]) -> dict[str, float] | None:
    return {"min": min(values), "median": float(statistics.median(values)), "max": max(values)} if values else None


def _profile_json(profile: DeviceProfile, path: Path) -> dict[str, Any]:
    """What `hw show` says of a device profile: the device and runtime it was measured on, the statistic its
    latencies are, the statistics a learned model can be fitted on, what it holds and the networks' range."""
    from ..timemodels.measured import STATISTICS
    from .profile import profile_contention

    items = [*profile.kernels, *profile.networks]
    kept = [s for s in STATISTICS if items and all(isinstance(i.measurement.get(f"{s}_ms"), float) for i in items)]
    speed = [float(reading[1]) for reading in profile.speed_checks if len(reading) > 1]
    return {
        "name": profile.name,
        "kind": "profile",
        "path": str(path),
        "complete": profile.complete,
        "stopped": profile.stopped or None,
        "device": profile.device,
        "runtime": profile.runtime,
        "batch_size": profile.batch_size,
        "statistic": profile.statistic,
        "statistics": kept,
        "kernels": len(profile.kernels),
        "networks": len(profile.networks),
        "failures": len(profile.failures),
        "elapsed_s": profile.elapsed_s,
        "fewshot": profile.fewshot.n if profile.fewshot is not None else None,
        # `profile --quick`: measurement minimums for smoke tests, noisier latencies
        "quick": profile.quick,
        # items measured while other processes took the measuring thread's core; "unknown": not recorded
        "contention": profile_contention(profile),
        "network_latency_ms": {s: _range([n.latency_ms(s) for n in profile.networks]) for s in kept},
        "speed_check_ms": _range(speed),
    }


def _show_profile(args: argparse.Namespace) -> int:
    from ..timemodels.profile import DeviceProfile, resolve_profile_path
    from ..timemodels.profile_fewshot import fit_summary, fit_summary_line

    path = resolve_profile_path(args.name, args.toolkit.hardware)
    profile = DeviceProfile.load(path)
    doc = _profile_json(profile, path)
    if profile.fewshot is not None:
        doc["fewshot_model"] = fit_summary(profile, args.toolkit.layer_types)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    state = "complete" if doc["complete"] else f"partial ({doc['stopped'] or 'stopped'}: continue with --resume)"
    print(f"{doc['name']}: device profile  [{state}]  ({path})")
    dev, rt = doc["device"], doc["runtime"]
    versions = ", ".join(f"{k} {v}" for k, v in (rt.get("versions") or {}).items())
    threads = f"{rt.get('intra_op_threads', '?')} intra-op, {rt.get('inter_op_threads', '?')} inter-op threads"
    rows = [
        ["device", f"{dev.get('name', '?')} ({dev.get('device', '?')}, {dev.get('cores', '?')} cores)"],
        ["runtime", f"{rt.get('name', '?')} ({versions}), {rt.get('provider', '-')}, {threads}"],
        ["clock", str(rt.get("clock", "?"))],
        ["batch size", str(doc["batch_size"])],
        ["statistic", f"{doc['statistic']} (the profile's; records keep {', '.join(doc['statistics']) or 'none yet'})"],
        ["measured", f"{doc['kernels']} kernels, {doc['networks']} networks, {doc['failures']} failures"],
        ["elapsed", f"{doc['elapsed_s']:.0f} s"],
    ]
    from .profile import contention_text, readiness

    contended = contention_text(doc["contention"], str(rt.get("clock", "?")))
    if contended is not None:
        rows.append(["contended", contended])
    if doc["quick"]:
        rows.append(["minimums", "--quick: a smoke test's, noisier latencies; profile again without it for use"])
    if doc["fewshot"] is not None:
        rows.append(["few-shot", f"{doc['fewshot']} networks measured, the rest borrowed from its priors"])
        if doc["fewshot_model"] is not None:
            rows.append(["few-shot model", fit_summary_line(doc["fewshot_model"])])
    for stat, span in doc["network_latency_ms"].items():
        if span is not None:
            rows.append(
                [f"networks ({stat})", f"{span['min']:.4g} .. {span['max']:.4g} ms, median {span['median']:.4g}"]
            )
    if doc["speed_check_ms"] is not None:
        span = doc["speed_check_ms"]
        rows.append(["reference network", f"{span['min']:.4g} .. {span['max']:.4g} ms over the run (speed checks)"])
    print(render_table(["quantity", "value"], rows))
    registered = Path(args.name).suffix.lower() != ".json"  # a name; a path in a config is from the config's folder
    device = args.name if registered else path.resolve()
    usable, note = readiness(
        doc["kernels"], doc["networks"], complete=doc["complete"], fewshot=doc["fewshot"] is not None
    )
    if usable:
        print(
            f'use it: time_model = {{ name = "learned", options = {{ device = "{device}" }} }}: it predicts '
            f"the profile's {doc['statistic']}, or in a search whose device has a measure the measure's statistic"
        )
    if note:
        print(note)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from ..errors import HardwareError
    from ..files import HARDWARE_MODEL
    from ..timemodels.calibrate import calibrate_hardware
    from ..timemodels.devices import torch_device
    from ..timemodels.hwmodel import hardware_model_toml, read_hardware_model, save_hardware_model
    from ._output import check_out, notice

    if args.repeats < 1:
        raise HardwareError(f"--repeats must be >= 1, got {args.repeats}")
    if args.repeats > MAX_REPEATS:  # `--repeats 1e20` measured on for ever
        raise HardwareError(f"--repeats must be <= {MAX_REPEATS}, got {args.repeats}")
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix != ".toml":
        raise HardwareError(f"--out {out}: a hardware model file must end in .toml")
    if out is not None:
        # before the calibration, not after it (it takes a while)
        check_out(out, "--out", HardwareError, suffixes=(".toml",), kind=HARDWARE_MODEL)
    torch_device(args.device)  # an unknown device fails here, before any progress line
    notice(f"na-toolkit: calibrating {args.device}: matrix product, copy bandwidth, launch overhead ...")
    model = calibrate_hardware(args.device, name=out.stem if out else args.name, repeats=args.repeats)
    if out is not None:
        save_hardware_model(model, out)
        model = read_hardware_model(out)  # its `source` (in --json) is the file written
    if args.json:
        print(json.dumps(_model_json(model), indent=2))
    elif out is None:
        sys.stdout.write(hardware_model_toml(model))
    else:
        peaks = ", ".join(f"{d} {v / 1e12:.3g} TFLOP/s" for d, v in model.peak_flops_per_s.items())
        print(
            f"wrote {out}: {model.name}: {peaks}; copy {model.memory_bandwidth_bytes_per_s / 1e9:.3g} GB/s; "
            f"launch {model.launch_overhead_s * 1e6:.3g} us"
        )
    return 0


def _run(args: argparse.Namespace) -> int:
    return {"list": _list, "show": _show, "calibrate": _calibrate, "estimate": hw_estimate.run}[args.hw_command](args)


COMMANDS = (
    Command(
        "hw",
        "hardware models: list, show, calibrate this machine, estimate networks with a time model",
        _configure,
        _run,
    ),
)
