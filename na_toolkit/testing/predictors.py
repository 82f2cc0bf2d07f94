"""`check_predictor`: the predictor contract (docs/plugin_hooks.md, `na_register_predictors`;
docs/predictors.md) as one call: scikit-learn's conventions on architectures, and persistence without pickle.

`__init__` stores its keyword parameters and nothing else; `get_params` / `set_params` round trip, an unknown
parameter is a ValueError, `clone` gives an equal unfitted copy; `predict` before `fit` raises
NotFittedError; `fit` returns self, leaves the parameters alone and learns attributes ending in `_`;
`predict` gives one finite value per architecture (none for none), changes after a fit on other targets,
is independent of the order and batching of the architectures, and the same after refitting a clone;
`predict_with_std` gives the same mean and a non-negative std (positive somewhere when `has_uncertainty`);
a mismatched target is a DataError; `save` writes JSON that `load_predictor` turns back into the same predictions.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, NotFittedError
from ..ir.architecture import Architecture
from ..ir.builder import ArchitectureBuilder
from ..predictors.base import PREDICTOR_SCHEMA_VERSION, Predictor
from ._common import expect, fail, resolve, toolkit_or_default

if TYPE_CHECKING:  # pragma: no cover
    from ..ir.layers import LayerTypeRegistry
    from ..toolkit import Toolkit


@dataclass(frozen=True)
class PredictorResult:
    """What `check_predictor` found (every check passed)."""

    name: str
    predictions: np.ndarray
    #: R² on the training architectures
    train_r2: float


def example_data(layer_types: LayerTypeRegistry) -> tuple[list[Architecture], np.ndarray]:
    """24 small CNNs (width x depth x kernel) and a target that depends on their size, for a check's fit."""
    archs = []
    for width in (4, 8, 16, 32):
        for depth in (1, 2, 3):
            for kernel in (1, 3):
                b = ArchitectureBuilder((1, 8, 8), name=f"cnn-{width}-{depth}-{kernel}", layer_types=layer_types)
                x = b.input
                for _ in range(depth):
                    x = b.layer("relu", b.layer("batchnorm2d", b.layer("conv2d", x, filters=width, kernel=kernel)))
                b.layer("linear", b.layer("flatten", b.layer("global_avg_pool", x)), units=10)
                archs.append(b.build())
    y = np.array([np.log10(a.params) + 0.1 * a.cost.macs / 1e6 for a in archs])
    return archs, y


def check_predictor(
    predictor: type[Predictor] | str,
    toolkit: Toolkit | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    data: tuple[Sequence[Architecture], Any] | None = None,
    rtol: float = 1e-5,
) -> PredictorResult:
    """Check a predictor class against its contract; raise AssertionError (`ConformanceError`) naming the
    predictor and what broke.

    predictor: the class, or its name in `toolkit.predictors`. params: its keyword parameters (small ones
    keep the check fast). data: `(architectures, targets)` to fit on (default: `example_data`, built with
    the toolkit's layer types). rtol: the tolerance of "the same predictions" (refit, reorder, reload)."""
    tk = toolkit_or_default(toolkit)
    name, found = resolve(tk.predictors, predictor, "predictor")
    label = f"predictor {name!r}"
    if not (isinstance(found, type) and issubclass(found, Predictor)):
        fail(label, f"{found!r} is not a Predictor subclass")
    cls: type[Predictor] = found
    expect(cls.name, label, f"{cls.__name__} has no name: set the class attribute `name` (what a config names it by)")
    expect(cls.name == name, label, f"registered as {name!r} but its class attribute `name` is {cls.name!r}")
    expect(cls.description, label, f"{cls.__name__} has no description: set the class attribute `description`")
    archs, y = data if data is not None else example_data(tk.layer_types)
    archs, y = list(archs), np.asarray(y, dtype=np.float64)
    kwargs = dict(params or {})
    try:
        p = cls(**kwargs)
    except TypeError as exc:
        fail(label, f"{cls.__name__}(**{kwargs}) raised {exc}")
    _check_params_protocol(p, label)
    try:
        p.predict(archs[:2])
    except NotFittedError:
        pass
    except Exception as exc:
        fail(
            label,
            f"predict before fit raised {type(exc).__name__}, not NotFittedError: {exc} (implement _fit / _predict "
            "and let the base class's fit / predict check, or call self._check_fitted() first in your predict)",
        )
    else:
        fail(label, "predict before fit returned (it must raise NotFittedError)")

    before = repr(p.get_params())
    expect(p.fit(archs, y) is p, label, "fit() does not return self")
    expect(repr(p.get_params()) == before, label, f"fit changed the parameters: {before} -> {p.get_params()!r}")
    learned = [k for k in vars(p) if k not in p.get_params()]
    expect(learned, label, "fit learned no attribute")
    unmarked = [k for k in learned if not k.endswith("_")]
    expect(not unmarked, label, f"learned attributes must end in '_' (scikit-learn's mark of fitted state): {unmarked}")
    try:
        pred = p.predict(archs)
    except Exception as exc:
        fail(label, f"predict of {len(archs)} networks after fit raised {type(exc).__name__}: {exc}")
    expect(
        pred.shape == (len(archs),),
        label,
        f"predict of {len(archs)} networks has shape {pred.shape}, expected ({len(archs)},): one value per network",
    )
    expect(np.all(np.isfinite(pred)), label, "predict gave NaN or infinite values")
    expect(np.asarray(p.predict([])).shape == (0,), label, "predict([]) is not an empty array")
    _close(
        np.asarray(clone_of(p).fit(archs, y).predict(archs)), pred, rtol, label, "a refitted clone predicts otherwise"
    )
    _check_learns_from_targets(cls, kwargs, archs, y, pred, rtol, label)
    order = np.random.default_rng(0).permutation(len(archs))
    _close(
        p.predict([archs[i] for i in order]),
        pred[order],
        rtol,
        label,
        "predictions depend on the order of the networks",
    )
    half = len(archs) // 2
    _close(
        np.concatenate([p.predict(archs[:half]), p.predict(archs[half:])]),
        pred,
        rtol,
        label,
        "predictions depend on the batch",
    )
    mean, std = _mean_and_std(p, archs[:5], label)
    expect(np.all(np.isfinite(std)), label, "predict_with_std gave a NaN or infinite std")
    expect(np.all(std >= 0), label, "predict_with_std gave a negative std")
    _close(mean, pred[:5], rtol, label, "predict_with_std's mean differs from predict")
    if cls.has_uncertainty:
        expect(np.any(std > 0), label, "has_uncertainty is True but the std is zero everywhere")
    try:
        cls(**kwargs).fit(archs, y[:-1])
    except DataError:
        pass
    else:
        fail(label, f"fit of {len(archs)} networks and {len(y) - 1} targets did not raise DataError")
    _check_persistence(p, name, tk, archs, pred, rtol, label)
    return PredictorResult(name, pred, float(p.score(archs, y)))


def _check_learns_from_targets(
    cls: type[Predictor],
    kwargs: dict[str, Any],
    archs: list[Architecture],
    y: np.ndarray,
    pred: np.ndarray,
    rtol: float,
    label: str,
) -> None:
    """Refit on the targets pulled halfway to their minimum (the same range, another spread): a predictor
    that learns from `y` predicts otherwise; one that ignores it (a constant, a formula of the network
    alone, a `_fit` that stores nothing it uses) predicts the same."""
    low = float(np.min(y))
    if not np.ptp(y) > 0:
        return
    halved = np.asarray(cls(**kwargs).fit(archs, low + 0.5 * (y - low)).predict(archs), dtype=np.float64)
    expect(
        not (halved.shape == pred.shape and np.allclose(halved, pred, rtol=rtol, atol=1e-6)),
        label,
        "predicts the same after a fit on other targets (y halved towards its minimum): its predictions must "
        "come from what fit learned of y (_fit stores it, _predict uses it)",
    )


def _mean_and_std(p: Predictor, archs: list[Architecture], label: str) -> tuple[np.ndarray, np.ndarray]:
    """`predict_with_std(archs)` as two float arrays of one value per network, or a failure saying what it
    returned instead."""
    out = p.predict_with_std(archs)
    if not (isinstance(out, tuple) and len(out) == 2):
        got = f"a tuple of {len(out)}" if isinstance(out, tuple) else with_type(out)
        fail(label, f"predict_with_std returned {got}; return (mean, std): two arrays of one value per network")
    arrays = []
    for what, value in zip(("mean", "std"), out):
        try:
            arrays.append(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            fail(label, f"predict_with_std's {what} is {with_type(value)}, not an array of floats")
    n = len(archs)
    got = [f"shape {a.shape}" if a.ndim else with_type(v) for a, v in zip(arrays, out)]
    expect(
        arrays[0].shape == arrays[1].shape == (n,),
        label,
        f"predict_with_std of {n} networks gave a mean of {got[0]} and a std of {got[1]}, expected arrays of "
        f"shape ({n},) (a constant std too: np.full(len(mean), value))",
    )
    mean, std = arrays
    return mean, std


def with_type(value: Any) -> str:
    """`value` named by its type, for a message about what a method returned."""
    return f"{type(value).__name__} {value!r}"[:80]


def clone_of(p: Predictor) -> Predictor:
    from sklearn.base import clone

    c: Predictor = clone(p)
    return c


def _close(got: np.ndarray, want: np.ndarray, rtol: float, label: str, what: str) -> None:
    if got.shape != want.shape:
        fail(label, f"{what} (shape {got.shape}, expected {want.shape})")
    diff = float(np.max(np.abs(got - want))) if got.size else 0.0
    expect(np.allclose(got, want, rtol=rtol, atol=1e-6), label, f"{what} (max difference {diff:.3g})")


def _check_params_protocol(p: Predictor, label: str) -> None:
    try:
        names = type(p)._get_param_names()
    except TypeError as exc:
        fail(label, str(exc))
    unstored = [n for n in names if n not in vars(p)]
    expect(
        not unstored,
        label,
        f"__init__ does not store its parameter(s) {unstored} as attributes of the same name "
        f"(self.{unstored[0] if unstored else ''} = ...): get_params, clone and save read them back by name",
    )
    params = p.get_params()
    expect(
        set(params) == set(names), label, f"get_params() keys {sorted(params)} != __init__ parameters {sorted(names)}"
    )
    expect(
        set(vars(p)) == set(params),
        label,
        f"__init__ must store its parameters and nothing else, found {sorted(set(vars(p)) - set(params))} "
        "(derive values in fit, as attributes ending in '_')",
    )
    c = clone_of(p)
    expect(type(c) is type(p) and c is not p, label, "clone() gives another class or the same object")
    expect(repr(c.get_params()) == repr(params), label, "clone() changes the parameters")
    if params:
        key = next(iter(params))
        expect(p.set_params(**{key: params[key]}) is p, label, "set_params() does not return self")
        expect(repr(p.get_params()) == repr(params), label, "set_params() of the same values changes the parameters")
    try:
        p.set_params(no_such_parameter_=1)
    except ValueError:
        pass
    else:
        fail(label, "set_params(no_such_parameter_=1) did not raise ValueError")
    expect(repr(p).startswith(type(p).__name__ + "("), label, f"repr {repr(p)[:60]!r} is not scikit-learn's")


def _check_persistence(
    p: Predictor, name: str, tk: Toolkit, archs: list[Architecture], pred: np.ndarray, rtol: float, label: str
) -> None:
    from ..predictors import load_predictor

    with tempfile.TemporaryDirectory(prefix="na-toolkit-check-") as folder:
        path = Path(folder) / f"{name}.json"
        try:
            p.save(path)
        except NotImplementedError as exc:
            fail(label, f"cannot be saved: {exc} (implement _state_to_json / _state_from_json)")
        except (TypeError, ValueError) as exc:  # json.dumps of what _state_to_json returned
            fail(
                label,
                f"save() failed: {exc} (_state_to_json must return plain JSON data: float(x) for a numpy scalar, "
                "a.tolist() or na_toolkit.predictors.base.encode_array(a) for an array)",
            )
        try:
            doc = json.loads(path.read_text())
        except (UnicodeDecodeError, ValueError):
            fail(label, "save() wrote something other than JSON (a saved predictor holds data, never a pickle)")
        expect(
            doc.get("schema_version") == PREDICTOR_SCHEMA_VERSION,
            label,
            f"saved schema_version {doc.get('schema_version')!r}",
        )
        expect(doc.get("predictor") == name, label, f"saved as predictor {doc.get('predictor')!r}")
        back = load_predictor(path, tk) if name in tk.predictors else type(p).load(path)
    expect(type(back) is type(p), label, f"loads back as {type(back).__name__}")
    _close(np.asarray(back.predict(archs[:5])), pred[:5], rtol, label, "the reloaded predictor predicts otherwise")
