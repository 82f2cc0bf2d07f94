"""Fresh benchmark results against the committed ones: are the committed figures reproduced, seed by seed?

A fresh result (the JSON `na-toolkit bench NAME ... --out PATH` wrote) is compared with the committed
`benchmarks/NAME*.json` of the same parameters, up to the parameters that only choose how much of the run
is done (fewer seeds, a subset of strategies or predictors): over the seeds both hold, every per-seed value
must match within the tolerance. Used by `bench architecture` (`nb201_search_reproduced`,
`predictor_reproduced`), which can rerun committed results itself (`rerun_argv`: the command a result's
"params" stand for, as today's options of its benchmark spell it). A report names a file relative to the
repository when it lies inside it (`benchmarks/nb201-search.json`), and a rerun's fresh result, a
temporary file gone when the run ends, by the command that made it.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, NAToolkitError

if TYPE_CHECKING:
    from ..toolkit import Toolkit

#: the repository a source checkout runs from (bench/reproduce.py is na_toolkit/bench/ of it)
REPO_ROOT = Path(__file__).resolve().parents[2]

#: test accuracies (percent) and predictor scores that count as the same figure
REPRODUCE_TOLERANCE = 1e-6

Series = dict[str, list[float | None]]


@dataclass(frozen=True)
class ReproducedFigure:
    """What to compare for one benchmark: its committed files, the parameters that only select a subset of
    the run, and how to read per-seed values (series name -> one value per seed) from a result."""

    pattern: str
    subset_params: frozenset[str]
    series: Callable[[Mapping[str, Any]], Series]


def _nb201_series(doc: Mapping[str, Any]) -> Series:
    return {s: list(v["test_accuracy_per_seed"]) for s, v in doc.get("strategies", {}).items()}


def _predictor_series(doc: Mapping[str, Any]) -> Series:
    out = {f"{p}.kendall_tau": list(v) for p, v in doc.get("per_seed", {}).items()}
    out.update({f"{p}.mape_pct": list(v) for p, v in doc.get("per_seed_mape_pct", {}).items()})
    return out


NB201_SEARCH = ReproducedFigure(
    "nb201-search*.json", frozenset({"benchmark", "seeds", "strategies", "rate_batch"}), _nb201_series
)
PREDICTOR = ReproducedFigure(
    "predictor*.json",
    frozenset({"benchmark", "seeds", "predictors", "neural_seeds", "throughput_archs"}),
    _predictor_series,
)


def _same(a: float | None, b: float | None, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)  # a seed without a feasible result, in both runs
    return abs(a - b) <= tol


def compare_per_seed(fresh: Series, committed: Series, tol: float = REPRODUCE_TOLERANCE) -> dict[str, Any]:
    """Series by series, the fresh values against the committed ones of the same seeds."""
    compared, max_diff = 0, 0.0
    mismatches: list[dict[str, Any]] = []
    not_committed: list[str] = []
    for key, values in fresh.items():
        theirs = committed.get(key)
        if theirs is None:
            not_committed.append(key)
            continue
        for seed, (a, b) in enumerate(zip(values, theirs)):
            compared += 1
            if a is not None and b is not None and not (math.isnan(a) or math.isnan(b)):
                max_diff = max(max_diff, abs(a - b))
            if not _same(a, b, tol):
                mismatches.append({"series": key, "seed": seed, "fresh": a, "committed": b})
        if len(values) > len(theirs):
            not_committed.append(f"{key}: seeds {len(theirs)}..{len(values) - 1}")
    return {"compared": compared, "max_abs_diff": max_diff, "mismatches": mismatches, "not_committed": not_committed}


def committed_result(
    figure: ReproducedFigure, params: Mapping[str, Any], folder: Path, defaults: Mapping[str, Any] | None = None
) -> Path | None:
    """The committed result of the same parameters (up to `figure.subset_params`), None if there is none. A
    parameter one of them lacks (an option added since, or the CLI flags -v/-q/--log-file that older results
    recorded as null) matches null, or the option's default today where `defaults` (dest -> default, of the
    benchmark's parser: `option_defaults`) gives it: a result written before `--dataset c10` existed ran what
    that default runs."""
    defaults = defaults or {}
    for path in sorted(folder.glob(figure.pattern)):
        theirs = json.loads(path.read_text()).get("params", {})
        keys = (set(params) | set(theirs)) - figure.subset_params
        if all(_same_param(k, params, theirs, defaults) for k in keys):
            return path
    return None


def _same_param(key: str, ours: Mapping[str, Any], theirs: Mapping[str, Any], defaults: Mapping[str, Any]) -> bool:
    if key in ours and key in theirs:
        return bool(ours[key] == theirs[key])
    present = ours[key] if key in ours else theirs[key]
    return present is None or (key in defaults and present == defaults[key])


def benchmark_parser(toolkit: Toolkit, benchmark: str) -> argparse.ArgumentParser:
    """`benchmark`'s own parser (its options only), as today's code builds it."""
    parser = argparse.ArgumentParser()
    toolkit.benchmarks.get(benchmark).configure(parser)
    return parser


def option_defaults(toolkit: Toolkit, benchmark: str) -> dict[str, Any]:
    """dest -> default of every option of `benchmark`'s parser as today's code builds it."""
    parser = benchmark_parser(toolkit, benchmark)
    return {a.dest: a.default for a in parser._actions if a.option_strings and a.default is not argparse.SUPPRESS}


def shown(path: str | Path) -> str:
    """`path` as a report records it: relative to the repository when inside it, else as given (an absolute
    temporary or checkout path would tie a committed report to the machine that made it)."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def reproduced(
    figure: ReproducedFigure,
    results: Sequence[str | Path],
    folder: Path,
    tol: float = REPRODUCE_TOLERANCE,
    *,
    names: Mapping[Path, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """{"reproduced": True / False / None (no fresh result), "files": one report per fresh result}. Each
    file's "fresh" is its name in `names` (a rerun's command) or its path, `shown`; "committed" likewise.
    `defaults`: the benchmark's option defaults, for parameters a committed result predates
    (`committed_result`)."""
    if not results:
        return {"reproduced": None, "reason": "no fresh result given", "files": []}
    files: list[dict[str, Any]] = []
    for result in results:
        path = Path(result)
        fresh = (names or {}).get(path) or shown(path)
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read the result {path}: {e}; pass the JSON file `bench ... --out` wrote") from e
        committed = committed_result(figure, doc.get("params", {}), folder, defaults)
        if committed is None:
            files.append(
                {
                    "fresh": fresh,
                    "committed": None,
                    "reproduced": False,
                    "reason": f"no {shown(folder / figure.pattern)} with the same params",
                }
            )
            continue
        theirs = json.loads(committed.read_text())
        report = compare_per_seed(figure.series(doc), figure.series(theirs), tol)
        good = report["compared"] > 0 and not report["mismatches"]
        cpus = [(d.get("machine") or {}).get("cpu") for d in (doc, theirs)]
        if not good and cpus[0] != cpus[1]:  # float fits (BLAS, torch) round otherwise on another CPU model
            report["note"] = (
                f"committed on {cpus[1]}, rerun on {cpus[0]}: fitted figures differ across CPU models from about "
                f"the 5th digit, and the tolerance is {tol:g}; the per-seed figures reproduce exactly on the "
                "committing CPU model"
            )
        files.append({"fresh": fresh, "committed": shown(committed), "reproduced": good, **report})
    return {"reproduced": all(f["reproduced"] for f in files), "files": files}


#: the options of a benchmark that name a file it writes (not inputs: a rerun writes its own)
OUTPUT_PARAMS = frozenset({"out", "plot", "dump", "profile_out", "work_dir", "out_dir"})


def options_of(parser: argparse.ArgumentParser, params: Mapping[str, Any], what: str) -> list[str]:
    """The command-line options that give `params` (a result's "params", less "benchmark") on `parser` (the
    benchmark's own, as today's code builds it): an option at its default is left out. ConfigError naming
    `what` when a parameter is no option today, or was recorded as null where the option now defaults to
    something else (the command would not run the same)."""
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    unknown = sorted(k for k in params if k != "benchmark" and k not in actions)
    if unknown:
        raise ConfigError(f"{what}: {', '.join(unknown)} is no option of the benchmark today; rerun it and commit anew")
    argv: list[str] = []
    for key, value in params.items():
        if key == "benchmark":
            continue
        action = actions[key]
        option = max(action.option_strings, key=len)  # the long spelling
        if value == action.default or (value is None and action.default == argparse.SUPPRESS):
            continue  # at its default, or a CLI-wide flag not given (-v, -q, --log-file)
        if value is None:
            raise ConfigError(f"{what}: {key} was null, and {option} now defaults to {action.default!r}")
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            argv += [option] if value != action.default else []
        elif isinstance(action, argparse._AppendAction):
            for item in value:
                argv += [option, str(item)]
        elif isinstance(value, list):
            argv += [option, *map(str, value)]
        else:
            argv += [option, str(value)]
    return argv


#: the committed results a rerun can check, by benchmark name
FIGURES = {"nb201-search": NB201_SEARCH, "predictor": PREDICTOR}


def reproduced_by(
    toolkit: Toolkit, benchmark: str, results: Sequence[str | Path], folder: Path, names: Mapping[Path, str]
) -> dict[str, Any]:
    """`reproduced` for the figures of `benchmark` (a name of FIGURES), with its options' defaults today."""
    return reproduced(FIGURES[benchmark], results, folder, names=names, defaults=option_defaults(toolkit, benchmark))


@dataclass(frozen=True)
class Rerun:
    """A committed result run again on its first `seeds` seeds: the command, the fresh result, its time."""

    committed: str
    benchmark: str
    command: str
    result: Path
    wall_s: float


def rerun(committed: Path, seeds: int, out_dir: Path, toolkit: Toolkit) -> Rerun:
    """Run `na-toolkit bench NAME` again with the params `committed` records (today's option names), on its
    first `seeds` seeds, writing the fresh result into `out_dir` (a subprocess: the command a user runs)."""
    try:
        params = json.loads(committed.read_text())["params"]
        name = params["benchmark"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--rerun {committed}: not a committed benchmark result ({e})") from None
    if name not in FIGURES:
        raise ConfigError(f"--rerun {committed}: a {name!r} result; reruns compare {', '.join(FIGURES)} results")
    parser = benchmark_parser(toolkit, name)
    # the CLI's own flags (-v, -q, --log-file), which older results recorded as null, are not the benchmark's
    cli_flags = {k for k in ("verbose", "quiet", "log_file") if params.get(k) is None}
    kept = {k: v for k, v in params.items() if k not in {*OUTPUT_PARAMS, *cli_flags, "seeds"}}
    options = [*options_of(parser, kept, f"--rerun {committed}"), "--seeds", str(seeds)]
    result = out_dir / f"{committed.stem}.json"
    argv = ["bench", name, *options, "--out", str(result)]
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "na_toolkit", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        raise NAToolkitError(
            f"--rerun {committed}: `na-toolkit {shlex.join(argv)}` exited {proc.returncode}: {proc.stderr[-500:]}"
        )
    command = shlex.join(["na-toolkit", *argv[:-2]])  # without the temporary --out
    return Rerun(shown(committed), name, command, result, round(time.perf_counter() - started, 1))
