"""`na-toolkit predict`: fit a predictor and save it, or predict architectures with a saved one.

    na-toolkit predict fit --target c10_valid_acc_200ep --train 200 --out model.json     # rows of --from nb201-table
    na-toolkit predict fit --data runs.jsonl --target accuracy --out model.json          # your own data
    na-toolkit predict ARCH [ARCH ...] --model model.json [--dataset NAME] [--json]

ARCH is an architecture JSON/ONNX file, a seed name, an NB201 cell string `|op~0|+...` or `nb201:INDEX`
(with the NB201 plugin). `--data` is JSON Lines: one object per line with "arch" (an architecture JSON object,
a file path, a seed name or an NB201 cell) and the `--target` key, optionally "dataset"; or a CSV with those
columns (the `arch` cell an architecture's JSON or a reference). A run's `evaluations.jsonl` and
`evaluations.csv` are read as they are; their failed evaluations (an `error`, no metrics) are left out.

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
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DataError
from ..files import parse_json, path_exists, read_text
from ._output import atomic_out, check_out
from .command import Command

if TYPE_CHECKING:
    from ..datasets import DatasetDescriptor
    from ..ir.architecture import Architecture
    from ..toolkit import Toolkit


def resolve_architecture(spec: Any, toolkit: Toolkit, table: str | None = None) -> Architecture:
    """An Architecture from an IR JSON object, a file, a seed name, `FAMILY:SPEC` of a seed family that
    parses specs (e.g. `nb201:INDEX` or `nb201:|nor_conv_3x3~0|...` with the NAS-Bench-201 plugin), or a
    spec in a family's own form (an NB201 cell string)."""
    from ..ir.architecture import Architecture

    if isinstance(spec, dict):
        return Architecture.from_json(spec, toolkit.layer_types)
    if not isinstance(spec, str):
        raise DataError(f"an architecture must be a JSON object or a string, got {type(spec).__name__}")
    text = spec.strip()
    family, sep, rest = text.partition(":")
    if sep and family in toolkit.seeds and not path_exists(text):
        seed = toolkit.seeds.get(family)
        if seed.parse is None:
            raise DataError(f"seed {family!r} does not parse specs ({text!r}); give the seed name alone")
        arch = seed.parse(rest, toolkit.layer_types, table)
        if arch is None:
            raise DataError(f"{text!r} is not a spec seed family {family!r} understands")
        return arch
    if text not in toolkit.seeds and not path_exists(text):
        for _name, seed in toolkit.seeds.items():
            if seed.parse is not None and (arch := seed.parse(text, toolkit.layer_types, table)) is not None:
                return arch
    from .arch import load_architecture

    return load_architecture(text, toolkit)


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param takes KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _descriptor(spec: Any, args: argparse.Namespace, where: str) -> DatasetDescriptor:
    from ..datasets import get_descriptor

    if not isinstance(spec, str) or not spec:
        raise DataError(f"{where}: a dataset is a name, a path or a descriptor .json file, got {spec!r}")
    # loaded datasets and their descriptors are cached per process: a name on every line is computed once
    return get_descriptor(spec, args.toolkit.datasets)


def _data_records(path: str) -> Iterator[tuple[int, Any]]:
    """(line number, record) of a `--data` file: JSON Lines, or a CSV with a header (a run's
    `evaluations.csv`: the `arch` column holds the architecture's JSON, empty cells are missing values,
    numbers are numbers)."""
    text = read_text(path, "--data file", DataError)
    if not path.lower().endswith(".csv"):
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield n, parse_json(line, f"--data {path} line {n}", DataError)
        return
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        n = reader.line_num
        rec: dict[str, Any] = {}
        for key, cell in row.items():
            if key is None or cell is None or cell == "":
                continue  # a short row's missing cells, or a long row's extra ones
            if key == "arch" and cell.lstrip().startswith("{"):
                rec[key] = parse_json(cell, f"--data {path} line {n} column arch", DataError)
                continue
            try:
                rec[key] = float(cell)
            except ValueError:
                rec[key] = cell
        yield n, rec


def _training_data(
    args: argparse.Namespace,
) -> tuple[list[Architecture], list[float], dict[str, Any], list[DatasetDescriptor] | None]:
    """Architectures, targets, where they came from, and per-row descriptors (None: no line names a dataset)."""
    if args.data:
        archs, ys, row_datasets = [], [], []
        failed = 0
        for n, rec in _data_records(args.data):
            if isinstance(rec, dict) and rec.get("error") and rec.get(args.target) is None:
                failed += 1  # a failed evaluation of a run (evaluations.jsonl / .csv): it measured nothing
                continue
            if not isinstance(rec, dict) or "arch" not in rec or rec.get(args.target) is None:
                raise DataError(f"--data {args.data} line {n}: needs keys 'arch' and {args.target!r}")
            archs.append(resolve_architecture(rec["arch"], args.toolkit, args.table))
            ys.append(rec[args.target])
            row_datasets.append(rec.get("dataset"))
        if failed:
            print(
                f"na-toolkit: warning: --data {args.data}: left out {failed} failed evaluation(s) (no {args.target})",
                file=sys.stderr,
            )
        if not archs:
            raise DataError(f"--data {args.data}: no line has {args.target!r} to fit on")
        per_row = None
        if any(d is not None for d in row_datasets):
            default = args.dataset
            if default is None and any(d is None for d in row_datasets):
                raise DataError(
                    f"--data {args.data}: some lines name a dataset and others do not; give every line a "
                    "'dataset', or --dataset for the lines without one"
                )
            per_row = [_descriptor(d if d is not None else default, args, f"--data {args.data}") for d in row_datasets]
        return archs, ys, {"data": str(args.data)}, per_row
    # no --data: rows of an evaluator backed by a table (a tabular benchmark plugin, e.g. nb201-table)
    evaluator = args.toolkit.evaluators.get(args.source)
    if evaluator.training_rows is None:
        raise ConfigError(
            f"evaluator {args.source!r} holds no table of ground truth to fit on; give --data FILE.jsonl "
            '(lines of {"arch": ..., TARGET: value}) or --from a table evaluator'
        )
    rows = evaluator.training_rows(args.target, args.train, args.seed, args.toolkit.layer_types, args.table)
    return rows.archs, rows.values, rows.source, None


def run_fit(args: argparse.Namespace) -> int:
    from ..predictors import make_predictor

    if not args.out:
        raise ConfigError("predict fit needs --out MODEL.json")
    # before the fit: an unwritable --out never throws a fitted model away, nor overwrites the data it read
    check_out(args.out, inputs=[args.data] if args.data else [])
    params = _parse_params(args.param)
    model = make_predictor(args.predictor, params, args.toolkit)
    if model.get_params().get("random_state", 0) is None:  # as a search seeds it with its random_seed: a
        model.set_params(random_state=args.seed)  # saved predictor is refit on load, so it must be seeded
    if args.dataset is not None:
        model.condition_on(_descriptor(args.dataset, args, "--dataset"))
    archs, ys, source, per_row = _training_data(args)
    t = time.perf_counter()
    model.fit(archs, ys, datasets=per_row)
    fit_s = time.perf_counter() - t
    doc = model.to_json()
    doc["target"] = args.target
    doc["source"] = source
    with atomic_out(args.out) as tmp:
        tmp.write_text(json.dumps(doc))
    summary = {
        "predictor": model.name,
        "target": args.target,
        "samples": len(archs),
        "datasets": {r["name"]: r["rows"] for r in model.trained_datasets_},
        "fit_s": fit_s,
        "out": str(args.out),
        **source,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"fit {model.name} on {len(archs)} samples of {args.target} in {fit_s:.1f}s -> {args.out}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from ..predictors.base import Predictor

    if not args.model:
        raise ConfigError("predicting needs --model MODEL.json (make one with `na-toolkit predict fit`)")
    doc = Predictor.read_document(args.model)
    model = Predictor.from_json(doc, args.toolkit)
    target = doc.get("target", "")  # what `predict fit` learned (a dict: from_json checked it)
    archs = [resolve_architecture(s, args.toolkit, args.table) for s in args.archs]
    trained = getattr(model, "trained_datasets_", [])
    descriptor = _descriptor(args.dataset, args, "--dataset") if args.dataset is not None else None
    if descriptor is None and len(trained) > 1:
        raise ConfigError(
            f"{args.model} was fit on {len(trained)} datasets ({', '.join(r['name'] for r in trained)}): give "
            "--dataset NAME|PATH|DESCRIPTOR.json, the dataset to predict for"
        )
    mean, std = model.predict_with_std(archs, datasets=descriptor)
    warnings = model.domain_warnings(archs, datasets=descriptor)
    rows = [
        {
            "arch": spec,
            "hash": a.hash,
            "mean": float(m),
            "std": float(s) if model.has_uncertainty else None,
            "outside_training_domain": w,
        }
        for spec, a, m, s, w in zip(args.archs, archs, mean, std, warnings)
    ]
    for r in rows:
        if r["outside_training_domain"]:
            print(
                f"na-toolkit: warning: {r['arch']} lies outside what the predictor was trained on "
                f"({model.n_train_} networks of {target or 'its target'}): {'; '.join(r['outside_training_domain'])}; "
                "the prediction is an extrapolation",
                file=sys.stderr,
            )
    if args.json:
        doc = {"predictor": model.name, "target": target, "unit": _unit(target), "predictions": rows}
        doc["dataset"] = descriptor.name if descriptor is not None else None
        print(json.dumps(doc, indent=2))
    else:
        unit = _unit(target)
        for r in rows:
            unc = f" ± {r['std']:.4g}" if r["std"] is not None else ""
            flag = "  (outside the training domain)" if r["outside_training_domain"] else ""
            print(f"{r['mean']:.6g}{unc} {unit}  {target}  {r['arch']}{flag}".replace("  ", " ", 1), file=sys.stdout)
    return 0


def _unit(target: str) -> str:
    """The unit of a predicted target, read from its name (units in names: `_s`, `_ms`, `_bytes`, `acc`)."""
    t = target.lower()
    for suffix, unit in (("_ms", "ms"), ("_s", "s"), ("_bytes", "bytes"), ("_mj", "mJ")):
        if t.endswith(suffix) or f"{suffix}@" in t:
            return unit
    if "acc" in t:
        # NB201's columns are percentages; a search's `accuracy` (its evaluations files) is a fraction in [0, 1]
        return "% accuracy" if t.startswith(("c10_", "c100_", "in16_")) else "(fraction)"
    return "(unit of the training target)"


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
    fit.add_argument("--target", default="c10_valid_acc_200ep", help="table column or --data key to learn")
    fit.add_argument(
        "--from",
        dest="source",
        default="nb201-table",
        help="evaluator whose table of ground truth gives the rows (without --data; default nb201-table, "
        "from the NAS-Bench-201 plugin)",
    )
    fit.add_argument("--train", type=int, default=200, help="random table rows to fit on (without --data)")
    fit.add_argument(
        "--seed", type=int, default=0, help="which random cells, and the model seed of random_state=none (default 0)"
    )
    fit.add_argument(
        "--data", default=None, help="training data instead of a table: JSON Lines, or CSV (a run's evaluations.csv)"
    )
    fit.add_argument("--out", default=None, help="where to save the fitted predictor (JSON)")


def run(args: argparse.Namespace) -> int:
    from ..predictors import DEFAULT_PREDICTOR

    if args.predictor is None:
        args.predictor = DEFAULT_PREDICTOR
    if args.archs[0] == "fit":
        if len(args.archs) > 1:
            raise ConfigError(f"predict fit takes no architectures, got {' '.join(args.archs[1:])}")
        return run_fit(args)
    return run_predict(args)


COMMANDS = (
    Command("predict", "fit a performance predictor, or predict architectures with a saved one", configure, run),
)
