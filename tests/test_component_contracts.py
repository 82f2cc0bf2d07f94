"""A plugin component that breaks its contract in a search (raises an error of its own, or returns what it may
not: a negative latency, an accuracy of 42, another network's hash, proposals that are no Candidates) stops
the search with one ComponentError naming the component and its plugin, not a traceback from deep inside
the loop, and never stores the wrong figure. The run keeps what it evaluated before."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

import na_toolkit
from na_toolkit.cli.main import main
from na_toolkit.errors import ComponentError, MoveError, TimeModelError
from na_toolkit.evaluation.base import EvaluationResult, Evaluator
from na_toolkit.moves import MoveType, ParamSpec
from na_toolkit.plugins import ALLOW_ENV, DENY_ENV, load_toolkit
from na_toolkit.predictors.base import Predictor
from na_toolkit.search import run_search
from na_toolkit.search.strategy import Strategy
from na_toolkit.store import SQLiteRunStore
from na_toolkit.timemodels.base import TimeEstimate, TimeModel

PLUGIN = __name__  # this module is the plugin


class NegativeLatency(TimeModel):
    name = "contract-negative"

    def estimate(self, arch, batch_size=1):
        return TimeEstimate(self.name, self.device, batch_size, latency_ms=-3.0)


class FloatLatency(TimeModel):
    name = "contract-float"

    def estimate(self, arch, batch_size=1):
        return 1.0


class RaisingLatency(TimeModel):
    name = "contract-raises"

    def estimate(self, arch, batch_size=1):
        return {"a": 1}["b"]  # a bug in the plugin: KeyError


class AbsentBoard(TimeModel):
    name = "contract-absent-board"
    measures = True

    def estimate(self, arch, batch_size=1):
        raise TimeModelError("no board answers at /dev/board0: plug it in")


class PercentEvaluator(Evaluator):
    name = "contract-percent"

    def evaluate(self, arch):
        return EvaluationResult(arch.hash, 42.0, evaluator=self.name)


class WrongHashEvaluator(Evaluator):
    name = "contract-wrong-hash"

    def evaluate(self, arch):
        return EvaluationResult("deadbeef", 0.5, evaluator=self.name)


class NoneStrategy(Strategy):
    name = "contract-none"

    def ask(self, n):
        return None


class ArchitectureStrategy(Strategy):
    name = "contract-archs"

    def ask(self, n):
        return [self.context.seed_arch]


class FailingPredictor(Predictor):
    name = "contract-fails"

    def _fit(self, archs, y, datasets):
        raise ZeroDivisionError("a bug in the plugin")


class NaNPredictor(Predictor):
    name = "contract-nan"

    def _fit(self, archs, y, datasets):
        self.n_ = len(archs)

    def _predict(self, archs, datasets):
        return np.full(len(archs), np.nan)


class NoneMove(MoveType):
    name = "contract-none-move"
    description = "returns None from apply"

    def params(self):
        return (ParamSpec.position("at"),)

    def mask(self, arch, param, chosen):
        return np.ones(len(arch.nodes), dtype=bool)

    def apply(self, arch, **params):
        return None


class OverAdmittingMove(NoneMove):
    name = "contract-over-admits"
    description = "admits every node, applies at none"

    def apply(self, arch, **params):
        raise MoveError(f"{self.name}: no node takes it")


@na_toolkit.hookimpl
def na_register_moves(registry):
    registry.add(NoneMove())
    registry.add(OverAdmittingMove())


@na_toolkit.hookimpl
def na_register_time_models(registry):
    for cls in (NegativeLatency, FloatLatency, RaisingLatency, AbsentBoard):
        registry.add(cls)


@na_toolkit.hookimpl
def na_register_evaluators(registry):
    registry.add(PercentEvaluator)
    registry.add(WrongHashEvaluator)


@na_toolkit.hookimpl
def na_register_strategies(registry):
    registry.add(NoneStrategy)
    registry.add(ArchitectureStrategy)


@na_toolkit.hookimpl
def na_register_predictors(registry):
    registry.add(FailingPredictor)
    registry.add(NaNPredictor)


@pytest.fixture(scope="module")
def tk():
    return load_toolkit(entry_points=False, extra_plugins=(sys.modules[__name__],))


def config(
    tmp_path, time_model="roofline", evaluator="synthetic", strategy="evolution", predictor="bayesian-ridge", move=None
):
    options = {"device": "x86-cpu"} if time_model == "roofline" else {}
    return {
        "name": "contract",
        "seed_network": "simple-cnn",
        "evaluations": 6,
        "random_seed": 1,
        "output": str(tmp_path),
        "search": {"per_round": 2, "moves": ["scale", "remove"] if move is None else [move], "min_fit": 2},
        "strategy": {"name": strategy},
        "evaluator": evaluator,
        "predictors": {"accuracy": {"name": predictor}},
        "devices": {"cpu": {"time_model": {"name": time_model, "options": options}, "budgets": {"latency_ms": 1.0}}},
    }


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"time_model": "contract-negative"},
            rf"^time model 'contract-negative' of plugin {PLUGIN} gave network \w+ on device cpu an estimate it may "
            r"not: latency_ms=-3.0 \(a finite number >= 0\)$",
        ),
        (
            {"time_model": "contract-float"},
            rf"^time model 'contract-float' of plugin {PLUGIN} gave network \w+ on device cpu an estimate it may "
            r"not: returned float, not a TimeEstimate$",
        ),
        (
            {"time_model": "contract-raises"},
            rf"^time model 'contract-raises' of plugin {PLUGIN} failed on network \w+ for device cpu: KeyError: 'b'$",
        ),
        (
            {"evaluator": "contract-percent"},
            rf"^evaluator 'contract-percent' of plugin {PLUGIN} gave network \w+ an answer it may not: "
            r"valid_accuracy=42.0 \(a fraction in \[0, 1\]\)$",
        ),
        (
            {"evaluator": "contract-wrong-hash"},
            rf"^evaluator 'contract-wrong-hash' of plugin {PLUGIN} gave network (\w+) an answer it may not: the "
            r"result is of network 'deadbeef', evaluated '\1'$",
        ),
        (
            {"strategy": "contract-none"},
            rf"^strategy 'contract-none' of plugin {PLUGIN} failed to propose 2 candidate\(s\): TypeError: 'NoneType' "
            "object is not iterable$",
        ),
        (
            {"strategy": "contract-archs"},
            rf"^strategy 'contract-archs' of plugin {PLUGIN} proposed Architecture, not Candidate objects: wrap each "
            r"network as Candidate\(arch, moves, parent, origin\) \(na_toolkit.search.strategy\)$",
        ),
        (
            {"predictor": "contract-fails"},
            rf"^accuracy predictor 'contract-fails' of plugin {PLUGIN} failed to fit on 3 evaluations: "
            "ZeroDivisionError: a bug in the plugin$",
        ),
        (  # before: NaN ranked the proposals, and summary.json held a literal NaN (not JSON)
            {"predictor": "contract-nan"},
            rf"^accuracy predictor 'contract-nan' of plugin {PLUGIN} gave \d+ network\(s\) predictions it may not: "
            r"\d+ mean value\(s\) NaN or infinite$",
        ),
        (  # before: the built-in strategy was blamed ("AttributeError: 'NoneType' object has no attribute 'hash'")
            {"move": "contract-none-move"},
            rf"^move 'contract-none-move' of plugin {PLUGIN}: apply returned NoneType, not an Architecture$",
        ),
        (  # before: the search stopped "stalled" with rc 0, naming no move
            {"move": "contract-over-admits"},
            rf"^move 'contract-over-admits' of plugin {PLUGIN}: its masks admit \{{'at': \d+\}} on network \w+, but "
            r"apply refused them \(contract-over-admits: no node takes it\); every assignment",
        ),
    ],
    ids=lambda v: next(iter(v.values())) if isinstance(v, dict) else None,
)
def test_a_component_that_breaks_its_contract_stops_the_search_naming_it_and_its_plugin(tk, tmp_path, changes, message):
    with pytest.raises(ComponentError, match=message) as err:
        run_search(config(tmp_path, **changes), toolkit=tk, progress=False, outputs=False)
    if " failed " in message:
        assert err.value.__cause__ is not None  # the component's own error, for its author
    # nothing it answered wrongly was stored: every stored evaluation is a valid one
    for folder in tmp_path.iterdir():
        with SQLiteRunStore.open(folder) as store:
            assert all(0 <= rec.metrics["accuracy"] <= 1 for rec in store.evaluations() if rec.error is None)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """This module installed as the plugin of a distribution (`contract-dist 1.0`), as `main` loads plugins."""
    info = tmp_path / "contract_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: contract-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[na_toolkit]\ncontract = {__name__}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(ALLOW_ENV, "contract")
    monkeypatch.delenv(DENY_ENV, raising=False)
    yield
    logging.getLogger("na_toolkit").setLevel(logging.WARNING)  # main's -vv configured it for this process


def test_the_cli_says_it_in_one_line_keeps_the_run_and_shows_the_traceback_with_vv(installed, tmp_path, capsys):
    (tmp_path / "search.toml").write_text(
        f'seed_network = "simple-cnn"\nevaluations = 6\nrandom_seed = 1\noutput = "{tmp_path / "runs"}"\n'
        'evaluator = "synthetic"\n[search]\nper_round = 2\nmin_fit = 2\nmoves = ["scale", "remove"]\n'
        '[predictors]\naccuracy = { name = "contract-fails" }\n'
        '[devices.cpu]\ntime_model = { name = "roofline", options = { device = "x86-cpu" } }\n'
    )
    assert main(["search", str(tmp_path / "search.toml"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(
        "na-toolkit: error: accuracy predictor 'contract-fails' of plugin contract (contract-dist"
    )
    assert err[-1].endswith("ZeroDivisionError: a bug in the plugin (-vv prints its traceback)")
    assert any(line.startswith("na-toolkit: the run keeps its 3 evaluations; continue it with") for line in err)
    assert "Traceback" not in "\n".join(err)
    # the run records what ended it: `runs` and `report` say it
    runs = tmp_path / "runs"
    (run,) = runs.iterdir()
    assert main(["runs", str(runs)]) == 0
    assert f"failed ({run.name}): ComponentError: accuracy predictor 'contract-fails'" in capsys.readouterr().out
    assert main(["report", str(run)]) == 2
    assert "failed (ComponentError: accuracy predictor 'contract-fails'" in capsys.readouterr().err
    assert main(["-vv", "search", str(tmp_path / "search.toml"), "--no-progress", "--output", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'raise ZeroDivisionError("a bug in the plugin")' in err
    assert err.strip().splitlines()[-1].endswith("ZeroDivisionError: a bug in the plugin")


def test_a_run_whose_measurements_all_failed_says_so_not_to_loosen_a_budget(tk, tmp_path):
    # before: "the closest (HASH) has . Loosen the budget or start from a smaller seed network": no budget was
    # broken, every measurement had failed, and the reason was only in each row's violations
    doc = config(tmp_path)
    doc["evaluations"] = 2
    doc["devices"]["cpu"]["measure"] = {"name": "contract-absent-board"}
    result = run_search(doc, toolkit=tk, progress=False)
    why = result.infeasible["cpu"]
    assert why.startswith(
        "no candidate of 2 evaluated is known to meet the budgets of device cpu; 2 of them could not be judged, "
        "the first: "
    )
    assert "measurement failed" in why and "no board answers at /dev/board0: plug it in" in why
    assert "Loosen the budget" not in why
