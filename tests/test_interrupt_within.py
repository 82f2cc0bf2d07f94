"""A Ctrl-C that some code turned into an error of its own (pybind11, initialising a C extension during an
import, raises `ImportError: initialization failed` from the KeyboardInterrupt; scipy's and torch's modules
do) is still the user stopping the command: where the toolkit reports a plugin's or a component's failure, it
raises the interrupt instead. Found by Ctrl-C at random moments of a real search: one in 25 ended with exit
2 and `predictor 'ensemble' could not be imported ...: ImportError: initialization failed`."""

from __future__ import annotations

import sys

import pytest

import na_toolkit
from na_toolkit.cli.main import Terminated
from na_toolkit.errors import ComponentError, ConfigError, PluginError, blame, interrupt_within, raise_interrupt
from na_toolkit.plugins import load_toolkit

PYBIND11_LIKE = """
try:
    raise KeyboardInterrupt
except KeyboardInterrupt as exc:
    raise ImportError("initialization failed") from exc
"""


def _wrapped(interrupt: KeyboardInterrupt) -> ImportError:
    try:
        try:
            raise interrupt
        except KeyboardInterrupt as exc:
            raise ImportError("initialization failed") from exc
    except ImportError as err:
        return err


def test_the_interrupt_is_found_through_causes_and_contexts_and_only_there():
    err = _wrapped(KeyboardInterrupt())
    assert isinstance(interrupt_within(err), KeyboardInterrupt)
    try:  # raised while handling it (a clean-up's own error): the context
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise OSError("disk full")  # noqa: B904 (the implicit context is the point)
    except OSError as exc:
        assert isinstance(interrupt_within(exc), KeyboardInterrupt)
        suppressed = ConfigError("bad value")
        suppressed.__context__, suppressed.__suppress_context__ = exc.__context__, True
        assert interrupt_within(suppressed) is None  # `raise ... from None` said it is not the cause
    assert interrupt_within(ValueError("plain")) is None
    looped = ValueError("a")
    looped.__context__ = ValueError("b")
    looped.__context__.__context__ = looped
    assert interrupt_within(looped) is None  # a cycle ends the walk


def test_raise_interrupt_keeps_its_kind_a_sigterm_stays_a_sigterm():
    with pytest.raises(Terminated) as raised:
        raise_interrupt(_wrapped(Terminated()))
    assert raised.value.said_as == ("terminated", 143) and isinstance(raised.value.__cause__, ImportError)
    raise_interrupt(ValueError("no interrupt in it"))  # nothing to raise


def test_a_lazy_component_whose_import_was_interrupted_raises_the_interrupt(tmp_path, monkeypatch):
    (tmp_path / "ctrlc_during_import.py").write_text(PYBIND11_LIKE)
    (tmp_path / "fails_on_import.py").write_text("raise ImportError('no such library')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    toolkit = load_toolkit(entry_points=False)
    toolkit.predictors.add_lazy("interrupted", "ctrlc_during_import:Predictor")
    toolkit.predictors.add_lazy("broken", "fails_on_import:Predictor")
    with pytest.raises(KeyboardInterrupt):
        toolkit.predictors.get("interrupted")
    with pytest.raises(PluginError, match="could not be imported from fails_on_import:Predictor"):
        toolkit.predictors.get("broken")  # a real import failure is still the plugin's
    sys.modules.pop("ctrlc_during_import", None)


def test_a_plugin_hook_interrupted_so_stops_loading_instead_of_dropping_the_plugin():
    class Plugin:
        @na_toolkit.hookimpl
        def na_register_predictors(self, registry):
            exec(compile(PYBIND11_LIKE, "<pybind11-like>", "exec"), {})

    with pytest.raises(KeyboardInterrupt):  # not a warning and a toolkit without the plugin (strict=False)
        load_toolkit(strict=False, entry_points=False, extra_plugins=(Plugin(),))


def test_blame_raises_the_interrupt_not_a_component_error():
    with pytest.raises(KeyboardInterrupt):
        with blame("time model 'x'", "x (x-dist 1.0)", "estimating"):
            exec(compile(PYBIND11_LIKE, "<pybind11-like>", "exec"), {})
    with pytest.raises(ComponentError, match="failed estimating: ValueError: nan"):
        with blame("time model 'x'", "x (x-dist 1.0)", "estimating"):
            raise ValueError("nan")
