"""Exports of a run's evaluated networks: ONNX (checked by onnx.checker) or a PyTorch state dict with its IR
JSON, each with a sidecar (and, in an ONNX file, metadata) saying what the network expects of its input and
where it comes from (`export_record`). Used by the run folder's `best/<device>/` (search/outputs.py) and by
`na-toolkit export`."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, StoreError
from ..files import write_atomic, write_text_atomic

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..ir.layers import LayerTypeRegistry
    from ..store.base import EvaluationRecord, RunStore

FORMATS = ("onnx", "torch")
#: the file each format writes by default (torch: the state dict; its IR JSON beside it)
MODEL_FILES = {"onnx": "model.onnx", "torch": "model.pt"}
#: where a run folder keeps exports: `best/<device>/` and `exports/<hash>/`; every other file is the run's own
EXPORT_FOLDERS = ("best", "exports")
#: what an evaluator records that a user of the exported network needs besides its weights (`deployment_data`)
DEPLOYMENT_KEYS = ("raw_input", "input_normalization", "class_names")
#: the sidecar beside an export (`<out>.preprocessing.json`; `preprocessing.json` in `best/<device>/`)
SIDECAR_SUFFIX = ".preprocessing.json"


def export_files(out: Path, fmt: str) -> list[Path]:
    """The files an export to `out` writes: the model (ONNX, or the torch state dict), for torch its IR JSON
    (`<out>.json`), and the sidecar with what a deployer needs to know (`<out>.preprocessing.json`). In a run's
    `best/<device>/` (the default of `export RUN --device D`) they are the names the search wrote there,
    `arch.json` and `preprocessing.json`, so an export does not leave a second copy of each beside them."""
    if out.parent.parent.name == "best" and out.name == MODEL_FILES[fmt]:
        ir, sidecar = out.parent / "arch.json", out.parent / "preprocessing.json"
    else:
        ir, sidecar = out.with_suffix(".json"), out.with_suffix(SIDECAR_SUFFIX)
    return [out, *([ir] if fmt == "torch" else []), sidecar]


def export_candidate(
    store: RunStore,
    arch_hash: str,
    fmt: str,
    out: str | os.PathLike[str],
    layer_types: LayerTypeRegistry,
    *,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Write an evaluated candidate as ONNX (checked by onnx.checker) or as a PyTorch state dict plus its IR
    JSON (`<out>.json` beside `<out>`), and beside it the sidecar `<out>.preprocessing.json`
    (`export_record`; an ONNX file also carries it as metadata). Trained weights when the store has them,
    else the initial ones. `batch_size`: the ONNX graph's batch dimension (None: symbolic). `layer_types` are
    the registry the run's architectures are read with (the run's toolkit's)."""
    import torch

    from ..ir.architecture import Architecture
    from ..ir.onnx_export import add_metadata, to_onnx

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out)  # a library caller's str too (out.parent below)
    rec = evaluation(store, arch_hash)
    arch = Architecture.from_json(rec.arch_json, layer_types)
    model = arch.to_torch(seed=0)
    weights = store.load_weights(arch_hash)
    if weights is not None:
        model.load_state_dict(weights)
    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    record = export_record(store.run_id, rec, arch, trained_weights=weights is not None, batch_size=batch_size)
    files = export_files(out, fmt)
    if fmt == "onnx":
        import onnx

        proto = to_onnx(arch, model=model, batch_size=batch_size)
        add_metadata(proto, record)  # read with the model, by a deployer without na_toolkit
        onnx.checker.check_model(proto)
        write_atomic(out, lambda tmp: onnx.save(proto, str(tmp)))
    else:
        write_atomic(out, lambda tmp: torch.save(model.state_dict(), str(tmp)))
        write_atomic(files[1], arch.save)
    write_text_atomic(files[-1], json.dumps(record, indent=2))
    return {
        **record,
        "format": fmt,
        "files": [str(f) for f in files],
        # a network whose evaluation failed is exported as built (initial weights): the error says why
        "evaluation_error": rec.error,
    }


def export_record(
    run_id: str, rec: EvaluationRecord, arch: Architecture, *, trained_weights: bool, batch_size: int | None
) -> dict[str, Any]:
    """What a deployer of an exported network needs to use it and to trace it back: the network (its hash),
    the run and toolkit version it came from, whether the weights are the trained ones, the dataset, the
    input tensor (name, shape with the batch dimension, None when symbolic, layout, dtype), what the inputs
    are to be standardised with and the order of the outputs (`deployment_data`), and the metrics the run
    recorded for it (`accuracy` is the validation accuracy; a latency is the run's measurement of the
    batch-`batch_size` graph, docs/time_models.md)."""
    from .. import __version__
    from ..ir.onnx_export import INPUT_NAME

    return {
        "arch_hash": rec.arch_hash,
        "run_id": run_id,
        "toolkit_version": __version__,
        "trained_weights": trained_weights,
        "dataset": (rec.result or {}).get("dataset"),
        "input": {
            "name": INPUT_NAME,
            "shape": [batch_size, *arch.input_shape],
            "layout": "NCHW" if len(arch.input_shape) == 3 else None,
            "dtype": "float32",
        },
        **deployment_data(rec),
        # strict JSON (a deployer's parser may refuse NaN): a figure that is not a number is null
        "metrics": {k: (v if math.isfinite(v) else None) for k, v in rec.metrics.items()},
    }


def deployment_data(rec: EvaluationRecord) -> dict[str, Any]:
    """What a user of an exported network needs besides its weights, as the evaluator recorded it (the torch
    evaluator: `raw_input`, how the dataset's values were made from the raw data (`RawInput.to_json`: x =
    (raw - subtract) / divide_by, an image folder's Pillow mode and resize; null where a plugin's loader did
    not say), then `input_normalization`, the per-channel mean and std those values were standardised with,
    and `class_names`, the order of its outputs); empty for an evaluator that recorded none of them."""
    extra = (rec.result or {}).get("extra") or {}
    return {key: extra[key] for key in DEPLOYMENT_KEYS if key in extra}


def default_export_path(run_dir: Path, fmt: str, *, device: str | None = None, arch_hash: str | None = None) -> Path:
    """Where an export goes without an explicit path: `run_dir/best/<device>/` for a device's best,
    `run_dir/exports/<hash>/` for a network named by hash."""
    folder = Path(run_dir) / ("best" if device is not None else "exports") / str(device or arch_hash)
    return folder / MODEL_FILES[fmt]


def export_best(
    store: RunStore,
    summary: Mapping[str, Any],
    device: str,
    fmt: str,
    out: str | os.PathLike[str] | None = None,
    *,
    layer_types: LayerTypeRegistry,
    run_dir: Path | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Export the best feasible candidate of `device` (a ConfigError naming the devices when unknown, or
    saying why there is none); the rest as `export_candidate`."""
    best = summary["best"]
    if device != "all" and device not in best:
        raise ConfigError(
            f"run {summary['run_id']} has no device {device!r}; its devices: {', '.join(best) or '(none)'} "
            "('all': the best candidate feasible on every device)"
        )
    entry = summary["best_overall"] if device == "all" else best[device]
    if entry is None:
        raise ConfigError(
            f"no candidate of run {summary['run_id']} is feasible for {device}: "
            f"{summary['infeasible'].get(device, '')}; to export an evaluated network anyway, give its hash "
            "(--arch HASH; evaluations.csv lists them)"
        )
    if out is None:
        # under the run folder the caller opened, never a path read from the store: a copied run folder
        # would overwrite the original's files, and a tampered store could name any place
        if run_dir is None:
            raise ConfigError("export_best needs `out` or the run folder the store was opened from (run_dir=)")
        out = default_export_path(run_dir, fmt, device=device)
    return export_candidate(store, entry["arch_hash"], fmt, Path(out), layer_types, batch_size=batch_size)


def evaluation(store: RunStore, arch_hash: str) -> EvaluationRecord:
    rec = store.evaluation(arch_hash)
    if rec is None:
        raise StoreError(f"architecture {arch_hash} was not evaluated in run {store.run_id}")
    return rec
