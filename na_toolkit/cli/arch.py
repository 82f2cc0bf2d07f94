"""`na-toolkit arch ...`: list seeds, show an architecture's table of nodes, export to / import from ONNX.

Wherever an architecture is expected, the argument may be a JSON file (`Architecture.save`), an `.onnx` file
(imported) or the name of a registered seed network; a registered name is the seed even where a file of that
name exists (write `./NAME` for the file: `na_toolkit.files`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bench.base import MAX_SEED, at_least
from ..errors import ArchitectureError, ConfigError, UnknownComponentError
from ..files import ARCHITECTURE, with_article
from ..ir.layers import REQUIRED
from ._format import render_table, shape_str
from ._output import atomic_out, check_out
from .command import WORK_FAILED_EXIT, Command

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..toolkit import Toolkit

#: `arch export --check` fails when ONNX Runtime and torch differ by more than this (the issue's bound)
PARITY_TOL = 1e-4
#: the largest static batch dimension an export writes (a search config's batch_size takes as many)
MAX_BATCH_SIZE = 1_000_000


# ---- helpers shared with `demo` -----------------------------------------------------------------------


def seed_file(spec: str, toolkit: Toolkit) -> Path | None:
    """None when `spec` names a registered seed network (a file of that name is not read: a warning says to
    write './NAME'); else the file it names (`na_toolkit.files.name_or_path`). A bare name that is neither is
    an ArchitectureError with the close seed names."""
    from ..files import name_or_path

    try:
        return name_or_path(spec, toolkit.seeds.names(), "seed network")
    except UnknownComponentError as exc:
        raise ArchitectureError(f"no architecture file {spec!r}, and {exc}") from None


def load_architecture(spec: str, toolkit: Toolkit, table: str | None = None) -> Architecture:
    """An Architecture from a seed name, a JSON or ONNX file (`seed_file`: a registered name is the seed
    even where a file of that name exists; write './NAME' for the file), `FAMILY:SPEC` of a seed family that
    parses specs (e.g. `nb201:INDEX` or `nb201:|nor_conv_3x3~0|...` with the NAS-Bench-201 plugin), or a spec
    in a family's own form (a bare NB201 cell string); `table` is the family's table file (default: its own)."""
    from ..files import path_exists
    from ..ir.architecture import Architecture

    text = spec.strip()
    family, sep, rest = text.partition(":")
    if sep and family in toolkit.seeds and not path_exists(text):
        seed = toolkit.seeds.get(family)
        if seed.parse is None:
            raise ArchitectureError(f"seed {family!r} does not parse specs ({text!r}); give the seed name alone")
        arch = seed.parse(rest, toolkit.layer_types, table)
        if arch is None:
            raise ArchitectureError(f"{text!r} is not a spec seed family {family!r} understands")
        return arch
    if text not in toolkit.seeds and not path_exists(text):
        for _name, seed in toolkit.seeds.items():
            if seed.parse is not None and (arch := seed.parse(text, toolkit.layer_types, table)) is not None:
                return arch
    path = seed_file(text, toolkit)
    if path is None:
        return toolkit.seed(text)
    if path.suffix == ".onnx":
        from ..ir.onnx_import import from_onnx

        return from_onnx(str(path), layer_types=toolkit.layer_types)
    if path.suffix in (".pt", ".pth"):  # a run's best/DEVICE/model.pt: weights, read as JSON "not UTF-8"
        raise ArchitectureError(
            f"{spec!r} is a torch weights file, not an architecture; give the architecture's JSON or ONNX file "
            "(a run's best/DEVICE/ folder holds arch.json and model.onnx beside model.pt)"
        )
    return Architecture.load(path, layer_types=toolkit.layer_types)


def compact_attrs(arch, node_id: str) -> str:
    """The attributes that matter when reading a table: required ones and those off their default."""
    specs = arch.layer_type(node_id).attrs
    shown = []
    for key, value in arch.attrs(node_id).items():
        spec = specs.get(key)
        if spec is None or spec.default is REQUIRED or value != spec.default:
            shown.append(f"{key}={value}")
    return " ".join(shown)


def totals_json(arch) -> dict[str, Any]:
    c = arch.cost
    return {
        "nodes": len(arch.nodes),
        "params": c.params,
        "macs": c.macs,
        "flops": c.flops,
        "weight_bytes": c.weight_bytes,
        "activation_bytes": c.activation_bytes,
        "peak_activation_bytes": arch.peak_activation_bytes,
    }


def architecture_json(arch) -> dict[str, Any]:
    nodes = []
    for n in arch.nodes:
        c = arch.cost.per_node[n.id]
        nodes.append(
            {
                "id": n.id,
                "type": n.type,
                "inputs": list(n.inputs),
                "attrs": arch.attrs(n.id),
                "shape": list(arch.shape(n.id)),
                "params": c.params,
                "macs": c.macs,
                "flops": c.flops,
                "weight_bytes": c.weight_bytes,
                "input_bytes": c.input_bytes,
                "output_bytes": c.output_bytes,
            }
        )
    return {
        "name": arch.name,
        "hash": arch.hash,
        "input_shape": list(arch.input_shape),
        "output": arch.output,
        "output_shape": list(arch.output_shape),
        "nodes": nodes,
        "totals": totals_json(arch),
    }


def node_table(arch) -> str:
    rows = []
    for i, n in enumerate(arch.nodes):
        c = arch.cost.per_node[n.id]
        rows.append(
            [
                i,
                n.id,
                n.type,
                ",".join(n.inputs),
                shape_str(arch.shape(n.id)),
                f"{c.params:,}",
                f"{c.flops:,}",
                compact_attrs(arch, n.id),
            ]
        )
    c = arch.cost
    rows.append(["", "total", "", "", shape_str(arch.output_shape), f"{c.params:,}", f"{c.flops:,}", ""])
    return render_table(["#", "node", "type", "inputs", "shape", "params", "FLOPs", "attrs"], rows, right={0, 5, 6})


def onnx_parity_max_abs_err(arch, model=None, proto=None, batch_size: int = 2, seed: int = 0) -> float:
    """Max |ONNX Runtime - torch| on random input. `model` is the torch build of `arch` (built from `seed` if
    not given); `proto` its ONNX with the model's weights and a symbolic batch (emitted if not given)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    model = (model if model is not None else arch.to_torch(seed=seed)).eval()
    if proto is None:
        proto = arch.to_onnx(model=model, batch_size=None)
    x = np.random.default_rng(seed).standard_normal((batch_size, *arch.input_shape)).astype(np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    return float(np.abs(got - want).max())


def _error(message: str) -> int:
    print(f"na-toolkit: error: {message}", file=sys.stderr)
    return 2


def _writable(path: str, source: str, suffix: str, kind: str | None = None) -> str | None:
    """The one-line reason `path` cannot be written, checked before the work (None: it can). `source`: the
    file the command reads, which the output must not overwrite; `suffix`: the kind of file written (an
    existing file of another kind is not overwritten); `kind`: the document written (`files.document_kind`)."""
    try:
        check_out(path, "output", make_folders=False, inputs=[source], suffixes=(suffix,), kind=kind)
    except ConfigError as exc:
        return str(exc)
    if Path(path).suffix.lower() != suffix:  # `--onnx net.json` wrote ONNX that `arch show net.json` misread
        what = with_article(kind) if kind else "an ONNX model"
        return f"cannot write output {path!r}: it would be {what}; give a path ending in {suffix}"
    return None


def _write(path: str, data: bytes | str) -> str | None:
    """Write a file atomically (a failed write leaves the previous file); on failure return the one-line
    reason instead of raising."""
    try:
        with atomic_out(path, make_folders=False) as tmp:
            if isinstance(data, str):
                tmp.write_text(data)
            else:
                tmp.write_bytes(data)
    except OSError as exc:
        return f"cannot write {path!r}: {exc.strerror or exc}"
    return None


# ---- subcommands --------------------------------------------------------------------------------------
def run_seeds(args: argparse.Namespace) -> int:
    toolkit = args.toolkit
    items = []
    for name, seed in toolkit.seeds.items():
        arch = seed.build(toolkit.layer_types)
        items.append(
            {
                "name": name,
                "description": seed.description,
                "dataset": seed.dataset,
                "plugin": toolkit.seeds.plugin_of(name),
                "input_shape": list(arch.input_shape),
                "output_shape": list(arch.output_shape),
                "hash": arch.hash,
                **totals_json(arch),
            }
        )
    if args.json:
        print(json.dumps({"seeds": items}, indent=2))
        return 0
    rows = [
        [
            s["name"],
            shape_str(tuple(s["input_shape"])),
            s["nodes"],
            f"{s['params']:,}",
            f"{s['flops'] / 1e6:,.2f}",
            s["description"],
        ]
        for s in items
    ]
    print(render_table(["seed", "input", "nodes", "params", "MFLOPs", "description"], rows, right={2, 3, 4}))
    return 0


def run_show(args: argparse.Namespace) -> int:
    arch = load_architecture(args.arch, args.toolkit)
    if args.json:
        print(json.dumps(architecture_json(arch), indent=2))
        return 0
    c = arch.cost
    print(
        f"{arch.name or args.arch}: input {shape_str(arch.input_shape)} -> output {shape_str(arch.output_shape)}, "
        f"hash {arch.hash}"
    )
    print(node_table(arch))
    print(
        f"nodes {len(arch.nodes)}, params {c.params:,}, MACs {c.macs:,}, FLOPs {c.flops:,}, "
        f"weights {c.weight_bytes / 2**20:.3f} MiB, activations {c.activation_bytes / 2**20:.3f} MiB, "
        f"peak activation {arch.peak_activation_bytes / 2**20:.3f} MiB (batch 1, fp32)"
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    import onnx

    from ..ir.onnx_export import add_metadata

    arch = load_architecture(args.arch, args.toolkit)
    if args.batch_size is not None and args.batch_size < 1:
        return _error(f"--batch-size must be >= 1, got {args.batch_size} (use --dynamic-batch for a symbolic batch)")
    if args.batch_size is not None and args.batch_size > MAX_BATCH_SIZE:  # ONNX's int64 dimension overflowed
        return _error(f"--batch-size must be <= {MAX_BATCH_SIZE}, got {args.batch_size}")
    batch = None if args.dynamic_batch else args.batch_size
    problem = _writable(args.onnx, args.arch, ".onnx")  # before the export and the parity check, not after them
    if problem:
        return _error(problem)
    max_abs_err = None
    if args.check:
        # Weights of the torch build, so ONNX Runtime and torch compute the same function.
        model = arch.to_torch(seed=args.seed).eval()
        proto = arch.to_onnx(model=model, batch_size=batch)
        max_abs_err = onnx_parity_max_abs_err(arch, model=model, seed=args.seed)
    else:
        proto = arch.to_onnx(seed=args.seed, batch_size=batch)
    # an architecture, not a trained network: said in the file, where a deployer looks (`na-toolkit export`
    # writes a run's trained weights)
    add_metadata(proto, {"arch_hash": arch.hash, "trained_weights": False, "weights_seed": args.seed})
    onnx.checker.check_model(proto)
    blob = proto.SerializeToString()
    problem = _write(args.onnx, blob)
    if problem:
        return _error(problem)
    result = {
        "arch": args.arch,
        "onnx": args.onnx,
        "bytes": len(blob),
        "onnx_nodes": len(proto.graph.node),
        "opset": proto.opset_import[0].version,
        "batch_size": batch,
        "hash": arch.hash,
        "input_shape": list(arch.input_shape),
        "output_shape": list(arch.output_shape),
        "checker": "passed",
        "parity_max_abs_err": max_abs_err,
        "trained_weights": False,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"wrote {args.onnx}: {len(blob):,} bytes, {len(proto.graph.node)} ONNX nodes, opset "
            f"{result['opset']}, onnx.checker passed; random weights (seed {args.seed}), not trained ones: "
            "`na-toolkit export RUN --arch HASH` writes a search's trained network"
        )
        if max_abs_err is not None:
            print(f"ONNX Runtime vs torch: max abs error {max_abs_err:.2e} (tolerance {PARITY_TOL:g})")
    if max_abs_err is not None and not max_abs_err <= PARITY_TOL:  # the input was fine: the check failed
        _error(f"ONNX Runtime and torch differ by {max_abs_err:.2e} > {PARITY_TOL:g}")
        return WORK_FAILED_EXIT
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ..ir.onnx_import import from_onnx

    problem = _writable(args.out, args.model, ".json", ARCHITECTURE)
    if problem:
        return _error(problem)
    arch = from_onnx(args.model, layer_types=args.toolkit.layer_types)
    problem = _write(args.out, arch.dumps() + "\n")
    if problem:
        return _error(problem)
    result = {
        "onnx": args.model,
        "out": args.out,
        "name": arch.name,
        "hash": arch.hash,
        "input_shape": list(arch.input_shape),
        "output_shape": list(arch.output_shape),
        **totals_json(arch),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"imported {args.model}: {len(arch.nodes)} nodes, params {arch.cost.params:,}, "
            f"FLOPs {arch.cost.flops:,}, hash {arch.hash} -> {args.out}"
        )
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="arch_command", metavar="ACTION", required=True)

    p = sub.add_parser("seeds", help="list the registered seed networks")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(_arch_run=run_seeds)

    p = sub.add_parser("show", help="table of nodes, shapes, params and FLOPs, with totals")
    p.add_argument("arch", metavar="FILE|SEED", help="architecture JSON, ONNX model, or seed name")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(_arch_run=run_show)

    p = sub.add_parser("export", help="emit ONNX from the IR (checked with onnx.checker)")
    p.add_argument("arch", metavar="FILE|SEED", help="architecture JSON or seed name")
    p.add_argument("--onnx", required=True, metavar="OUT", help="ONNX file to write")
    batch = p.add_mutually_exclusive_group()  # a static and a symbolic batch contradict each other
    batch.add_argument("--batch-size", type=int, default=1, help="static batch dimension (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="symbolic batch dimension instead")
    p.add_argument("--seed", type=at_least(0, MAX_SEED), default=0, help="seed of the random weights (default 0)")
    p.add_argument(
        "--check",
        action="store_true",
        help="use the torch build's weights and compare ONNX Runtime with torch (exit 1 past a max abs error of 1e-4)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(_arch_run=run_export)

    p = sub.add_parser("import", help="read an ONNX model into an architecture JSON")
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model file to read")
    p.add_argument("--out", required=True, metavar="FILE.json", help="architecture JSON to write")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(_arch_run=run_import)


def run(args: argparse.Namespace) -> int:
    return args._arch_run(args)


COMMANDS = (Command("arch", "inspect, export and import architectures (seeds, show, export, import)", configure, run),)
