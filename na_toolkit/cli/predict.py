"""`na-toolkit predict`: fit a predictor and save it, or predict architectures with a saved one.

    na-toolkit predict fit --target c10_valid_acc_200ep --train 200 --out model.json     # rows of --from nb201-table
    na-toolkit predict fit --data runs.jsonl --target accuracy --out model.json          # your own data
    na-toolkit predict ARCH [ARCH ...] --model model.json [--dataset NAME] [--json]

ARCH is an architecture JSON/ONNX file, a seed name, an NB201 cell string `|op~0|+...` or `nb201:INDEX`
(with the NB201 plugin). `--data` is JSON Lines: one object per line with "arch" (an architecture JSON object,
a file path, relative to the data file's folder, a seed name or an NB201 cell) and the `--target` key,
optionally "dataset"; or a CSV with those columns (the `arch` cell an architecture's JSON or a reference).
A run's `evaluations.jsonl` and `evaluations.csv` are read as they are; their failed evaluations (an
`error`, no metrics) are left out.

`--dataset` (and a line's "dataset") is a registered dataset name, an image folder / `.npz` path, or a
descriptor `.json` file (`na-toolkit datasets NAME --json`): its descriptor reaches the predictor. Lines of
several datasets make a predictor that predicts for another one (docs/predictors.md); `predict` warns about
a dataset the predictor never saw.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bench.base import at_least
from ..errors import ConfigError, DataError, NAToolkitError
from ..files import PREDICTOR, parse_json, path_exists, read_text
from ..validation import is_finite_number
from ._format import parse_key_values
from ._output import atomic_out, check_out, warn
from .command import Command

if TYPE_CHECKING:
    from ..datasets import DatasetDescriptor
    from ..ir.architecture import Architecture
    from ..predictors.targets import Target
    from ..toolkit import Toolkit

#: without --data: the rows of this table evaluator, this many, of this column
DEFAULT_SOURCE = "nb201-table"
DEFAULT_TRAIN = 200
DEFAULT_TARGET = "c10_valid_acc_200ep"


def resolve_architecture(spec: Any, toolkit: Toolkit, table: str | None = None) -> Architecture:
    """An Architecture from an IR JSON object or a reference `load_architecture` reads (a file, a seed name,
    `FAMILY:SPEC` of a seed family that parses specs, a spec in a family's own form)."""
    from ..ir.architecture import Architecture

    if isinstance(spec, dict):
        return Architecture.from_json(spec, toolkit.layer_types)
    if not isinstance(spec, str):
        raise DataError(f"an architecture must be a JSON object or a string, got {type(spec).__name__}")
    from .arch import load_architecture

    return load_architecture(spec, toolkit, table)


def _descriptor(spec: Any, args: argparse.Namespace, where: str) -> DatasetDescriptor:
    from ..datasets import get_descriptor

    if not isinstance(spec, str) or not spec:
        raise DataError(f"{where}: a dataset is a name, a path or a descriptor .json file, got {spec!r}")
    # loaded datasets and their descriptors are cached per process: a name on every line is computed once
    return get_descriptor(spec, args.toolkit.datasets)


#: what a `--data` file is, for its errors
DATA_FORMAT = 'JSON Lines (one object per line: {"arch": ..., TARGET: value}) or a .csv with a header'


def _data_records(path: str) -> Iterator[tuple[int, Any]]:
    """(line number, record) of a `--data` file: JSON Lines, or a CSV with a header (a run's
    `evaluations.csv`: the `arch` column holds the architecture's JSON, empty cells are missing values,
    numbers are numbers; a UTF-8 byte order mark and spaces around a column's name are dropped, a column
    named twice is refused)."""
    text = read_text(path, "--data file", DataError).removeprefix("\ufeff")
    if not path.lower().endswith(".csv"):
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield n, _json_line(line, path, n)
        return
    reader = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(reader, [])]
    twice = sorted({name for name in header if name and header.count(name) > 1})
    if twice:
        raise DataError(
            f"--data {path}: the header names column(s) {', '.join(map(repr, twice))} more than once; which one "
            "holds the values is unclear: rename or remove the others"
        )
    for row in reader:
        n = reader.line_num
        rec: dict[str, Any] = {}
        for key, cell in zip(header, row):  # a short row's missing cells and a long row's extra ones: left out
            if not key or cell == "":
                continue
            if key == "arch" and cell.lstrip().startswith("{"):
                rec[key] = parse_json(cell, f"--data {path} line {n} column arch", DataError)
                continue
            try:
                rec[key] = float(cell)
            except ValueError:
                rec[key] = cell
        yield n, rec


def _other_kind(path: str, kind: str) -> str:
    """The error of a `--data` file that is another toolkit document (a device profile, a hardware model)."""
    return f"--data {path} is a {kind}, not data to fit on; --data is {DATA_FORMAT}"


def _json_line(line: str, path: str, n: int) -> dict[str, Any]:
    """Line `n` of a JSON Lines `--data` file: one JSON object; another file (a JSON document spread over
    lines, a TOML file) is named as what --data is not."""
    from ..files import document_kind

    try:
        rec = parse_json(line, f"--data {path} line {n}", DataError)
    except DataError as exc:
        kind = document_kind(path)
        if kind is not None:
            raise DataError(_other_kind(path, kind)) from None
        try:
            whole = json.loads(read_text(path, "--data file", DataError).removeprefix("\ufeff"))
        except (json.JSONDecodeError, RecursionError):  # not one JSON document either (or nested too deeply)
            raise DataError(f"{exc}; --data is {DATA_FORMAT}") from None
        raise DataError(
            f"--data {path} is one JSON {type(whole).__name__} spread over lines, not JSON Lines; --data is "
            f"{DATA_FORMAT}"
        ) from None
    if not isinstance(rec, dict):
        raise DataError(
            f"--data {path} line {n} is a JSON {type(rec).__name__}, not an object; --data is {DATA_FORMAT}"
        )
    return rec


def _beside(spec: Any, folder: Path, toolkit: Toolkit) -> Any:
    """A `--data` line's architecture reference, with a relative file path made relative to the data file's
    folder (where the file was written, wherever `predict fit` runs): what `load_architecture` reads as a
    path (an existing file, a `.json` / `.onnx` name or one with a `/`); seed names and cells unchanged (a
    registered seed name is the seed though a file of that name lies beside the data: a warning names it)."""
    if not isinstance(spec, str) or Path(spec).is_absolute():
        return spec
    text = spec.strip()
    there = folder / text
    if text in toolkit.seeds:
        from ..files import warn_shadowed

        warn_shadowed("seed network", text, there)
        return spec
    if path_exists(there) or text.endswith((".json", ".onnx")) or "/" in text:
        return str(there)
    return spec


def _training_data(
    args: argparse.Namespace,
) -> tuple[list[Architecture], list[float], dict[str, Any], list[DatasetDescriptor] | None, Target]:
    """Architectures, targets, where they came from, per-row descriptors (None: no line names a dataset) and
    the target's definition (its unit and valid range)."""
    from ..predictors.targets import Target, metric_target

    if args.data:
        # the rows come from the file: the table's options would be silently unused
        for flag, value in (("--from", args.source), ("--train", args.train)):
            if value is not None:
                raise ConfigError(
                    f"{flag} chooses rows of a table evaluator and --data gives the rows itself; give one of them"
                )
        if args.target is None:
            raise ConfigError(
                "predict fit --data needs --target KEY, the key of each line to learn (in a run's evaluations "
                "files: accuracy, train_time_s, latency_ms@DEVICE, ...)"
            )
        folder = Path(args.data).parent
        archs, ys, row_datasets = [], [], []
        failed, blank, keys = 0, 0, set()
        for n, rec in _data_records(args.data):
            keys.update(rec)
            if rec.get(args.target) is None:
                if rec.get("error"):
                    failed += 1  # a failed evaluation of a run (evaluations.jsonl / .csv): it measured nothing
                else:
                    blank += 1  # a row without this value (a run's measurement that failed): nothing to learn
                continue
            if "arch" not in rec:
                raise DataError(f"--data {args.data} line {n}: no 'arch' (its keys: {', '.join(map(str, rec))})")
            if not is_finite_number(rec[args.target]):
                raise DataError(
                    f"--data {args.data} line {n}: {args.target} is {rec[args.target]!r}, not a finite number"
                )
            try:
                archs.append(resolve_architecture(_beside(rec["arch"], folder, args.toolkit), args.toolkit, args.table))
            except NAToolkitError as exc:  # which line of a long file: the message may name no file
                raise DataError(f"--data {args.data} line {n}: arch: {exc}") from None
            ys.append(rec[args.target])
            row_datasets.append(rec.get("dataset"))
        if not archs:
            raise DataError(_no_target(args.data, args.target, keys))
        if failed:
            warn(f"--data {args.data}: left out {failed} failed evaluation(s) (no {args.target})")
        if blank:
            warn(f"--data {args.data}: left out {blank} line(s) with no value of {args.target}")
        per_row = None
        if any(d is not None for d in row_datasets):
            default = args.dataset
            if default is None and any(d is None for d in row_datasets):
                raise DataError(
                    f"--data {args.data}: some lines name a dataset and others do not; give every line a "
                    "'dataset', or --dataset for the lines without one"
                )
            per_row = [_descriptor(d if d is not None else default, args, f"--data {args.data}") for d in row_datasets]
        return archs, ys, {"data": str(args.data)}, per_row, _target(metric_target(args.target), args)
    # no --data: rows of an evaluator backed by a table (a tabular benchmark plugin, e.g. nb201-table)
    source = args.source or DEFAULT_SOURCE
    args.target = args.target or DEFAULT_TARGET
    evaluator = args.toolkit.evaluators.get(source)
    if evaluator.training_rows is None:
        raise ConfigError(
            f"evaluator {source!r} holds no table of ground truth to fit on; give --data FILE.jsonl "
            '(lines of {"arch": ..., TARGET: value}) or --from a table evaluator'
        )
    count = DEFAULT_TRAIN if args.train is None else args.train
    rows = evaluator.training_rows(args.target, count, args.seed or 0, args.toolkit.layer_types, args.table)
    defined = Target(args.target, rows.unit, *rows.valid_range) if rows.unit else None
    return rows.archs, rows.values, rows.source, None, _target(defined, args)


def _no_target(path: str, target: str, keys: set[str]) -> str:
    """The error of a `--data` file in which no line has `target`: the keys its lines have, the close ones."""
    import difflib

    from ..files import document_kind

    if (kind := document_kind(path)) is not None:
        return _other_kind(path, kind)
    if not keys:
        return f"--data {path}: no line to fit on; --data is {DATA_FORMAT}"
    known = sorted(str(k) for k in keys)
    close = difflib.get_close_matches(target, known, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"--data {path}: no line has a value of {target!r} (--target); its keys: {', '.join(known)}.{hint}"


def _target(defined: Target | None, args: argparse.Namespace) -> Target:
    """The target's definition, or one of `--unit` for a target nothing defines (no range: nothing to clip)."""
    from ..predictors.targets import Target

    if defined is None:
        return Target(args.target, args.unit or "")
    if args.unit is not None and args.unit != defined.unit:
        raise ConfigError(
            f"--unit {args.unit!r}: {args.target} is defined in {defined.unit!r}; leave --unit out (it is for "
            "targets nothing defines)"
        )
    return defined


def _seed_model(model: Any, params: dict[str, Any], args: argparse.Namespace) -> None:
    """`--seed` seeds a predictor that takes a `random_state` (unless `--param random_state=` does), and one
    left at `random_state=none` gets 0, as a search seeds it with its random_seed (a saved predictor is refit
    on load, so it must be seeded); with --data and a predictor without one, a --seed would do nothing."""
    seeded = "random_state" in model.get_params()
    if args.seed is not None and params.get("random_state") is not None:
        raise ConfigError("--seed and --param random_state both seed the predictor; give one of them")
    if args.seed is not None and not seeded and args.data:
        raise ConfigError(
            f"--seed: predictor {model.name!r} takes no random_state and --data gives the rows, so the seed "
            "would do nothing; leave it out"
        )
    if seeded and (args.seed is not None or model.get_params()["random_state"] is None):
        model.set_params(random_state=0 if args.seed is None else args.seed)


def run_fit(args: argparse.Namespace) -> int:
    from ..predictors import make_predictor

    if not args.out:
        raise ConfigError("predict fit needs --out MODEL.json")
    params = parse_key_values(args.param, "--param")
    # before the fit: an unwritable --out never throws a fitted model away, nor overwrites what it read (the
    # data, a file a --param names: `pretrained=FILE`)
    read = [args.data] if args.data else []
    read += [v for v in params.values() if isinstance(v, str)]  # a value naming no file is skipped
    check_out(args.out, inputs=read, suffixes=(".json",), kind=PREDICTOR)
    model = make_predictor(args.predictor, params, args.toolkit)
    _seed_model(model, params, args)
    if args.dataset is not None:
        model.condition_on(_descriptor(args.dataset, args, "--dataset"))
    archs, ys, source, per_row, target = _training_data(args)
    # saved with it: predictions are clipped into the target's range, and say so. A `--param pretrained=FILE`
    # neural predictor's output is brought into the target's unit when it reads the file (a file fit on an
    # NB201 column's percentages, fine-tuned on a run's fractions): predictors/pretrained.py
    model.for_target(target)
    t = time.perf_counter()
    model.fit(archs, ys, datasets=per_row)
    fit_s = time.perf_counter() - t
    doc = model.to_json()
    doc["source"] = source
    with atomic_out(args.out) as tmp:
        tmp.write_text(json.dumps(doc))
    summary = {
        "predictor": model.name,
        "target": args.target,
        "unit": target.unit or None,
        "valid_range": [target.low, target.high],
        "samples": len(archs),
        "datasets": {r["name"]: r["rows"] for r in model.trained_datasets_},
        "fit_s": fit_s,
        "out": str(args.out),
        **source,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        unit = f" ({target.unit})" if target.unit else ""
        print(f"fit {model.name} on {len(archs)} samples of {args.target}{unit} in {fit_s:.1f} s -> {args.out}")
    return 0


def _architecture(spec: str, args: argparse.Namespace) -> Architecture:
    """ARCH `spec` of `predict`, its error naming it (several are given at once)."""
    try:
        return resolve_architecture(spec, args.toolkit, args.table)
    except NAToolkitError as exc:
        if spec in str(exc):
            raise
        raise DataError(f"ARCH {spec!r}: {exc}") from None


def run_predict(args: argparse.Namespace) -> int:
    from ..predictors.base import Predictor
    from ..predictors.targets import FRACTION, metric_target

    if not args.model:
        raise ConfigError("predicting needs --model MODEL.json (make one with `na-toolkit predict fit`)")
    doc = Predictor.read_document(args.model)
    model = Predictor.from_document(doc, args.model, args.toolkit)
    target = doc.get("target") or ""  # what `predict fit` learned (a dict: from_json checked it)
    if model.target is None and target:
        # a file written before units were recorded: a search metric's definition still applies
        model.for_target(metric_target(target))
    unit = model.target.unit if model.target is not None else ""
    archs = [_architecture(s, args) for s in args.archs]
    trained = getattr(model, "trained_datasets_", [])
    descriptor = _descriptor(args.dataset, args, "--dataset") if args.dataset is not None else None
    if descriptor is not None and not trained:
        warn(
            f"{args.model} was fit without a dataset (it records none), so --dataset "
            f"{args.dataset} changes none of its predictions: they are for the data it was fit on; fit with "
            "--dataset (or --data lines naming theirs) for a predictor that knows its dataset"
        )
    if descriptor is None and len(trained) > 1:
        raise ConfigError(
            f"{args.model} was fit on {len(trained)} datasets ({', '.join(r['name'] for r in trained)}): give "
            "--dataset NAME|PATH|DESCRIPTOR.json, the dataset to predict for"
        )
    mean, std, notes = model.predict_with_notes(archs, datasets=descriptor)
    warnings = model.domain_warnings(archs, datasets=descriptor)
    rows = [
        {
            "arch": spec,
            "hash": a.hash,
            "mean": float(m),
            "std": float(s) if model.has_uncertainty else None,
            "outside_training_domain": w,
            "clipped": n,
        }
        for spec, a, m, s, w, n in zip(args.archs, archs, mean, std, warnings, notes)
    ]
    learned = f"{model.n_train_} networks of {target or 'its target'}"
    for r in rows:
        if r["outside_training_domain"]:
            warn(
                f"{r['arch']} lies outside what the predictor was trained on "
                f"({learned}): {'; '.join(r['outside_training_domain'])}; the prediction is an extrapolation"
            )
        for note in r["clipped"]:
            warn(f"{r['arch']}: {note}")
    if args.json:
        doc = {"predictor": model.name, "target": target, "unit": unit or None, "predictions": rows}
        doc["valid_range"] = None if model.target is None else [model.target.low, model.target.high]
        doc["dataset"] = descriptor.name if descriptor is not None else None
        print(json.dumps(doc, indent=2))
        return 0
    if not unit:
        warn(
            f"{args.model} records no unit for {target or 'its target'} (nothing defines it); "
            "refit with `predict fit --unit UNIT` to have one"
        )
    shown = f" {unit}" if unit and unit != FRACTION else " (fraction)" if unit else ""
    for r in rows:
        unc = f" ± {r['std']:.4g}" if r["std"] is not None else ""
        flags = ["outside the training domain"] if r["outside_training_domain"] else []
        flags += ["clipped into the valid range"] if r["clipped"] else []
        flag = f"  ({'; '.join(flags)})" if flags else ""
        print(f"{r['mean']:.6g}{unc}{shown} {target}  {r['arch']}{flag}", file=sys.stdout)
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0] if __doc__ else None
    parser.add_argument("archs", nargs="+", metavar="fit | ARCH", help="`fit`, or architectures to predict")
    parser.add_argument("--model", help="a saved predictor (JSON) to predict with")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--dataset",
        default=None,
        metavar="NAME|PATH|DESCRIPTOR.json",
        help="the dataset whose descriptor reaches the predictor: the one predicted for, or (fit) the one the "
        "rows come from (lines of --data may name their own)",
    )
    parser.add_argument(
        "--table", default=None, help="a table file for table-backed evaluators and seed families (default: theirs)"
    )
    fit = parser.add_argument_group("fit")
    fit.add_argument("--predictor", default=None, help="registered predictor name (default: the default predictor)")
    fit.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="predictor parameter (repeatable)"
    )
    fit.add_argument(
        "--target",
        default=None,
        help=f"table column or --data key to learn (default for a table: {DEFAULT_TARGET}; --data needs one)",
    )
    fit.add_argument(
        "--from",
        dest="source",
        default=None,
        help=f"evaluator whose table of ground truth gives the rows (without --data; default {DEFAULT_SOURCE}, "
        "from the NAS-Bench-201 plugin)",
    )
    fit.add_argument(
        "--train", type=int, default=None, help=f"random table rows to fit on (without --data; default {DEFAULT_TRAIN})"
    )
    fit.add_argument(
        "--seed",
        type=at_least(0, 2**32 - 1),  # scikit-learn's random_state takes no more
        default=None,
        help="which random table rows, and the predictor's random_state (default 0; or --param random_state=N)",
    )
    fit.add_argument(
        "--data", default=None, help="training data instead of a table: JSON Lines, or CSV (a run's evaluations.csv)"
    )
    fit.add_argument(
        "--unit",
        default=None,
        help="the unit of a --data target nothing defines (a search's metrics and table columns carry theirs)",
    )
    fit.add_argument("--out", default=None, help="where to save the fitted predictor (JSON)")


#: the options of `predict fit` alone, by argparse destination: given when predicting, they would do nothing
FIT_OPTIONS = {
    "predictor": "--predictor",
    "param": "--param",
    "target": "--target",
    "source": "--from",
    "train": "--train",
    "seed": "--seed",
    "data": "--data",
    "unit": "--unit",
    "out": "--out",
}


def run(args: argparse.Namespace) -> int:
    from ..predictors import DEFAULT_PREDICTOR

    if args.archs[0] == "fit":
        if len(args.archs) > 1:
            raise ConfigError(f"predict fit takes no architectures, got {' '.join(args.archs[1:])}")
        if args.model is not None:
            raise ConfigError("--model is the saved predictor to predict with; predict fit writes one: give --out")
        args.predictor = args.predictor or DEFAULT_PREDICTOR
        return run_fit(args)
    given = [flag for dest, flag in FIT_OPTIONS.items() if getattr(args, dest) not in (None, [])]
    if given:
        raise ConfigError(
            f"{', '.join(given)} {'is an option' if len(given) == 1 else 'are options'} of `predict fit`; "
            "predicting with --model uses what the saved predictor learned"
        )
    return run_predict(args)


COMMANDS = (
    Command("predict", "fit a performance predictor, or predict architectures with a saved one", configure, run),
)
