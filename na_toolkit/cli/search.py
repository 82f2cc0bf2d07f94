"""CLI commands: `search` (run or resume a search), `report` and `export` (on a finished run; `export
--arch` on any run).

    na-toolkit search CONFIG.toml [--resume RUN] [--json] [--evaluations N] [--output DIR] [--seed N]
    na-toolkit report RUN [--json]
    na-toolkit export RUN (--device NAME | --arch HASH) --format onnx|torch [--out PATH] [--batch-size N] [--json]

RUN is a run folder (printed by `search`), or a run id inside ./runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import sys
from collections.abc import Container
from pathlib import Path

from .command import Command

DEFAULT_RUNS = Path("runs")


def _configure_search(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="search config (TOML, see docs/search.md); optional with --resume")
    p.add_argument(
        "--resume", metavar="RUN", help="continue a killed run (its folder): nothing stored is evaluated again"
    )
    p.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")
    p.add_argument("--evaluations", type=int, metavar="N", help="ground-truth evaluation budget (overrides the config)")
    p.add_argument("--output", metavar="DIR", help="folder the run folder is made in (overrides the config)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed (overrides the config's random_seed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _print_outcome(summary: dict, said: Container[str] = ()) -> None:
    from ..search.outputs import outcome_lines, pareto_table
    from ._output import warn

    print(f"Pareto set of run {summary['run_id']} ({len(summary['pareto'])} of {len(summary['evaluated'])} evaluated):")
    print(pareto_table(summary))
    print()
    for line in outcome_lines(summary):
        print(line)
    for w in summary["warnings"]:  # stderr, as every command's warnings (-q hides them); summary.json keeps them
        if f"warning: {w}" not in said:
            warn(w)
    print(f"stopped: {summary['stop_reason']}")
    print(f"run folder: {summary['run_dir']}")


def _run_search(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..search import run_search

    if args.config is None and args.resume is None:
        raise ConfigError("give a search config (CONFIG.toml) or --resume RUN")
    overrides = {"evaluations": args.evaluations, "output": args.output, "random_seed": args.seed}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.output is not None:
        overrides["output"] = str(Path(args.output).resolve())
    if args.resume is not None and overrides and args.config is None:
        given = ", ".join(
            f
            for f, k in (("--evaluations", "evaluations"), ("--output", "output"), ("--seed", "random_seed"))
            if k in overrides
        )
        raise ConfigError(
            f"{given}: a resumed run keeps its own config (its evaluation budget too), so these would change it; "
            "resume without them, or search further from its best network in a new run (seed_network = "
            '"RUN/best/all/arch.json" in a copy of its config)'
        )
    # stdout holds only the outcome: what a library prints during the search (Ray's driver prints its raylet's
    # warnings on stdout) goes to stderr, so `--json` stays one JSON document
    said = _Said()  # the warnings the run already gave on stderr: the outcome does not repeat them
    logging.getLogger("na_toolkit").addHandler(said)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = run_search(
                args.config,
                resume=args.resume,
                overrides=overrides or None,
                progress=not args.no_progress,
                toolkit=args.toolkit,
            )
    finally:
        logging.getLogger("na_toolkit").removeHandler(said)
    summary = result.summary()
    if args.json:
        json.dump(summary, sys.stdout, indent=2, default=str)
        print()
    else:
        _print_outcome(summary, said.messages)
    return 0


class _Said(logging.Handler):
    """The messages of the warnings logged while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.add(record.getMessage())


def _open_run(run: str, *, finished: bool = True):
    """The run's store (read-only) and, when `finished` is asked for, its summary (search/finished.py)."""
    from ..search.finished import open_store

    return open_store(run, DEFAULT_RUNS, finished=finished)


def _configure_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")


def _run_report(args: argparse.Namespace) -> int:
    from ..search.outputs import relative_to_run, report_markdown

    store, summary = _open_run(args.run)
    with store:
        text = report_markdown(summary)
        folder = Path(store.path).parent
        # the files the run wrote that are gone (deleted, or the report of a copied folder): said, with the fix
        missing = [
            rel
            for key, path in (summary.get("outputs") or {}).items()
            if not key.endswith(".trained_weights")
            and not (folder / (rel := relative_to_run(str(path), summary.get("run_dir")))).exists()
        ]
        if missing:
            logging.getLogger("na_toolkit").warning(
                "warning: run files missing from %s: %s; `na-toolkit search --resume %s` writes them again "
                "(from its store, paying for nothing)",
                folder,
                ", ".join(missing),
                shlex.quote(str(folder)),
            )
        try:
            (Path(store.path).parent / "report.md").write_text(text)  # a resumed run's folder gets it anew
        except OSError as exc:  # an archived, read-only run: printed all the same
            logging.getLogger("na_toolkit").warning("warning: report.md not rewritten: %s", exc.strerror or exc)
    if args.json:
        json.dump(summary, sys.stdout, indent=2, default=str)
        print()
    else:
        print(text, end="")
    return 0


def _configure_export(p: argparse.ArgumentParser) -> None:
    from ..search.export import FORMATS

    p.add_argument("run", metavar="RUN", help="run folder")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--device", help="device whose best feasible candidate to export ('all': feasible on every device)"
    )
    which.add_argument(
        "--arch",
        metavar="HASH",
        help="any evaluated network of the run, by its hash (or a unique prefix of 6+); also of a run that did not "
        "finish",
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx, or torch (state dict + IR JSON)")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="output file: .onnx, or .pt/.pth for torch (its IR JSON beside it, with .json); never a file of the run "
        "itself (default: RUN/best/DEVICE/model.onnx|model.pt, or RUN/exports/HASH/... with --arch)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="ONNX only: a static batch dimension of N (default: a symbolic one, any batch size)",
    )
    p.add_argument("--json", action="store_true", help="print what was exported as JSON")


def _evaluated_hash(store, prefix: str) -> str:
    """The hash of the run's evaluated network that `prefix` names (ConfigError: none, or several)."""
    from ..errors import ConfigError

    if len(prefix) < 6:
        raise ConfigError(f"--arch {prefix!r}: give at least 6 characters of the network's hash")
    hits = sorted({e.arch_hash for e in store.evaluations() if e.arch_hash.startswith(prefix)})
    if not hits:
        raise ConfigError(
            f"--arch {prefix!r}: no network of run {store.run_id} has that hash (see evaluations.csv in the run folder)"
        )
    if len(hits) > 1:
        raise ConfigError(f"--arch {prefix!r} names {len(hits)} networks ({', '.join(hits[:4])}...); give more of it")
    return hits[0]


#: the suffixes of the files each format writes (torch: the state dict at OUT, the architecture at OUT.json)
_EXPORT_SUFFIXES = {"onnx": (".onnx",), "torch": (".pt", ".pth")}


def _export_out(out: str, fmt: str, run_dir: Path) -> Path:
    """`--out` once it is known to be a writable place for `fmt` that overwrites none of the run's own files."""
    from ..errors import ConfigError
    from ..files import ARCHITECTURE, EXPORT_SIDECAR
    from ..search.export import EXPORT_FOLDERS, export_files
    from ._output import check_out

    path = Path(out)
    suffixes = _EXPORT_SUFFIXES[fmt]
    if path.suffix.lower() not in suffixes:
        what = "a torch export writes the state dict to OUT and the architecture beside it with .json"
        raise ConfigError(
            f"--out {out!r}: {what if fmt == 'torch' else 'an ONNX export writes the model to OUT'}; give OUT a "
            f"{' or '.join(suffixes)} suffix"
        )
    written = export_files(path, fmt)
    root = run_dir.resolve()
    for file in written:
        inside = file.resolve()
        if inside.is_relative_to(root) and inside.exists() and inside.relative_to(root).parts[0] not in EXPORT_FOLDERS:
            raise ConfigError(
                f"--out {out!r}: it would overwrite {str(file)!r}, a file of run {run_dir.name} itself; give a path "
                f"outside the run folder or under its {' or '.join(f'{d}/' for d in EXPORT_FOLDERS)}"
            )
    path = check_out(out)  # after the run's own files: the more telling refusal where both hold
    if fmt == "torch" and written[1].exists() and not path.exists():  # an IR no torch export wrote with a .pt
        raise ConfigError(
            f"--out {out!r}: a torch export writes its architecture to {str(written[1])!r}, which holds a network "
            f"with no {path.name} beside it (not an earlier export's, whose state dict it would be): give --out "
            "another name, or move that file"
        )
    for file, kind in zip(written[1:], [*([ARCHITECTURE] if fmt == "torch" else []), EXPORT_SIDECAR], strict=True):
        check_out(file, f"the {kind} beside --out,", kind=kind)
    return path


def _default_out(path: Path) -> Path:
    """The default export path, once it is known to be writable (a run folder may be read-only: --out then)."""
    from ..errors import ConfigError
    from ._output import check_out

    try:
        return check_out(path, "the export path")
    except ConfigError as exc:
        raise ConfigError(f"{exc} (or give --out a path outside the run folder)") from None


def _check_best_folder(
    out: Path, run_dir: Path, args: argparse.Namespace, arch_hash: str | None, summary: dict | None
) -> None:
    """A run's `best/<device>/` holds that device's best network, the hand-off to production: a ConfigError for
    an export into it of another network (`--arch`, or another `--device`'s best), which would leave its files
    naming two networks."""
    from ..errors import ConfigError

    folder = out.resolve().parent
    best = (run_dir / "best").resolve()
    if folder.parent != best:
        return
    device = folder.name
    mine = ((summary or {}).get("best") or {}).get(device) if arch_hash is not None else None
    theirs = mine.get("arch_hash") if isinstance(mine, dict) else None
    if (arch_hash is not None and arch_hash != theirs) or (arch_hash is None and args.device != device):
        raise ConfigError(
            f"--out {str(out)!r}: {run_dir.name}'s best/{device}/ holds the best network for device {device}, and "
            f"this export is of another ({arch_hash or f'the best for device {args.device}'}); export it elsewhere "
            f"(by default --arch exports to {run_dir.name}/exports/HASH/)"
        )


def _check_sidecar_agrees(new: Path, old: Path, out: Path, fmt: str) -> None:
    """A sidecar shared by both formats' models in one folder (`best/<device>/preprocessing.json`) must not be
    rewritten to contradict the other format's model beside it (an ONNX model of a fixed batch size, a torch
    state dict of any): a ConfigError saying where to export instead."""
    from ..errors import ConfigError
    from ..files import parse_json, read_text

    # the other format's model whose sidecar is the same file: model.pt beside model.onnx in best/, m.pt beside m.onnx
    others = [out.with_suffix(s) for f, suffixes in _EXPORT_SUFFIXES.items() if f != fmt for s in suffixes]
    if not old.is_file() or not any(o.is_file() for o in others):
        return
    try:
        before = parse_json(read_text(old, "sidecar", ConfigError), "sidecar", ConfigError).get("input")
    except (ConfigError, AttributeError):
        return
    after = parse_json(read_text(new, "sidecar", ConfigError), "sidecar", ConfigError).get("input")
    if before is not None and before != after:
        other = next(o for o in others if o.is_file())
        raise ConfigError(
            f"{str(old)!r} also describes {other.name} beside it, whose input is {before.get('shape')}; this export's "
            f"is {after.get('shape')}, so the file would contradict it: export to another path (--out), or both "
            "formats with the same batch size"
        )


def _floats(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _run_export(args: argparse.Namespace) -> int:
    import os

    from ..errors import ConfigError
    from ..search.export import default_export_path, export_best, export_candidate, export_files
    from ..search.provenance import check_plugins, recorded_provenance
    from ._output import temp_path
    from .arch import MAX_BATCH_SIZE

    if args.batch_size is not None and (args.format != "onnx" or not 1 <= args.batch_size <= MAX_BATCH_SIZE):
        raise ConfigError(
            f"--batch-size {args.batch_size}: "
            + (
                "a torch export is a state dict, it has no batch size; leave --batch-size out"
                if args.format != "onnx"
                else f"give a batch size in [1, {MAX_BATCH_SIZE}], or leave it out for a symbolic batch dimension"
            )
        )
    # a network is exported by hash from any run, finished or not: what a stopped search measured stays usable
    store, summary = _open_run(args.run, finished=args.arch is None)
    with store:
        check_plugins(recorded_provenance(store), args.toolkit, f"exporting from run {store.run_id}")
        run_dir = Path(store.path).parent
        arch_hash = _evaluated_hash(store, args.arch) if args.arch else None
        # under the run folder the user named (never a path read from the store) unless --out says where
        default = default_export_path(run_dir, args.format, device=args.device, arch_hash=arch_hash)
        out = _export_out(args.out, args.format, run_dir) if args.out else _default_out(default)  # before the export
        _check_best_folder(out, run_dir, args, arch_hash, summary)
        tmp = temp_path(out)
        try:
            if arch_hash or summary is None:  # no summary only when --arch named the network
                info = export_candidate(
                    store, str(arch_hash), args.format, tmp, args.toolkit.layer_types, batch_size=args.batch_size
                )
            else:
                info = export_best(
                    store,
                    summary,
                    args.device,
                    args.format,
                    tmp,
                    layer_types=args.toolkit.layer_types,
                    run_dir=run_dir,
                    batch_size=args.batch_size,
                )
            # each file is written under a temporary name, then renamed: a failed export leaves the old files
            renames = list(zip(export_files(tmp, args.format), export_files(out, args.format), strict=True))
            _check_sidecar_agrees(*renames[-1], out, args.format)
            for src, dst in renames:
                os.replace(src, dst)
            info["files"] = [str(dst) for _, dst in renames]
        finally:
            for leftover in export_files(tmp, args.format):
                with contextlib.suppress(OSError):  # a read-only folder refuses even this: the first error is said
                    leftover.unlink(missing_ok=True)
    if args.json:
        json.dump({**info, "format": args.format}, sys.stdout, indent=2, default=str)
        print()
        return 0
    search = ((summary or {}).get("config") or {}).get("search") or {}
    why = "the run kept none: search.keep_weights = false" if search.get("keep_weights") is False else None
    trained = "trained weights" if info["trained_weights"] else f"initial weights ({why or 'the evaluator kept none'})"
    if info.get("evaluation_error"):
        trained = f"initial weights: its evaluation failed ({info['evaluation_error']})"
    print(f"exported {info['arch_hash']} ({args.format}, {trained}): {', '.join(info['files'])}")
    tensor = info["input"]
    shape = "x".join("N" if d is None else str(d) for d in tensor["shape"])
    layout = f" {tensor['layout']}" if tensor["layout"] else ""
    # no dataset is recorded for a network whose evaluation failed before it was trained
    dataset = f", dataset {info['dataset']} as its loader gives it (docs/datasets.md)" if info["dataset"] else ""
    print(f"its input {tensor['name']!r}: {tensor['dtype']}{layout} {shape}{dataset}")
    raw = info.get("raw_input")
    if raw:
        shifted = f"(raw - {raw['subtract']:g})" if raw["subtract"] else "raw"
        print(f"its raw inputs: x = {shifted} / {raw['divide_by']:g}, raw: {raw['description']}")
    elif "raw_input" in info:
        print("its raw inputs: not known (the dataset's loader does not say how it scaled them)")
    norm = info.get("input_normalization")
    if norm:
        print(f"its inputs: (x - mean) / std per channel, mean {_floats(norm['mean'])}, std {_floats(norm['std'])}")
    names = info.get("class_names") or []
    if names:
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} classes)" if len(names) > 20 else "")
        print(f"its outputs: classes {shown}")
    return 0


COMMANDS = (
    Command(
        "search",
        "run a hardware-aware architecture search from a TOML config (or --resume a run)",
        _configure_search,
        _run_search,
    ),
    Command(
        "report", "print (and rewrite) the markdown report of a finished search run", _configure_report, _run_report
    ),
    Command(
        "export",
        "export a run's best feasible candidate for a device, or any evaluated network (--arch), as ONNX or PyTorch",
        _configure_export,
        _run_export,
    ),
)
