"""GPU check: measure networks with the torch time model on CUDA (CUDA events, NVML telemetry) and compare
them with the roofline of that card's hardware model, in one short run (< 4 minutes).

    python -m na_toolkit.bench.gpu_check [--device cuda:0] [--networks 50] [--out-dir DIR]

(`benchmarks/gpu_check.sh` runs it with DIR = $OUT when set.) Writes DIR/gpu_check.json (figures, params,
machine) and DIR/gpu-profile-<card>.json (a device profile of the card: kernels and networks measured with
the torch runtime, NVML telemetry at start and end). Never changes a GPU setting: NVML is only read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from na_toolkit.timemodels.hwmodel import HardwareModel
    from na_toolkit.toolkit import HardwareRegistry

#: GPU name fragment (as NVML / torch report it) -> shipped hardware model
CARD_MODELS = (
    ("H200", "h200-sxm"),
    ("H100", "h100-sxm"),
    ("A100", "a100-sxm4"),
    ("V100", "v100-sxm2"),
    ("L4", "l4"),
    ("T4", "t4"),
    ("4090", "rtx-4090"),
)
REPO = Path(__file__).resolve().parents[2]


def hardware_model_for(gpu_name: str) -> str | None:
    for fragment, model in CARD_MODELS:
        if fragment.lower() in gpu_name.lower():
            return model
    return None


def _load_hw(name: str, hardware: HardwareRegistry) -> HardwareModel:
    """A registered hardware model by name; by its file in the repository when the package data is not
    installed (a PYTHONPATH checkout)."""
    from na_toolkit.errors import HardwareError
    from na_toolkit.timemodels.hwmodel import load_hardware_model

    try:
        return load_hardware_model(name, hardware)
    except HardwareError:
        path = REPO / "hwmodels" / f"{name}.toml"
        if path.exists():
            return load_hardware_model(path, hardware)
        raise


def _log(msg: str) -> None:
    print(f"gpu_check: {msg}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    """The command's options (its result's "params" are these; tests/test_benchmark_records.py reads them)."""
    parser = argparse.ArgumentParser(prog="python -m na_toolkit.bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0", help="cuda:N (cpu: a dry run of the same steps)")
    parser.add_argument("--networks", type=int, default=50, help="networks measured (default 50)")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--train-networks", type=int, default=10, help="networks whose training step is measured too")
    parser.add_argument("--hwmodel", default=None, help="hardware model for the roofline (default: from the GPU name)")
    parser.add_argument("--out-dir", default=os.environ.get("OUT") or "benchmarks")
    parser.add_argument("--time-budget-s", type=float, default=150.0, help="profile measuring budget (default 150)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    import numpy as np
    import torch

    from na_toolkit.bench.latency_heldout import accuracy
    from na_toolkit.machine import machine_info, parse_device
    from na_toolkit.plugins import load_toolkit
    from na_toolkit.timemodels.measure import MeasureSettings
    from na_toolkit.timemodels.nvml import Nvml
    from na_toolkit.timemodels.profile import DeviceProfile
    from na_toolkit.timemodels.profile_plan import print_to_stderr
    from na_toolkit.timemodels.profiler import ProfileBuilder, ProfileOptions
    from na_toolkit.timemodels.roofline import RooflineTimeModel
    from na_toolkit.timemodels.torch_tm import TorchTimeModel

    toolkit = load_toolkit()  # an entry point (a script): it builds the toolkit and passes it down
    t_start = time.perf_counter()
    index = parse_device(args.device).index
    if args.device == "cpu":  # a dry run of the same code path on a machine without a GPU
        from na_toolkit.machine import cpu_model

        gpu_name, default_hw = cpu_model(), "x86-cpu"
    elif not torch.cuda.is_available():
        print(
            f"gpu_check: error: torch {torch.__version__} sees no CUDA GPU; run this on a machine with one",
            file=sys.stderr,
        )
        return 2
    else:
        gpu_name = torch.cuda.get_device_name(index)
        default_hw = hardware_model_for(gpu_name)
    hw_name = args.hwmodel or default_hw
    if hw_name is None:
        print(f"gpu_check: error: no shipped hardware model matches {gpu_name!r}; pass --hwmodel", file=sys.stderr)
        return 2
    hw = _load_hw(hw_name, toolkit.hardware)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card = hw_name
    with Nvml() as nv:
        nvml_status = nv.status()
        start = nv.snapshot(index)
    _log(f"{gpu_name} (hardware model {hw_name}); NVML: {nvml_status}")

    # 1. a profile of the card: the networks and their kernels, torch runtime, CUDA events
    profile_path = out_dir / f"gpu-profile-{card}.json"
    if profile_path.exists():
        profile_path.unlink()
    settings = MeasureSettings(
        warmup_runs=10, warmup_s=0.1, min_runs=30, max_runs=300, max_time_s=0.4, rel_tolerance=0.02
    )
    kernel_settings = MeasureSettings(
        warmup_runs=10, warmup_s=0.02, min_runs=20, max_runs=200, max_time_s=0.15, rel_tolerance=0.03
    )
    options = ProfileOptions(
        out=profile_path,
        device=args.device,
        runtime="torch",
        samples=args.networks,
        adaptive_rounds=0,
        batch_size=args.batch_size,
        time_budget_s=args.time_budget_s,
        progress=True,
        statistic="median",
        kernel_settings=kernel_settings,
        network_settings=settings,
    )
    profile = ProfileBuilder(options, toolkit, print_to_stderr).run()
    prof = DeviceProfile.load(profile_path)
    archs = prof.architectures(toolkit.layer_types)
    measured = np.array([n.latency_ms("median") for n in prof.networks])
    energy = [n.measurement.get("nvml", {}).get("energy_per_call_mj") for n in prof.networks]
    energy = [e for e in energy if e is not None]

    # 2. the roofline of the card's hardware model, same networks, same batch
    roofline = RooflineTimeModel(device=hw)
    predicted = np.array([roofline.estimate(a, args.batch_size).latency_ms for a in archs])

    # 2b. the roofline of this very card, calibrated here (matmul, copy and per-op launch overhead: at batch 1
    # these small networks are bound by the framework's per-op overhead, which no datasheet gives)
    calibrated = None
    try:
        from na_toolkit.timemodels.calibrate import calibrate_hardware
        from na_toolkit.timemodels.hwmodel import hardware_model_toml

        cal_hw = calibrate_hardware(args.device, name=f"{hw_name}-calibrated", repeats=3)
        (out_dir / f"{hw_name}-calibrated.toml").write_text(hardware_model_toml(cal_hw))
        cal = RooflineTimeModel(device=cal_hw)
        cal_pred = np.array([cal.estimate(a, args.batch_size).latency_ms for a in archs])
        calibrated = {
            **(accuracy(cal_pred, measured) if len(measured) >= 3 else {}),
            "launch_overhead_s": cal_hw.launch_overhead_s,
        }
    except Exception as exc:
        calibrated = {"error": f"{type(exc).__name__}: {exc}"}

    # 3. training steps of a few networks (forward + backward + SGD step), against the roofline's
    tm = TorchTimeModel(device=args.device, settings=settings, measure_training=True, optimizer="sgd")
    train = []
    for a in archs[: args.train_networks]:
        est = tm.estimate(a, max(args.batch_size, 2))
        if est.train_step_ms is not None:
            train.append((est.train_step_ms, roofline.estimate(a, max(args.batch_size, 2)).train_step_ms))

    with Nvml() as nv:
        end = nv.snapshot(index)
    figures: dict[str, Any] = {
        "gpu": gpu_name,
        "hardware_model": hw_name,
        "networks": len(archs),
        "profile_complete": profile.complete,
        "torch": {
            "latency_ms": {
                "min": float(measured.min()),
                "median": float(np.median(measured)),
                "max": float(measured.max()),
            }
            if len(measured)
            else None,
            "energy_mj_per_inference_median": float(np.median(energy)) if energy else None,
            "train_step_ms_median": float(np.median([t for t, _ in train])) if train else None,
        },
        "roofline": {
            **(accuracy(predicted, measured) if len(measured) >= 3 else {}),
            "train_step_spearman": _spearman([r for _, r in train], [t for t, _ in train]) if len(train) >= 3 else None,
        },
        "roofline_calibrated": calibrated,
        "nvml": {
            "status": nvml_status,
            "start": start.to_json() if start else None,
            "end": end.to_json() if end else None,
        },
        "profile": str(profile_path),
        "kernels": len(prof.kernels),
        "elapsed_s": time.perf_counter() - t_start,
        "params": vars(args),
        "machine": machine_info(),
    }
    text = json.dumps(figures, indent=2, default=str)
    (out_dir / "gpu_check.json").write_text(text + "\n")
    print(text)
    return 0


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
