"""`make demo` / `na-toolkit demo`: a real hardware-aware search on this machine, start to finish.

1. Calibrate a roofline hardware model of this very CPU (`calibrate_hardware()`: a large matrix product, a
   large copy, a burst of tiny ops) and write it into the run folder;
2. measure the `simple-cnn` seed with ONNX Runtime on this CPU and set the latency budget to
   `latency_factor` × that latency (the model-size budget is the paper's 16 MB);
3. search with the config `examples/demo.toml`: candidates are scored by the predictors and the
   calibrated roofline model, every evaluated candidate is trained and then measured by ONNX Runtime;
4. print the Pareto table, the best feasible candidate and the run folder.

Before step 1 the demo picks its dataset (`choose_dataset`, unless one is given): a search can only rank
candidates on a dataset the seed has not already saturated. It goes down `DEMO_DATASETS` (cheapest first)
and takes the first on which the seed network, trained exactly as the search trains candidates, stays below
`SATURATION_ACCURACY` validation accuracy; the last one is taken without that trial (nothing harder is left).
digits (1,797 8x8 images, a 179-image validation split: 0.56-point steps) saturates: the seed reaches about
99%, and a 20-evaluation demo run there spread over 9 distinct accuracies with the best tied. mnist-5k (the
optional extra `datasets`) is next; when it is not installed the demo stays on digits and says why. The seed
is re-rooted on the chosen dataset's input shape (simple-cnn ends in a global pool, so it fits 28x28 as is),
and a dataset may lower the epochs (`DEMO_EPOCHS`) to keep the demo within minutes.

About 2 to 5 minutes on 2 idle cores; `--resume RUN` works on a demo run like on any other.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import read_config_file

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..toolkit import Toolkit
    from .loop import SearchResult

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"

#: the datasets the demo may search, cheapest first (see the module docstring for the rule)
DEMO_DATASETS = ("digits", "mnist-5k")
#: a seed at or above this validation accuracy leaves the candidates too little room to differ in
SATURATION_ACCURACY = 0.98
#: evaluator epochs per dataset where the config's would make the demo slow (28x28 costs ~12x 8x8 per image)
DEMO_EPOCHS = {"mnist-5k": 5}


@dataclass
class DatasetChoice:
    """What `choose_dataset` picked and why: the seed's validation accuracy on each dataset it trained it on,
    and the datasets it could not use (name -> the reason)."""

    dataset: str
    reason: str
    seed_valid_accuracy: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def _default_config() -> dict[str, Any]:
    if DEMO_CONFIG.is_file():  # a source checkout (what `make demo` runs)
        return read_config_file(DEMO_CONFIG)
    # an installed wheel has no examples/: the same search, kept in sync by tests/test_search_config.py
    import tomllib

    return tomllib.loads(DEMO_TOML)


def run_demo(
    out_dir: str | Path = "runs",
    *,
    evaluations: int | None = None,
    random_seed: int | None = None,
    latency_factor: float = 1.5,
    seed_network: str | None = None,
    moves: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    toolkit: Toolkit | None = None,
    dataset: str | None = None,
    resize: int | tuple[int, int] | None = None,
) -> SearchResult:
    """Run the demo search into a new run folder under `out_dir`; returns the `SearchResult`. Like
    `run_search`, an entry point: without `toolkit` it uses the process default (`get_toolkit()`).
    `dataset`: search this one (a registered name or a path); None: `choose_dataset` picks it. `resize`: an
    image folder's images resized to PX x PX or (H, W) (the evaluator's option)."""
    from ..errors import ConfigError
    from ..plugins import get_toolkit
    from ..timemodels import get_time_model
    from ..timemodels.calibrate import calibrate_hardware
    from ..timemodels.hwmodel import save_hardware_model
    from .config import build_seed, load_config
    from .loop import run_search
    from .outputs import outcome_lines, pareto_table
    from .run_folder import new_run_dir

    say = echo or (lambda text: print(text, flush=True))
    started = time.perf_counter()
    doc = copy.deepcopy(dict(config)) if config is not None else _default_config()
    if evaluations is not None:
        doc["evaluations"] = evaluations
    if random_seed is not None:
        doc["random_seed"] = random_seed
    if seed_network is not None:
        doc["seed_network"] = seed_network
    if moves:
        doc.setdefault("search", {})["moves"] = list(moves)
    if resize is not None:
        options = doc.setdefault("evaluator", {}).setdefault("options", {})
        options["resize"] = list(resize) if isinstance(resize, tuple) else resize
    out_dir = Path(out_dir).resolve()
    doc["output"] = str(out_dir)
    cfg = load_config(doc)  # validate before spending time on measurements
    tk = toolkit if toolkit is not None else get_toolkit()
    run_id, run_dir = new_run_dir(out_dir, cfg.name)  # creates the folder
    if dataset is not None:
        doc["dataset"] = dataset
    else:
        say(f"== 0/3  choosing the dataset: the first of {', '.join(DEMO_DATASETS)} the seed does not saturate")
        choice = choose_dataset(doc, tk)
        say(f"   {choice.dataset}: {choice.reason}")
        for name, why in choice.unavailable.items():
            say(f"   ({name} not used: {why})")
        doc["dataset"] = choice.dataset
    _fit_seed_to_dataset(doc, tk, run_dir)
    cfg = load_config(doc)
    dev = cfg.device("cpu")

    say("== 1/3  calibrating a roofline model of this CPU (matrix product, copy, launch overhead)")
    t = time.perf_counter()
    hw = calibrate_hardware("cpu")
    hw_path = save_hardware_model(hw, run_dir / "local-cpu.toml")
    say(
        f"   {hw.description}: {hw.flops_per_s('fp32') / 1e9:.1f} GFLOP/s fp32, "
        f"{hw.bandwidth_bytes_per_s() / 1e9:.2f} GB/s, launch overhead {hw.launch_overhead_s * 1e6:.2f} us "
        f"({time.perf_counter() - t:.1f} s) -> {hw_path}"
    )

    say("== 2/3  measuring the seed network with ONNX Runtime on this CPU to set the latency budget")
    seed = build_seed(cfg.seed_network, tk)
    if dev.measure is None:  # the demo's own config always measures; a custom `config` must too
        raise ConfigError("the demo needs devices.cpu.measure (it sets the latency budget from a measurement)")
    measure = get_time_model(dev.measure.name, tk, **dev.time_model_options("measure"))
    seed_est = measure.estimate(seed, dev.batch_size)
    roofline = get_time_model(dev.time_model.name, tk, **{**dev.time_model_options(), "device": str(hw_path)})
    budget_ms = latency_factor * seed_est.latency_ms
    roofline_ms = roofline.estimate(seed, dev.batch_size).latency_ms
    say(
        f"   {cfg.seed_network}: {seed_est.latency_ms:.4f} ms measured (p10 {seed_est.latency_p10_ms:.4f}, "
        f"p90 {seed_est.latency_p90_ms:.4f}); calibrated roofline says {roofline_ms:.4f} ms; "
        f"{seed.cost.model_size_bytes / 1e3:.1f} kB of weights"
    )
    say(f"   budgets: latency <= {budget_ms:.4f} ms ({latency_factor} x the seed), model size <= 16 MB")

    cpu = doc["devices"]["cpu"]
    cpu["time_model"] = {"name": dev.time_model.name, "options": {**dev.time_model.options, "device": str(hw_path)}}
    latency = cpu.setdefault("budgets", {}).get("latency_ms")
    cpu["budgets"]["latency_ms"] = {**(latency if isinstance(latency, dict) else {}), "limit": budget_ms}

    say(
        f"== 3/3  searching: {cfg.evaluations} ground-truth evaluations ({cfg.evaluator.name} on {cfg.dataset}, "
        f"{cfg.evaluator.options.get('epochs', '?')} epochs each), strategy {cfg.strategy.name}"
    )
    result = run_search(doc, run_dir=run_dir, progress=progress, toolkit=tk)
    summary = result.summary()
    say("")
    shown = f"{len(summary['pareto'])} of {len(summary['evaluated'])} evaluated"
    say(f"Pareto set ({shown}; accuracy, size, latency on this CPU):")
    say(pareto_table(summary))
    say("")
    for line in outcome_lines(summary):
        say(line)
    c = result.counters
    say(
        f"paid: {c.evaluations} evaluation{'s' * (c.evaluations != 1)}, {c.measurements} "
        f"measurement{'s' * (c.measurements != 1)}; computed: {c.predictor_calls} predictions, "
        f"{c.time_model_calls} roofline estimates, {c.candidates_scored} candidates scored"
    )
    say(f"demo took {time.perf_counter() - started:.0f} s")
    say(f"run folder: {run_dir}")
    return result


def choose_dataset(doc: Mapping[str, Any], toolkit: Toolkit, datasets: Sequence[str] = DEMO_DATASETS) -> DatasetChoice:
    """The demo's dataset (module docstring): the first of `datasets` on which the config's seed, trained with
    the config's evaluator (and `DEMO_EPOCHS`), stays below `SATURATION_ACCURACY` validation accuracy; the
    last usable one without a trial. A dataset that cannot be loaded (an extra not installed) or whose input
    shape the seed cannot take is skipped with its reason."""
    from ..errors import NAToolkitError

    choice = DatasetChoice(dataset="", reason="")
    usable = []
    for name in datasets:
        try:
            _demo_seed(doc, toolkit, name)
        except NAToolkitError as exc:
            choice.unavailable[name] = str(exc)
            continue
        usable.append(name)
    if not usable:
        from ..errors import ConfigError

        raise ConfigError(f"the demo can search none of {', '.join(datasets)}: {choice.unavailable}")
    for name in usable[:-1]:
        accuracy = _seed_valid_accuracy(doc, toolkit, name)
        choice.seed_valid_accuracy[name] = accuracy
        if accuracy < SATURATION_ACCURACY:
            choice.dataset = name
            choice.reason = (
                f"the seed reaches {accuracy:.2%} validation accuracy (< {SATURATION_ACCURACY:.0%}): room to rank"
            )
            return choice
    choice.dataset = usable[-1]
    tried = ", ".join(f"{n} {a:.2%}" for n, a in choice.seed_valid_accuracy.items())
    choice.reason = (
        f"the seed saturates the cheaper one(s) ({tried} >= {SATURATION_ACCURACY:.0%} validation accuracy)"
        if tried
        else "the only dataset the demo can use here"
    )
    return choice


def _demo_seed(doc: Mapping[str, Any], toolkit: Toolkit, dataset: str) -> Architecture:
    """The config's seed network with its input re-rooted on `dataset`'s input shape; DataError / IRError /
    ConfigError when the dataset cannot be loaded or the seed cannot take its shape."""
    from ..datasets import get_dataset
    from ..errors import DataError
    from ..ir.architecture import Architecture

    resize = doc.get("evaluator", {}).get("options", {}).get("resize")
    ds = get_dataset(dataset, toolkit.datasets, resize=tuple(resize) if isinstance(resize, list) else resize)
    seed = _config_seed(doc, toolkit)
    if tuple(seed.input_shape) != ds.input_shape:
        seed = Architecture.from_json({**seed.to_json(), "input_shape": list(ds.input_shape)}, toolkit.layer_types)
    name = str(doc["seed_network"])
    if tuple(seed.output_shape) != (ds.classes,) and name in toolkit.seeds and not Path(name).exists():
        # a user's dataset of other classes: a registered seed is built for them (as `evaluate` builds it)
        seed = toolkit.seeds.get(name).build_for(toolkit.layer_types, ds.input_shape, ds.classes) or seed
    if tuple(seed.output_shape) != (ds.classes,):
        raise DataError(
            f"the seed outputs {tuple(seed.output_shape)}, {dataset!r} has {ds.classes} classes; give --arch a "
            f"network whose last layer outputs {ds.classes}, or a registered seed (na-toolkit arch seeds)"
        )
    return seed


def _config_seed(doc: Mapping[str, Any], toolkit: Toolkit) -> Architecture:
    from .config import build_seed

    reference = str(doc["seed_network"])
    if reference not in toolkit.seeds:  # a file: build_seed takes registered names and absolute paths
        reference = str(Path(reference).resolve())
    return build_seed(reference, toolkit)


def _evaluator_options(doc: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    options = dict(doc.get("evaluator", {}).get("options", {}))
    if dataset in DEMO_EPOCHS:
        options["epochs"] = min(int(options.get("epochs", DEMO_EPOCHS[dataset])), DEMO_EPOCHS[dataset])
    return {**options, "dataset": dataset}


def _seed_valid_accuracy(doc: Mapping[str, Any], toolkit: Toolkit, dataset: str) -> float:
    from ..evaluation import make_evaluator

    evaluator = make_evaluator(str(doc["evaluator"]["name"]), _evaluator_options(doc, dataset), toolkit)
    return float(evaluator.evaluate(_demo_seed(doc, toolkit, dataset)).valid_accuracy)


def _fit_seed_to_dataset(doc: dict[str, Any], toolkit: Toolkit, run_dir: Path) -> None:
    """Point `doc` at a seed for its dataset: the config's own when the shapes agree, else the re-rooted seed
    saved as `seed-<dataset>.json` in the run folder; the dataset's demo epochs go into the evaluator."""
    name = str(doc["dataset"])
    seed = _demo_seed(doc, toolkit, name)
    if seed.hash != _config_seed(doc, toolkit).hash:
        path = run_dir / f"seed-{Path(name).name}.json"
        seed.save(path)
        doc["seed_network"] = str(path)
    evaluator = doc.setdefault("evaluator", {})
    evaluator["options"] = {k: v for k, v in _evaluator_options(doc, name).items() if k != "dataset"}


#: examples/demo.toml for installs without the examples folder (a test checks they are the same)
DEMO_TOML = """
name = "demo"
seed_network = "simple-cnn"
dataset = "digits"
evaluations = 20
random_seed = 0
output = "runs"

[search]
per_round = 4
moves = ["insert_conv", "insert_add", "scale", "remove"]

[strategy]
name = "neural-architect"
options = { updates = 4, episodes = 12 }

[evaluator]
name = "torch"
options = { epochs = 10, threads = 1 }

[predictors]
accuracy = { name = "ensemble", options = { n_estimators = 100 } }

[executor]
name = "local"
options = { workers = 2, threads_per_worker = 1 }

[budgets]
model_size_bytes = 16_000_000

[devices.cpu]
device = "cpu"
time_model = { name = "roofline", options = { device = "x86-cpu" } }
measure = { name = "onnxruntime", options = { intra_op_threads = 1 } }

[devices.cpu.budgets]
latency_ms = { limit = 0.04, weight = 1.0 }
"""


if __name__ == "__main__":  # pragma: no cover
    run_demo(sys.argv[1] if len(sys.argv) > 1 else "runs")
