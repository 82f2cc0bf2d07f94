"""The plugin manager: built-ins, entry points, allow/deny lists, and every way a plugin can be broken.

Each test builds a fresh toolkit with `load_toolkit`. Third-party plugins are real distributions: a
`*.dist-info` folder with an `entry_points.txt` on sys.path (what pip writes), found by importlib.metadata.
The allow list `NA_TOOLKIT_PLUGINS` keeps other installed plugins out of these tests.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import itertools
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest

import na_toolkit
from conftest import refused_then_warned
from na_toolkit import hookspecs
from na_toolkit.errors import DuplicateComponentError, PluginError
from na_toolkit.evaluation.base import Evaluator
from na_toolkit.ir.layers import LayerType
from na_toolkit.moves import MoveType
from na_toolkit.plugins import (
    ALLOW_ENV,
    DEFAULT_PLUGINS,
    DENY_ENV,
    REGISTRIES,
    PluginWarning,
    extend_toolkit,
    get_toolkit,
    load_toolkit,
    load_toolkit_from_selection,
    set_toolkit,
)
from na_toolkit.registry import Registry
from na_toolkit.search.options import options_markdown
from na_toolkit.toolkit import PluginSelection

#: the toolkit's version: what its built-in plugins report as theirs
V = na_toolkit.__version__
_ids = itertools.count()


class TripleLayer(LayerType):
    name = "test_triple"
    description = "a layer type only these tests register"


class ConvImpostor(LayerType):
    name = "conv2d"  # clashes with the built-in


def plugin(name: str | None = None, **hooks) -> types.ModuleType:
    """A plugin module holding the given hook functions, each marked with @na_toolkit.hookimpl."""
    module = types.ModuleType(name or f"test_plugin_{next(_ids)}")
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, na_toolkit.hookimpl(fn))
    return module


def add_layer(*layers):
    def hook(registry):
        for layer in layers:
            registry.add(layer)

    return hook


def raise_(exc):
    def hook(registry):
        raise exc

    return hook


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path where tests install fake distributions; only those load from entry points."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(ALLOW_ENV, "")
    monkeypatch.delenv(DENY_ENV, raising=False)
    return Distributions(tmp_path, monkeypatch)


class Distributions:
    def __init__(self, root: Path, monkeypatch):
        self.root = root
        self.monkeypatch = monkeypatch
        self.names: list[str] = []

    def install(
        self, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str] | None = None
    ) -> None:
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[na_toolkit]\n{lines}")
        for module, source in (modules or {}).items():
            (self.root / f"{module}.py").write_text(source)
            self.monkeypatch.delitem(sys.modules, module, raising=False)
        self.names += list(entry_points)
        self.monkeypatch.setenv(ALLOW_ENV, ",".join(self.names))


GOOD_PLUGIN_SOURCE = """
import na_toolkit
from na_toolkit.ir.layers import LayerType

class Halve(LayerType):
    name = "{layer}"

@na_toolkit.hookimpl
def na_register_layer_types(registry):
    registry.add(Halve())
"""


def unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_ids)}"


# ---- built-ins ------------------------------------------------------------------------------------------
def test_builtins_are_plugins_with_version_and_registrations():
    tk = load_toolkit(entry_points=False)
    assert list(tk.plugins)[: len(DEFAULT_PLUGINS)] == list(DEFAULT_PLUGINS)
    assert tk.errors == []
    layers = tk.plugins["na_toolkit.builtin.layers"]
    assert (layers.dist, layers.version, layers.builtin, layers.error) == (
        "na-toolkit",
        na_toolkit.__version__,
        True,
        None,
    )
    assert {"conv2d", "batchnorm2d", "add", "linear"} <= set(layers.registered["layer_types"])
    assert tk.layer_types.plugin_of("conv2d") == f"na_toolkit.builtin.layers (na-toolkit {na_toolkit.__version__})"
    assert set(tk.plugins["na_toolkit.builtin.seeds"].registered["seeds"]) >= {
        "simple-cnn",
        "resnet-cifar",
        "mobilenetv2-cifar",
    }


def test_every_hookspec_has_a_registry_on_the_toolkit():
    specs = {n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("na_")}
    assert specs == set(REGISTRIES)
    tk = load_toolkit(entry_points=False)
    for hook_name, (attr, cls) in REGISTRIES.items():
        assert isinstance(getattr(tk, attr), cls)
        assert tk.registry(hook_name) is getattr(tk, attr)


def test_get_toolkit_loads_once_and_set_toolkit_replaces():
    first = get_toolkit()
    assert get_toolkit() is first
    fresh = load_toolkit(entry_points=False)
    set_toolkit(fresh)
    try:
        assert get_toolkit() is fresh
    finally:
        set_toolkit(first)


def test_selection_rebuilds_the_same_toolkit(monkeypatch):
    """A worker process rebuilds a toolkit from its recorded selection: same plugins, same registries,
    even when the environment that chose them has changed since."""
    monkeypatch.setenv(DENY_ENV, "na_toolkit.builtin.seeds")
    module = plugin(unique("extra_sel"), na_register_layer_types=add_layer(TripleLayer()))
    monkeypatch.setitem(sys.modules, module.__name__, module)  # importable by name, as a worker needs
    original = load_toolkit(entry_points=False, extra_plugins=(module,))
    assert original.selection.deny == ("na_toolkit.builtin.seeds",)
    assert original.selection.extra_modules == (module.__name__,) and original.selection.portable
    monkeypatch.delenv(DENY_ENV)
    doc = original.selection.to_json()
    again = load_toolkit_from_selection(PluginSelection.from_json(doc))
    assert sorted(again.plugins) == sorted(original.plugins)
    for attr, registry in original.registries().items():
        assert getattr(again, attr).names() == registry.names(), attr
    assert "simple-cnn" not in again.seeds and "test_triple" in again.layer_types


def test_objects_that_are_not_modules_cannot_travel():
    class Obj:
        __name__ = "not_a_module"

        @staticmethod
        @na_toolkit.hookimpl
        def na_register_layer_types(registry):
            registry.add(TripleLayer())

    tk = load_toolkit(entry_points=False, extra_plugins=(Obj(),))
    assert not tk.selection.portable
    with pytest.raises(PluginError, match="cannot rebuild"):
        load_toolkit_from_selection(tk.selection)


def test_a_worker_that_cannot_rebuild_the_toolkit_says_why_not_that_it_died():
    """The error a worker raises comes back through a real spawned process pool as itself: before, a
    PluginError could not be unpickled (pickle calls `cls(*args)`, which its `__init__` refuses), the pool
    broke, and the search said a worker died, retried, and ended in BrokenProcessPool."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(load_toolkit_from_selection, PluginSelection(entry_points=False, portable=False))
        with pytest.raises(PluginError, match="a worker process cannot rebuild it") as caught:
            future.result(timeout=60)
    assert caught.value.plugin == "<selection>"


def _half_in_two_workers(tmp_path):
    """Two evaluations of `HalfEvaluator`'s networks in a pool of two worker processes."""
    return {
        "seed_network": "simple-cnn",
        "evaluations": 2,
        "output": str(tmp_path),
        "search": {"per_round": 2, "moves": ["scale"]},
        "strategy": "random",
        "evaluator": "half",
        "executor": {"name": "local", "options": {"workers": 2}},
    }


def test_a_process_pool_refuses_a_toolkit_that_cannot_travel_before_starting_a_worker(tmp_path):
    from na_toolkit.errors import ConfigError
    from na_toolkit.search import run_search

    class Obj:
        __name__ = "not_a_module"

        @staticmethod
        @na_toolkit.hookimpl
        def na_register_evaluators(registry):
            registry.add(HalfEvaluator)

    tk = load_toolkit(entry_points=False, extra_plugins=(Obj(),))
    doc = _half_in_two_workers(tmp_path)
    with pytest.raises(ConfigError, match=r"workers = 2 runs each task in a worker process.*or set workers = 1"):
        run_search(doc, toolkit=tk, progress=False, outputs=False)
    # refused while the components are built: no run folder (it was made, and left failed with 0 evaluations)
    assert list(tmp_path.iterdir()) == []
    doc["executor"] = "local"  # one worker: in this process, where the object plugin is
    assert len(run_search(doc, toolkit=tk, progress=False, outputs=False).evaluated) == 2


def test_a_process_pool_refuses_components_added_to_the_toolkit_directly(tmp_path):
    """`toolkit.evaluators.add(X)` outside a plugin: a worker process rebuilds the toolkit from its plugins and
    lacks X. Every evaluation failed there with "unknown evaluator 'half'" and the search ended 'finished',
    its budget spent on nothing; now it is refused before a run folder exists."""
    from na_toolkit.errors import ConfigError
    from na_toolkit.search import run_search

    tk = load_toolkit(entry_points=False)
    tk.evaluators.add(HalfEvaluator)
    assert tk.evaluators.direct_names() == ["half"] and tk.moves.direct_names() == []
    doc = _half_in_two_workers(tmp_path)
    with pytest.raises(ConfigError, match=r"and evaluators 'half' were added to this toolkit directly .*workers = 1"):
        run_search(doc, toolkit=tk, progress=False, outputs=False)
    assert list(tmp_path.iterdir()) == []
    doc["executor"] = "local"  # one worker: in this process, where the evaluator is
    assert [
        e.score.metrics["accuracy"] for e in run_search(doc, toolkit=tk, progress=False, outputs=False).evaluated
    ] == [
        0.5,
        0.5,
    ]


class HalfEvaluator(Evaluator):
    name = "half"
    description = "every network at 50% (wiring only)"

    def evaluate(self, arch):
        from na_toolkit.evaluation.base import EvaluationResult

        return EvaluationResult(arch.hash, valid_accuracy=0.5, evaluator=self.name)


def test_extend_toolkit_adds_a_plugin_to_the_same_selection():
    base = load_toolkit(entry_points=False)
    module = plugin(unique("extra_ext"), na_register_layer_types=add_layer(TripleLayer()))
    extended = extend_toolkit(base, module)
    assert "test_triple" in extended.layer_types and "test_triple" not in base.layer_types
    assert extended.selection.extra_modules == (module.__name__,)
    assert set(base.layer_types.names()) < set(extended.layer_types.names())


# ---- extra plugins and what they registered ---------------------------------------------------------------
def test_extra_plugin_registers_components_under_its_name():
    p = plugin("my_plugin", na_register_layer_types=add_layer(TripleLayer()))
    tk = load_toolkit(entry_points=False, extra_plugins=(p,))
    assert tk.plugins["my_plugin"].registered == {"layer_types": ["test_triple"]}
    assert tk.layer_types.plugin_of("test_triple") == "my_plugin"
    assert "test_triple" not in load_toolkit(entry_points=False).layer_types  # fresh toolkit, fresh registries


def test_hook_without_argument_is_called():
    called = []
    p = plugin(na_register_commands=lambda: called.append(True))
    load_toolkit(entry_points=False, extra_plugins=(p,))
    assert called == [True]


# ---- broken plugins -----------------------------------------------------------------------------------
def test_raising_hook_strict_raises_plugin_error_naming_the_plugin():
    p = plugin("raiser", na_register_layer_types=raise_(RuntimeError("boom\n  on two lines")))
    with pytest.raises(
        PluginError, match=r"plugin raiser: na_register_layer_types raised RuntimeError: boom on two lines$"
    ) as info:
        load_toolkit(entry_points=False, extra_plugins=(p,))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_the_toolkits_warnings_share_its_base_class(monkeypatch, tmp_path):
    """NAToolkitWarning is the base of the toolkit's warnings (na_toolkit.errors): a broken plugin's warning
    a profile of another device, a missing hardware folder were a RuntimeWarning, a UserWarning and a plain
    RuntimeWarning, which a filter on NAToolkitWarning let through (a filter on RuntimeWarning still sees them)."""
    from na_toolkit.errors import DeviceWarning, NAToolkitWarning
    from na_toolkit.timemodels.profile import ProfileDeviceWarning

    assert issubclass(PluginWarning, RuntimeWarning) and issubclass(ProfileDeviceWarning, NAToolkitWarning)
    assert issubclass(DeviceWarning, RuntimeWarning)  # the ORT fallback's, a small profile's: RuntimeWarnings
    broken = plugin("broken_warns", na_register_moves=raise_(ValueError("no moves today")))
    with pytest.warns(NAToolkitWarning, match="broken_warns: na_register_moves raised ValueError"):
        load_toolkit(strict=False, entry_points=False, extra_plugins=(broken,))
    monkeypatch.setenv("NA_TOOLKIT_HWMODELS_PATH", str(tmp_path / "missing"))
    with pytest.warns(NAToolkitWarning, match="missing is not a folder; ignored"):
        load_toolkit(entry_points=False)


def test_raising_hook_non_strict_warns_and_withdraws_everything_the_plugin_registered():
    p = plugin(
        "half_done",
        na_register_layer_types=add_layer(TripleLayer()),  # succeeds first ...
        na_register_moves=raise_(ValueError("bad move table")),  # ... then this fails
    )
    good = plugin("good_one", na_register_layer_types=add_layer(type("L", (LayerType,), {"name": "test_good"})()))
    with pytest.warns(PluginWarning, match="half_done: na_register_moves raised ValueError: bad move table"):
        tk = load_toolkit(strict=False, entry_points=False, extra_plugins=(p, good))
    assert "test_triple" not in tk.layer_types  # nothing of a broken plugin lingers
    assert tk.plugins["half_done"].registered == {}
    assert "bad move table" in tk.plugins["half_done"].error
    assert [str(e) for e in tk.errors] == [tk.plugins["half_done"].error]
    assert "test_good" in tk.layer_types and "conv2d" in tk.layer_types  # the others carry on
    assert not tk.pm.has_plugin("half_done")


class OneEvaluator(Evaluator):
    name = "one"
    description = "an evaluator only these tests register"


class ReturnedMove(MoveType):
    name = "test_returned_move"
    description = "a move its plugin returns instead of registering"


def test_a_hook_returning_its_components_instead_of_adding_them_is_reported():
    p = plugin(
        "returner",
        na_register_layer_types=add_layer(TripleLayer()),
        na_register_moves=lambda registry: [ReturnedMove()],  # the mistake: pluggy would collect and drop the list
    )
    message = "plugin returner: hooks call registry.add(...) and return nothing; na_register_moves returned a list"
    tk = refused_then_warned(message, entry_points=False, extra_plugins=(p,))
    assert tk.plugins["returner"].error == message and tk.plugins["returner"].registered == {}
    assert "test_triple" not in tk.layer_types and "test_returned_move" not in tk.moves  # withdrawn
    assert "conv2d" in tk.layer_types


def test_a_hook_may_return_what_registry_add_returns():
    # `registry.add` returns its argument, so a one-line lambda hook returns the object it registered
    p = plugin("one_liner", na_register_moves=lambda registry: registry.add(ReturnedMove()))
    tk = load_toolkit(entry_points=False, extra_plugins=(p,))
    assert tk.plugins["one_liner"].registered == {"moves": ["test_returned_move"]}


@pytest.mark.parametrize("when", ["hook", "import"])
def test_a_plugin_raising_system_exit_is_reported_like_any_failing_plugin(when, site):
    # sys.exit() in a plugin must not end every na-toolkit command (with no output, exit 3)
    module = unique("exits")
    source = GOOD_PLUGIN_SOURCE.format(layer=unique("l"))
    if when == "hook":
        source += "\n@na_toolkit.hookimpl\ndef na_register_moves(registry):\n    raise SystemExit(3)\n"
        expected = r"plugin quitter \(quitter-dist 1.0\): na_register_moves raised SystemExit: 3$"
    else:
        source = "import sys\nsys.exit(3)\n"
        expected = r"plugin quitter \(quitter-dist 1.0\): import failed: SystemExit: 3$"
    site.install("quitter-dist", "1.0", {"quitter": module}, {module: source})
    with pytest.raises(PluginError, match=expected) as info:
        load_toolkit()
    assert isinstance(info.value.__cause__, SystemExit)
    with pytest.warns(PluginWarning, match=expected):
        tk = load_toolkit(strict=False)
    assert tk.plugins["quitter"].registered == {} and "conv2d" in tk.layer_types


def test_a_lazy_component_raising_system_exit_is_a_plugin_error(site):
    module = unique("lazy_exits")
    (site.root / f"{module}.py").write_text("raise SystemExit(3)\n")
    site.monkeypatch.delitem(sys.modules, module, raising=False)
    p = plugin("lazy_quitter", na_register_predictors=add_lazy(quits=f"{module}:Predictor"))
    tk = load_toolkit(entry_points=False, extra_plugins=(p,))
    expected = rf"lazy_quitter: predictor 'quits' could not be imported from {module}:Predictor: SystemExit: 3"
    with pytest.raises(PluginError, match=expected):
        tk.predictors.get("quits")


def test_a_keyboard_interrupt_in_a_hook_still_interrupts():
    p = plugin("ctrl_c", na_register_layer_types=raise_(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        load_toolkit(strict=False, entry_points=False, extra_plugins=(p,))


def test_duplicate_component_name_names_both_plugins():
    p = plugin("impostor", na_register_layer_types=add_layer(ConvImpostor()))
    with pytest.raises(DuplicateComponentError) as info:
        load_toolkit(entry_points=False, extra_plugins=(p,))
    msg = str(info.value)
    assert msg.startswith("plugin impostor:")
    assert f"'conv2d' is already registered by plugin na_toolkit.builtin.layers (na-toolkit {V})" in msg
    # non-strict: the built-in keeps its name, the impostor is dropped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        tk = load_toolkit(strict=False, entry_points=False, extra_plugins=(p,))
    assert type(tk.layer_types.get("conv2d")).__module__ == "na_toolkit.builtin.layers"


def test_duplicate_between_two_third_party_plugins():
    a = plugin("first_party", na_register_layer_types=add_layer(TripleLayer()))
    b = plugin("second_party", na_register_layer_types=add_layer(TripleLayer()))
    with pytest.raises(DuplicateComponentError, match=r"plugin second_party: .*'test_triple'.* by plugin first_party"):
        load_toolkit(entry_points=False, extra_plugins=(a, b))


@pytest.mark.parametrize("attr", [attr for attr, _cls in REGISTRIES.values()])
def test_typed_registries_refuse_wrong_object_types(attr):
    tk = load_toolkit(entry_points=False)
    registry = getattr(tk, attr)
    registry.current_plugin = "sloppy"
    article = "an" if registry.kind in ("evaluator", "executor") else "a"
    with pytest.raises(PluginError, match=rf"plugin sloppy: registered .* as {article} {registry.kind}, expected"):
        registry.add(object(), name="x")
    assert "x" not in registry


def test_registering_under_another_name_than_the_component_gives_itself_is_refused(toolkit):
    # the same rule as add_lazy's: a component found by its own name (a move's record, a time estimate) must
    # be registered under it
    registry = toolkit.moves
    registry.current_plugin = "aliaser"
    with pytest.raises(PluginError) as info:
        registry.add(ReturnedMove(), name="alias")
    assert str(info.value) == (
        "plugin aliaser: move registered as 'alias' calls itself 'test_returned_move': register it under its own name"
    )
    assert "alias" not in registry and "test_returned_move" not in registry
    registry.add(ReturnedMove(), name="test_returned_move")  # its own name, spelt out: fine
    p = plugin("evaluator_alias", na_register_evaluators=lambda registry: registry.add(OneEvaluator, name="two"))
    with pytest.raises(PluginError, match=r"^plugin evaluator_alias: evaluator registered as 'two' calls itself 'one'"):
        load_toolkit(entry_points=False, extra_plugins=(p,))


def test_a_component_without_a_name_is_registered_under_the_name_given():
    registry: Registry[int] = Registry()
    registry.add(3, name="three")
    assert registry.get("three") == 3
    with pytest.raises(PluginError, match=r"^plugin <direct>: a component must have a non-empty string `name`"):
        registry.add(4)


def test_wrong_object_type_from_a_plugin_hook():
    # a class where an instance is expected: the message says which
    p = plugin("classy", na_register_layer_types=add_layer(TripleLayer))
    with pytest.raises(
        PluginError,
        match=r"plugin classy: registered .*TripleLayer.* expected an instance of LayerType: register an instance, "
        r"registry.add\(TripleLayer\(...\)\)$",
    ):
        load_toolkit(entry_points=False, extra_plugins=(p,))


def test_an_instance_where_a_class_is_expected_says_to_register_the_class():
    from na_toolkit.predictors.sklearn_predictors import FEATURE_PREDICTORS

    cls = FEATURE_PREDICTORS[0]
    p = plugin("instance_author", na_register_predictors=lambda registry: registry.add(cls()))
    with pytest.raises(
        PluginError,
        match=rf"expected a subclass of Predictor: register the class itself, registry.add\({cls.__name__}\)$",
    ):
        load_toolkit(entry_points=False, extra_plugins=(p,))


LAZY_PREDICTOR_SOURCE = """
import numpy as np
from na_toolkit.predictors.base import Predictor

class MeanPredictor(Predictor):
    name = "{name}"

    def fit(self, archs, y):
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, archs):
        return np.full(len(archs), self.mean_)

NOT_A_PREDICTOR = object()
"""


def add_lazy(**paths):
    def hook(registry):
        for name, path in paths.items():
            registry.add_lazy(name, path)

    return hook


def test_a_lazy_component_is_imported_on_first_use_and_checked_then(site):
    module = unique("lazy_mean")
    (site.root / f"{module}.py").write_text(LAZY_PREDICTOR_SOURCE.format(name="mean"))
    site.monkeypatch.delitem(sys.modules, module, raising=False)
    p = plugin(
        "lazy_author",
        na_register_predictors=add_lazy(
            mean=f"{module}:MeanPredictor",
            misnamed=f"{module}:MeanPredictor",
            wrong_type=f"{module}:NOT_A_PREDICTOR",
            missing=f"{unique('no_such_module')}:Thing",
        ),
    )
    tk = load_toolkit(entry_points=False, extra_plugins=(p,))
    registry = tk.predictors
    # registered and listed, attributed to its plugin, not imported
    assert {"mean", "misnamed", "wrong_type", "missing"} <= set(registry.names())
    assert tk.plugins["lazy_author"].registered["predictors"] == ["mean", "misnamed", "wrong_type", "missing"]
    assert registry.plugin_of("mean") == "lazy_author"
    assert module not in sys.modules and not registry.is_loaded("mean")
    cls = registry.get("mean")
    assert module in sys.modules and registry.is_loaded("mean") and registry.get("mean") is cls
    assert cls.name == "mean" and cls().fit([], [2.0, 4.0]).predict([None]).tolist() == [3.0]
    # each broken one fails when it is used, naming the plugin and the path; the others are not affected
    with pytest.raises(
        PluginError,
        match=rf"lazy_author: predictor registered as 'misnamed' at {module}:MeanPredictor calls itself 'mean'",
    ):
        registry.get("misnamed")
    with pytest.raises(
        PluginError, match=r"lazy_author: registered <object .*> as a predictor, expected a subclass of Predictor"
    ):
        registry.get("wrong_type")
    with pytest.raises(
        PluginError,
        match=r"lazy_author: predictor 'missing' could not be imported from no_such_module\w*:Thing: ModuleNotF",
    ):
        registry.get("missing")
    assert not registry.is_loaded("missing") and registry.get("mean") is cls
    # the options of the built-ins are still documented: the broken components are never imported for it
    assert options_markdown(tk) == options_markdown(load_toolkit(entry_points=False))
    assert not registry.is_loaded("missing")


@pytest.mark.parametrize("path", ["no_colon", "mod:", ":Attr", "a b:C", "mod:a.b", ""])
def test_a_lazy_path_that_is_not_module_colon_attribute_is_refused_when_registered(path):
    p = plugin("sloppy_lazy", na_register_predictors=add_lazy(mean=path))
    with pytest.raises(
        PluginError,
        match=r"plugin sloppy_lazy: registered predictor 'mean' lazily at .*: expected 'package.module:attribute'",
    ):
        load_toolkit(entry_points=False, extra_plugins=(p,))


def test_a_lazy_name_taken_by_another_plugin_is_refused_naming_both():
    p = plugin("late_lazy", na_register_predictors=add_lazy(gp="somewhere:GP"))
    with pytest.raises(
        DuplicateComponentError,
        match=r"late_lazy: predictor 'gp' is already registered by plugin na_toolkit.builtin.predictors",
    ):
        load_toolkit(entry_points=False, extra_plugins=(p,))


def test_commands_that_use_no_predictor_do_not_import_scikit_learn():
    # the built-in predictors are registered lazily: loading the toolkit and listing them imports no
    # scikit-learn (most of a command's start-up time when it does); using one does
    code = (
        "import sys; from na_toolkit.plugins import load_toolkit; tk = load_toolkit(entry_points=False); "
        "names = tk.predictors.names(); before = 'sklearn' in sys.modules; tk.predictors.get('gp'); "
        "print(len(names), before, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["9", "False", "True"]


def test_the_builtin_predictor_paths_name_every_predictor_class():
    from na_toolkit.builtin.predictors import BUILTIN_PREDICTORS
    from na_toolkit.predictors.fewshot import FewShotLatencyPredictor
    from na_toolkit.predictors.neural import NeuralPredictor
    from na_toolkit.predictors.sklearn_predictors import FEATURE_PREDICTORS

    tk = load_toolkit(entry_points=False)
    classes = {cls.name: cls for cls in (*FEATURE_PREDICTORS, NeuralPredictor, FewShotLatencyPredictor)}
    assert list(BUILTIN_PREDICTORS) == list(classes)
    assert {name: tk.predictors.get(name) for name in BUILTIN_PREDICTORS} == classes


def test_undecorated_hook_function_is_reported():
    p = types.ModuleType("forgot_marker")
    p.na_register_layer_types = add_layer(TripleLayer())  # no @na_toolkit.hookimpl
    with pytest.raises(
        PluginError, match=r"forgot_marker: .*na_register_layer_types is not decorated with @na_toolkit.hookimpl"
    ):
        load_toolkit(entry_points=False, extra_plugins=(p,))


def test_misspelled_hook_is_reported_with_the_close_match():
    p = plugin("typo", na_register_layer_type=add_layer(TripleLayer()))
    with pytest.raises(PluginError, match=r"typo: .*unknown hook 'na_register_layer_type'.*'na_register_layer_types'"):
        load_toolkit(entry_points=False, extra_plugins=(p,))


def test_a_renamed_hook_is_reported_with_its_new_name():
    p = plugin("old_name", na_register_operations=lambda registry: None)
    with pytest.raises(
        PluginError, match=r"old_name: .*'na_register_operations', which is now called 'na_register_moves'"
    ):
        load_toolkit(entry_points=False, extra_plugins=(p,))


def test_hookimpl_with_argument_not_in_spec_is_reported_on_one_line():
    p = plugin("bad_args", na_register_layer_types=lambda registry, toolkit: None)
    with pytest.raises(PluginError, match=r"bad_args: invalid plugin: .*toolkit") as info:
        load_toolkit(entry_points=False, extra_plugins=(p,))
    assert "\n" not in str(info.value)


# ---- entry points, allow and deny lists -----------------------------------------------------------------
def test_a_hook_argument_not_named_registry_says_how_to_define_the_hook(site):
    # through an entry point, pluggy refuses it while loading: that was reported as "import failed"
    module = unique("misnamed")
    source = "import na_toolkit\n\n@na_toolkit.hookimpl\ndef na_register_layer_types(reg):\n    pass\n"
    site.install("misnamed-dist", "1.0", {"misnamed": module}, {module: source})
    with pytest.raises(PluginError) as info:
        load_toolkit()
    assert str(info.value) == (
        "plugin misnamed (misnamed-dist 1.0): invalid plugin: na_register_layer_types(reg): a hook takes one "
        "argument, named `registry`; define it as def na_register_layer_types(registry)"
    )


def test_a_plugin_shadowed_by_a_folder_of_its_name_is_reported(site):
    # a checkout folder holding the package (no __init__.py at its top), first on sys.path as the current
    # directory is for `python -m na_toolkit`, imports as an empty namespace package: it registered nothing
    module = unique("shadowed")
    (site.root / module / module).mkdir(parents=True)
    (site.root / module / module / "__init__.py").write_text(GOOD_PLUGIN_SOURCE.format(layer=unique("halve")))
    site.install("shadowed-dist", "1.0", {"shadowed": module})
    with pytest.raises(
        PluginError,
        match=r"shadowed-dist 1.0\): invalid plugin: module '\w+' was imported as a "
        r"namespace package from .*; run from another directory",
    ):
        load_toolkit()


def test_entry_point_plugin_is_loaded_with_its_dist_and_version(site):
    module, layer = unique("goodplug"), unique("halve")
    site.install("good-dist", "2.5.1", {"good": module}, {module: GOOD_PLUGIN_SOURCE.format(layer=layer)})
    tk = load_toolkit()
    info = tk.plugins["good"]
    assert (info.dist, info.version, info.builtin, info.error) == ("good-dist", "2.5.1", False, None)
    assert info.registered == {"layer_types": [layer]}
    assert tk.layer_types.plugin_of(layer) == "good (good-dist 2.5.1)"


def test_entry_point_import_error_names_plugin_dist_and_version(site):
    site.install("broken-dist", "1.2.3", {"broken": "no_such_module_for_na_toolkit_tests"})
    with pytest.raises(PluginError) as info:
        load_toolkit()
    assert str(info.value) == (
        "plugin broken (broken-dist 1.2.3): import failed: ModuleNotFoundError: "
        "No module named 'no_such_module_for_na_toolkit_tests'"
    )
    with pytest.warns(PluginWarning, match="broken-dist 1.2.3"):
        tk = load_toolkit(strict=False)
    assert tk.plugins["broken"].error == str(info.value)
    assert "conv2d" in tk.layer_types


def test_module_raising_at_import_is_reported(site):
    module = unique("explodes")
    site.install("explosive", "0.1", {"explosive": module}, {module: "raise RuntimeError('no GPU here')\n"})
    with pytest.raises(
        PluginError, match=r"plugin explosive \(explosive 0.1\): import failed: RuntimeError: no GPU here"
    ):
        load_toolkit()


def test_two_distributions_claiming_one_plugin_name(site):
    m1, m2 = unique("one"), unique("two")
    site.install("dist-one", "1.0", {"same": m1}, {m1: GOOD_PLUGIN_SOURCE.format(layer=unique("l"))})
    site.install("dist-two", "1.0", {"same": m2}, {m2: GOOD_PLUGIN_SOURCE.format(layer=unique("l"))})
    with pytest.raises(
        PluginError, match=r"plugin same \(dist-.*\): a plugin named 'same' is already loaded from same \(dist-"
    ):
        load_toolkit()


def test_installed_plugin_passed_again_as_extra(site):
    module = unique("installed")
    site.install("inst-dist", "1.0", {"inst": module}, {module: GOOD_PLUGIN_SOURCE.format(layer=unique("l"))})
    imported = __import__(module)
    with pytest.raises(PluginError, match=rf"plugin {module}: the same module is already loaded as plugin 'inst'"):
        load_toolkit(extra_plugins=(imported,))
    assert load_toolkit(entry_points=False, extra_plugins=(imported,)).errors == []


def test_allow_list_limits_entry_point_plugins(site, monkeypatch):
    m1, m2 = unique("a"), unique("b")
    site.install("dist-a", "1.0", {"pa": m1}, {m1: GOOD_PLUGIN_SOURCE.format(layer=unique("la"))})
    site.install("dist-b", "1.0", {"pb": m2}, {m2: GOOD_PLUGIN_SOURCE.format(layer=unique("lb"))})
    assert {"pa", "pb"} <= set(load_toolkit().plugins)
    monkeypatch.setenv(ALLOW_ENV, "pb")
    names = set(load_toolkit().plugins)
    assert "pb" in names and "pa" not in names
    assert set(DEFAULT_PLUGINS) <= names  # built-ins are not subject to the allow list
    monkeypatch.setenv(ALLOW_ENV, "")
    assert set(load_toolkit().plugins) == set(DEFAULT_PLUGINS)


def test_deny_list_skips_entry_points_builtins_and_extras(site, monkeypatch):
    m1 = unique("a")
    site.install("dist-a", "1.0", {"pa": m1}, {m1: GOOD_PLUGIN_SOURCE.format(layer=unique("la"))})
    extra = plugin("extra_plugin", na_register_layer_types=add_layer(TripleLayer()))
    monkeypatch.setenv(DENY_ENV, "pa, na_toolkit.builtin.seeds ,extra_plugin")
    tk = load_toolkit(extra_plugins=(extra,))
    assert not {"pa", "na_toolkit.builtin.seeds", "extra_plugin"} & set(tk.plugins)
    assert len(tk.seeds) == 0 and "test_triple" not in tk.layer_types
    assert "conv2d" in tk.layer_types


def installed() -> str:
    """The entry-point plugin names installed here (this test's and any of the environment's), as listed."""
    return ", ".join(sorted({ep.name for ep in importlib.metadata.entry_points(group="na_toolkit")}))


def test_a_misspelt_name_in_the_deny_list_is_reported_with_the_close_match(site, monkeypatch):
    module = unique("myplug")
    site.install("myplug-dist", "1.0", {"myplug": module}, {module: GOOD_PLUGIN_SOURCE.format(layer=unique("l"))})
    monkeypatch.setenv(DENY_ENV, "myplgu")
    message = (
        "plugin myplgu: named in NA_TOOLKIT_DISABLE_PLUGINS: no plugin has this name, so nothing was disabled by "
        f"it. Did you mean 'myplug'? Installed plugins: {installed()} (`na-toolkit plugins` lists the built-ins too)"
    )
    tk = refused_then_warned(message)
    assert [str(e) for e in tk.errors] == [message]
    assert tk.plugins["myplug"].error is None  # what the misspelt name meant to disable is loaded: say so
    monkeypatch.setenv(DENY_ENV, "na_toolkit.builtin.predictor")
    with pytest.raises(PluginError, match=r"Did you mean 'na_toolkit.builtin.predictors'[,?]"):
        load_toolkit(entry_points=False)
    # every installed entry point is a known name, loaded or not; so are the extra plugins of this call
    extra = plugin("extra_plugin", na_register_layer_types=add_layer(TripleLayer()))
    monkeypatch.setenv(DENY_ENV, "myplug,extra_plugin")
    assert load_toolkit(entry_points=False, extra_plugins=(extra,)).errors == []


def test_a_misspelt_or_built_in_name_in_the_allow_list_is_reported(site, monkeypatch):
    module = unique("myplug")
    site.install("myplug-dist", "1.0", {"myplug": module}, {module: GOOD_PLUGIN_SOURCE.format(layer=unique("l"))})
    monkeypatch.setenv(ALLOW_ENV, "myplgu")
    with pytest.warns(PluginWarning) as caught:
        tk = load_toolkit(strict=False)
    assert [str(w.message) for w in caught] == [
        "plugin myplgu: named in NA_TOOLKIT_PLUGINS: no plugin has this name, so nothing was enabled by it. "
        f"Did you mean 'myplug'? Installed plugins: {installed()} (`na-toolkit plugins` lists the built-ins too)"
    ]
    assert "myplug" not in tk.plugins
    monkeypatch.setenv(ALLOW_ENV, "myplug,na_toolkit.builtin.layers")
    with pytest.raises(PluginError) as info:
        load_toolkit()
    assert str(info.value) == (
        "plugin na_toolkit.builtin.layers: named in NA_TOOLKIT_PLUGINS: a built-in plugin, always loaded "
        "(NA_TOOLKIT_PLUGINS selects entry-point plugins; NA_TOOLKIT_DISABLE_PLUGINS skips one)"
    )


def test_broken_entry_point_can_be_denied(site, monkeypatch):
    site.install("broken-dist", "1.2.3", {"broken": "no_such_module_for_na_toolkit_tests"})
    monkeypatch.setenv(DENY_ENV, "broken")
    assert load_toolkit().errors == []


# ---- the CLI ------------------------------------------------------------------------------------------
@pytest.fixture
def broken_site(tmp_path):
    """A folder with a good and a broken plugin distribution, for subprocess runs (PYTHONPATH)."""
    module, layer = unique("goodplug"), unique("halve")
    d = Distributions(tmp_path, pytest.MonkeyPatch())
    try:
        d.install("good-dist", "2.5.1", {"good": module}, {module: GOOD_PLUGIN_SOURCE.format(layer=layer)})
        d.install("broken-dist", "1.2.3", {"broken": "no_such_module_for_na_toolkit_tests"})
    finally:
        d.monkeypatch.undo()
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        ALLOW_ENV: "good,broken",
        DENY_ENV: None,
    }
    return env, layer


def test_cli_plugins_lists_versions_registrations_and_errors(run_cli, broken_site):
    env, layer = broken_site
    res = run_cli("plugins", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == (
        "na-toolkit: warning: plugin broken (broken-dist 1.2.3): import failed: ModuleNotFoundError: "
        "No module named 'no_such_module_for_na_toolkit_tests'"
    )
    assert f"na_toolkit.builtin.layers {V} (built-in)" in res.stdout
    assert f"good 2.5.1 (good-dist)\n    1 layer type: {layer}" in res.stdout
    assert f"na_toolkit.builtin.strategies {V} (built-in)\n    3 strategies: random, evolution," in res.stdout
    assert f"na_toolkit.builtin.evaluators {V} (built-in)\n    2 evaluators: torch, synthetic" in res.stdout
    assert "broken 1.2.3 (broken-dist)\n    FAILED: plugin broken (broken-dist 1.2.3): import failed" in res.stdout

    doc = run_cli("plugins", "--json", env=env).json()
    by_name = {p["name"]: p for p in doc["plugins"]}
    assert by_name["good"] == {
        "name": "good",
        "version": "2.5.1",
        "dist": "good-dist",
        "builtin": False,
        "registered": {"layer_types": [layer]},
        "error": None,
    }
    assert by_name["broken"]["error"].startswith("plugin broken (broken-dist 1.2.3): import failed")
    assert doc["errors"] == [by_name["broken"]["error"]]
    assert set(DEFAULT_PLUGINS) <= set(by_name)
    assert "plugins" in by_name["na_toolkit.builtin.commands"]["registered"]["commands"]


def test_cli_strict_plugins_exits_2_with_one_line(run_cli, broken_site):
    env, _layer = broken_site
    line = run_cli("--strict-plugins", "plugins", env=env).error_line()
    assert line.startswith("na-toolkit: error: plugin broken (broken-dist 1.2.3): import failed")


def test_cli_a_plugin_calling_sys_exit_is_a_warning_and_commands_keep_working(run_cli, tmp_path):
    module = unique("quits")
    d = Distributions(tmp_path, pytest.MonkeyPatch())
    source = "import na_toolkit\n\n@na_toolkit.hookimpl\ndef na_register_moves(registry):\n    raise SystemExit(3)\n"
    try:
        d.install("quitter-dist", "1.0", {"quitter": module}, {module: source})
    finally:
        d.monkeypatch.undo()
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    env |= {ALLOW_ENV: "quitter", DENY_ENV: None}
    message = "plugin quitter (quitter-dist 1.0): na_register_moves raised SystemExit: 3"
    res = run_cli("arch", "seeds", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == f"na-toolkit: warning: {message}"
    assert "simple-cnn" in res.stdout
    assert run_cli("--strict-plugins", "arch", "seeds", env=env).error_line() == f"na-toolkit: error: {message}"


def test_cli_a_misspelt_disabled_plugin_is_a_warning_or_with_strict_plugins_an_error(run_cli, broken_site):
    env, _layer = broken_site
    env = {**env, DENY_ENV: "brokn"}  # meant: broken
    res = run_cli("plugins", env=env)
    assert res.returncode == 0, res.stderr
    warned = res.stderr.splitlines()
    assert warned[0].startswith(
        "na-toolkit: warning: plugin brokn: named in NA_TOOLKIT_DISABLE_PLUGINS: no plugin has this name, so "
        "nothing was disabled by it. Did you mean 'broken'? Installed plugins: "
    )
    assert "plugin broken (broken-dist 1.2.3): import failed" in warned[1]
    line = run_cli("--strict-plugins", "plugins", env=env).error_line()
    assert line.startswith("na-toolkit: error: plugin brokn: named in NA_TOOLKIT_DISABLE_PLUGINS")


def test_extra_plugins_not_given_as_a_tuple_of_plugins_are_named():
    """One module not in a tuple was "'module' object is not iterable"; a name was taken as a plugin that
    registers nothing, and a bare string as one plugin per letter."""
    module = plugin(unique("extra_one"), na_register_layer_types=add_layer(TripleLayer()))
    with pytest.raises(
        TypeError, match=r"^load_toolkit\(extra_plugins=\.\.\.\): a tuple of plugin modules or objects, "
    ):
        load_toolkit(entry_points=False, extra_plugins=module)
    for given in ("my_plugin", ("my_plugin",)):
        with pytest.raises(TypeError, match="'my_plugin' is a name, not a plugin: import the module and pass it"):
            load_toolkit(entry_points=False, extra_plugins=given)
    with pytest.raises(TypeError, match=r"^extend_toolkit\(toolkit, \*plugins\): 'my_plugin' is a name"):
        extend_toolkit(load_toolkit(entry_points=False), "my_plugin")
    assert "test_triple" in load_toolkit(entry_points=False, extra_plugins=[module]).layer_types  # a list is fine
