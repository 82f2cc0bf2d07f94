"""`na-toolkit evaluate ARCH --dataset digits`: ground truth for one architecture (train it, report valid/test
accuracy and training time); `na-toolkit datasets`: the datasets and their descriptors."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .command import Command

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..toolkit import Toolkit

# CLI flag -> evaluator option; a flag left unset keeps the evaluator's default
_OPTION_FLAGS = {
    "epochs": "epochs",
    "seed": "seed",
    "split_seed": "split_seed",
    "batch_size": "batch_size",
    "lr": "lr",
    "optimizer": "optimizer",
    "weight_decay": "weight_decay",
    "device": "device",
    "threads": "threads",
}


def resize_arg(text: str) -> int | tuple[int, int]:
    """`--resize PX` (a square) or `--resize HxW` (height x width), sides checked as the option's are."""
    from ..datasets.loaders import image_size
    from ..errors import DataError

    try:
        sides = [int(v) for v in text.lower().split("x")]
        size = image_size(sides if len(sides) > 1 else sides[0])
    except ValueError as exc:  # int() or image_size's DataError
        why = exc if isinstance(exc, DataError) else "not PX or HxW (e.g. 32 or 24x32)"
        raise argparse.ArgumentTypeError(f"{text!r}: {why}") from None
    assert size is not None
    return size if len(sides) > 1 else size[0]


def _configure_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "arch", metavar="ARCH", help="seed network name, IR JSON file or .onnx file (./NAME: a file named like a seed)"
    )
    p.add_argument("--dataset", help="registered dataset, image folder or .npz file (default: digits)")
    p.add_argument(
        "--resize", type=resize_arg, metavar="PX|HxW", help="resize image-folder datasets to PX x PX (or H x W)"
    )
    p.add_argument("--evaluator", default="torch", help="registered evaluator (default: torch)")
    p.add_argument("--epochs", type=int, help="training epochs (torch default: 15)")
    p.add_argument("--seed", type=int, help="initialisation and data-order seed (default: 0)")
    p.add_argument("--split-seed", type=int, help="seed of the train/valid/test split (default: 0)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (torch default: 32)")
    p.add_argument("--lr", type=float, help="peak learning rate (torch default: 0.2 with SGD)")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), help="optimizer (torch default: sgd, Nesterov)")
    p.add_argument("--weight-decay", type=float, help="weight decay (torch default: 5e-4)")
    p.add_argument("--device", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--threads", type=int, help="torch CPU threads (torch default: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")


def _architecture_for(spec: str, dataset: Any, toolkit: Toolkit) -> Architecture:
    """A seed name builds for the dataset's input shape and classes when its builder takes them; anything else
    (a JSON or ONNX file) is used as it is and must match the dataset."""
    from ..errors import DataError
    from ..ir.seeds import fixed_seed_hint
    from .arch import load_architecture, seed_file

    if seed_file(spec, toolkit) is None:  # a registered seed, though a file of its name exists (write ./NAME)
        from ..errors import ArchitectureError

        seed = toolkit.seeds.get(spec)
        try:
            built = seed.build_for(toolkit.layer_types, dataset.input_shape, dataset.classes)
        except ArchitectureError as exc:
            raise DataError(
                f"seed {spec!r} cannot be built for dataset {dataset.name!r} (input {tuple(dataset.input_shape)}, "
                f"{dataset.classes} classes): {exc}; give images large enough (--resize PX|HxW) or another network"
            ) from None
        if built is not None:
            return built
        arch = seed.build(toolkit.layer_types)
        if arch.input_shape != tuple(dataset.input_shape) or arch.output_shape != (dataset.classes,):
            raise DataError(
                f"seed {spec!r} takes input {arch.input_shape} and outputs {arch.output_shape}, dataset "
                f"{dataset.name!r} has input {tuple(dataset.input_shape)} and {dataset.classes} classes; "
                f"{fixed_seed_hint(toolkit.seeds)}"
            )
        return arch
    return load_architecture(spec, toolkit)


def _run_evaluate(args: argparse.Namespace) -> int:
    from ..datasets import get_dataset
    from ..evaluation.torch_trainer import TorchEvaluator

    toolkit = args.toolkit
    cls = toolkit.evaluators.get(args.evaluator)
    options: dict[str, Any] = {
        opt: getattr(args, flag) for flag, opt in _OPTION_FLAGS.items() if getattr(args, flag) is not None
    }
    if issubclass(cls, TorchEvaluator):
        dataset = get_dataset(args.dataset or "digits", toolkit.datasets, resize=args.resize)
        options.update(dataset=dataset, progress=not args.no_progress)
        arch = _architecture_for(args.arch, dataset, toolkit)
    else:  # another evaluator (e.g. a table lookup) gets only the options given on the command line
        from ..errors import ConfigError
        from ..validation import check_options, takes_option
        from .arch import load_architecture

        if args.dataset is not None:
            if not takes_option(cls, "dataset"):  # the rule a search config's `dataset` follows
                raise ConfigError(f"--dataset: evaluator {args.evaluator!r} takes no dataset option; leave it out")
            options["dataset"] = args.dataset
        check_options(cls, options, f"evaluator {args.evaluator!r} options")
        arch = load_architecture(args.arch, toolkit)
    result = cls.from_toolkit(toolkit, **options).evaluate(arch)
    doc = {"architecture": arch.name or args.arch, **result.to_json()}
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return 0
    print(f"architecture    {doc['architecture']} ({arch.hash}, {arch.params:,} params)")
    print(f"dataset         {result.dataset}")
    print(f"valid_accuracy  {result.valid_accuracy:.4f}  (best epoch {result.best_epoch} of {result.epochs})")
    if (result.extra or {}).get("diverged"):
        from ._output import warn

        warn(
            f"training diverged in epoch {result.epochs} (a non-finite loss) and stopped there; the figures are "
            f"of epoch {result.best_epoch}'s weights (a lower lr trains all epochs)"
        )
    if result.test_accuracy is not None:
        print(f"test_accuracy   {result.test_accuracy:.4f}")
    if result.train_time_s is not None:
        print(f"train_time_s    {result.train_time_s:.2f}  ({result.device})")
    return 0


# ---- datasets -------------------------------------------------------------------------------------------
def _configure_datasets(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "sources",
        nargs="*",
        metavar="NAME_OR_PATH",
        help="datasets to describe (default: every registered one); image folders and .npz files too",
    )
    p.add_argument(
        "--resize", type=resize_arg, metavar="PX|HxW", help="resize image-folder datasets to PX x PX (or H x W)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _run_datasets(args: argparse.Namespace) -> int:
    from ..datasets import get_dataset_source
    from ..errors import DataError

    toolkit = args.toolkit
    names = args.sources or toolkit.datasets.names()
    rows = []
    unavailable = {}
    for name in names:
        source = get_dataset_source(name, toolkit.datasets, resize=args.resize)
        try:
            descriptor = source.load().descriptor
        except DataError as exc:
            if args.sources:  # asked for by name: the error is the answer
                raise
            unavailable[source.name] = str(exc)  # listing all: an optional dataset's extra may be missing
            continue
        # a path is read by the built-in loaders, registered by no plugin (JSON: plugin null); a registered name
        # is looked up as given (the registry names the source it holds after it)
        plugin = toolkit.datasets.plugin_of(name) if name in toolkit.datasets else None
        rows.append(
            {
                "name": source.name,
                "description": source.description,
                "origin": source.origin,
                "plugin": plugin,
                "descriptor": descriptor.to_json(),
            }
        )
    if args.json:
        print(json.dumps({"datasets": rows, **({"unavailable": unavailable} if unavailable else {})}, indent=2))
        return 0
    from ._format import render_table, shape_str

    table = []
    for r in rows:
        d = r["descriptor"]
        table.append(
            [
                r["name"],
                d["samples"],
                d["classes"],
                shape_str(tuple(d["input_shape"])),
                f"{d['class_balance_ratio']:.2f}",
                f"{d['pixel_entropy_bits']:.2f}",
                f"{d['mean_gradient']:.2f}",
                f"{d['neighbour_correlation']:.2f}",
                f"{d['centroid_accuracy']:.2f}",
            ]
        )
    print(
        render_table(
            ["name", "samples", "classes", "shape", "balance", "entropy_bits", "gradient", "nb_corr", "centroid_acc"],
            table,
            right={1, 2, 4, 5, 6, 7, 8},
        )
    )
    for r in rows:
        origin = f"plugin {r['plugin']}" if r["plugin"] else "read from its path, no plugin"
        print(f"\n{r['name']}: {r['description']} [{origin}]", file=sys.stdout)
    for name, why in unavailable.items():
        print(f"\n{name}: unavailable: {why}", file=sys.stdout)
    return 0


COMMANDS = (
    Command(
        "evaluate",
        "train an architecture on a dataset: valid/test accuracy and training time",
        _configure_evaluate,
        _run_evaluate,
    ),
    Command(
        "datasets",
        "list datasets with their descriptors (size, classes, balance, statistics)",
        _configure_datasets,
        _run_datasets,
    ),
)
