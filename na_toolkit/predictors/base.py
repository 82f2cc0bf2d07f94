"""The predictor protocol (scikit-learn conventions): `__init__` stores keyword parameters only, learned
state ends in `_`, `fit(archs, y)` returns self, `predict(archs)` returns an array, `predict_with_std`
adds an uncertainty where the model has one.

Inputs are sequences of `Architecture` objects; `datasets=` optionally conditions on dataset descriptors
(one for all architectures or one each). `condition_on(descriptor)` gives a predictor the dataset it works on
(a search's): `fit`, `predict` and `domain_warnings` use it wherever `datasets` is not given. Fit on that
dataset alone, the descriptor is recorded (not a feature: one constant column teaches a model nothing);
fit with per-row descriptors of several datasets, they are features and the predictor can predict for
another dataset. Either way the fitted predictor records the datasets it was trained on (`trained_datasets_`,
saved in its file) and `domain_warnings` names a dataset it never saw.

Fit on several datasets, each dataset's targets are standardised on their own (mean 0, std 1 per dataset)
before the model sees them, and predictions are brought back with the predicted dataset's mean and std
(`_to_target_scale`): accuracies of one network differ more between datasets (CIFAR-10 ~90%,
ImageNet16-120 ~40%) than between networks, so without it a model spends its splits on telling datasets
apart and shares nothing across them (the per-task standardisation of multi-task performance models, e.g.
Perrone et al., "Scalable hyperparameter transfer learning", NeurIPS 2018). For a dataset none of the training
rows came from, the mean of the training datasets' means and stds is used: the ranking transfers, the level is
a guess (and `domain_warnings` says so). `Predictor` is a scikit-learn `BaseEstimator` and
`RegressorMixin`: `get_params` / `set_params` / `clone` / `score` (R²) and the estimator tags come from
scikit-learn, so importing this module imports `sklearn.base` (about 1.5 s with scipy.stats and pandas, once
per process; the built-in predictors are therefore registered lazily, `builtin/predictors.py`).
Model code imports the heavier scikit-learn modules inside `fit`.

`for_target(Target(...))` gives a predictor its target's unit and valid range (`targets.py`): `predict`,
`predict_with_std` and `predict_with_notes` (which says what it clipped) clip every prediction into that range.

Persistence never uses pickle: `to_json()` holds the schema version, the library versions, the
hyperparameters and the model state as plain data (feature-based models keep their training data and are
refit on load; the neural one keeps its weights as arrays).
"""

from __future__ import annotations

import inspect
import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np
from pydantic import Field
from sklearn.base import BaseEstimator, RegressorMixin

from ..errors import DataError, NotFittedError
from ..files import parse_json, read_text
from ..machine import library_version
from ..validation import Document, validate
from .targets import Target

if TYPE_CHECKING:  # pragma: no cover
    from ..toolkit import Toolkit

#: version of the saved-predictor document; bump on incompatible change
PREDICTOR_SCHEMA_VERSION = 1
#: the largest target magnitude a fit takes: squares of ~1e154 overflow float64, and the models square
#: (variances, least squares, kernels) what they are given
MAX_TARGET = 1e100


class PredictorFile(Document):
    """A saved predictor (`Predictor.to_json`, `na-toolkit predict fit --out`): what the model is and its
    learned state as data (no pickle). `target` and `source` are what `predict fit` learned and from where."""

    schema_version: Literal[1]
    kind: Literal["na_toolkit.predictor"]
    predictor: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00]+$")
    class_: str = Field(default="", alias="class", max_length=300)
    params: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, Any] = Field(default_factory=dict)
    n_train: int = Field(default=0, ge=0, strict=True)
    state: dict[str, Any]
    target: str | None = None
    source: dict[str, Any] | None = None
    #: the distinct dataset descriptors of the training rows (`features.dataset_records`); absent: none given
    datasets: list[dict[str, Any]] | None = None
    #: the target's unit and valid range [low, high] (null: unbounded), where a definition gave them
    #: (`targets.Target`); absent in files written before they were recorded
    unit: str | None = Field(default=None, max_length=100)
    valid_range: list[float | None] | None = Field(default=None, min_length=2, max_length=2)


_VERSIONED_LIBRARIES = ("na-toolkit", "numpy", "scikit-learn", "scipy", "torch")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in _VERSIONED_LIBRARIES:
        version = library_version(dist)
        if version is not None:
            out[dist] = version
    return out


class Predictor(RegressorMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type hints
    """Base class of every registered predictor (registered as a class; the toolkit instantiates it with
    keyword parameters). Subclasses implement `_fit(archs, y, datasets)`, `_predict(archs, datasets)` and,
    for persistence, `_state_to_json()` / `_state_from_json(state)`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: True when `predict_with_std` gives a meaningful uncertainty
    has_uncertainty: ClassVar[bool] = False
    #: fewest training samples `fit` accepts
    min_samples: ClassVar[int] = 3
    #: True when `fit` also takes a 2-D target [samples, outputs] (several metrics at once, e.g. accuracy
    #: and training time); `predict` then returns [n, outputs]
    multi_output: ClassVar[bool] = False

    @classmethod
    def _get_param_names(cls) -> list[str]:
        # stricter than scikit-learn, which skips a **kwargs silently: `clone` and `to_json` would then
        # lose those parameters, so a predictor must name them (a TypeError the search reports as config)
        if cls.__init__ is not object.__init__:
            for p in inspect.signature(cls.__init__).parameters.values():
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    raise TypeError(f"{cls.__name__}.__init__ must list its parameters explicitly (no *args/**kwargs)")
        names: list[str] = super()._get_param_names()
        return names

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # the inputs are sequences of Architecture objects, not arrays: scikit-learn's array-fed estimator
        # checks cannot apply here (they run on `FeatureRegressor`, the feature predictors' array half)
        tags.input_tags.two_d_array = False
        return tags

    #: the dataset this predictor works on (`condition_on`): used where `datasets` is not given. Not a
    #: constructor parameter (every predictor would have to take it); `clone` carries it over.
    dataset_descriptor: Any = None

    def condition_on(self, descriptor: Any) -> Self:
        """Make `descriptor` (a `DatasetDescriptor`, or a 1-D vector; None: none) the dataset of every
        `fit` / `predict` / `domain_warnings` call that gives no `datasets`; returns self."""
        if descriptor is not None:
            from .descriptor_features import dataset_vector

            dataset_vector(descriptor)  # a DataError now for something that is no descriptor
        self.dataset_descriptor = descriptor
        return self

    #: what the predictor learns (`for_target`): its unit, and the valid range every prediction is clipped
    #: into (None: nothing defines it, predictions are left as they come). Not a constructor parameter either.
    target: Target | None = None

    def for_target(self, target: Target | None) -> Self:
        """Make `target` (a `targets.Target`; None: none) what this predictor predicts: `predict`,
        `predict_with_std` and `predict_with_notes` clip into its valid range; saved with the predictor."""
        if target is not None and not isinstance(target, Target):
            raise DataError(f"for_target takes a targets.Target or None, got {type(target).__name__}")
        self.target = target
        return self

    def __sklearn_clone__(self) -> Any:
        twin = super().__sklearn_clone__()
        if self.dataset_descriptor is not None:
            twin.dataset_descriptor = self.dataset_descriptor
        if self.target is not None:
            twin.target = self.target
        return twin

    def _datasets(self, datasets: Any) -> Any:
        """The descriptors of a call: those given, else the one the predictor is conditioned on."""
        return datasets if datasets is not None else self.dataset_descriptor

    # ---- the protocol ---------------------------------------------------------------------------------
    def fit(self, archs: Any, y: Any, datasets: Any = None) -> Predictor:
        from .descriptor_features import dataset_records, standardise_per_dataset

        archs, y = self._check_fit_input(archs, y)
        # the conditioned dataset alone is recorded, not a feature (the module docstring)
        records = dataset_records(self._datasets(datasets), len(archs))
        if datasets is not None and len(records) > 1:
            y = standardise_per_dataset(records, datasets, y)
        else:  # one dataset, given here or by `condition_on`: recorded alone, the same model either way
            datasets = None
        self._fit(archs, y, datasets)
        self.n_train_ = len(archs)
        self.trained_datasets_ = records
        return self

    def predict(self, archs: Any, datasets: Any = None) -> np.ndarray:
        """Predictions in the target's units, clipped into its valid range (`for_target`)."""
        self._check_fitted()
        archs = self._check_archs(archs)
        if not archs:
            return np.zeros(0)
        return self._clip(self._raw_predict(archs, self._datasets(datasets)))[0]

    def _raw_predict(self, archs: list, datasets: Any) -> np.ndarray:
        out = np.asarray(self._predict(archs, datasets), dtype=np.float64)
        if out.ndim != 2 and out.size != len(archs):  # a ValueError: the search's blame names the plugin
            raise ValueError(
                f"predictor {self.name!r}: _predict gave {out.size} value(s) for {len(archs)} network(s); it must "
                "give one per network, in their order"
            )
        out = out if out.ndim == 2 else out.reshape(len(archs))
        return self._to_target_scale(out, None, datasets)[0]

    def _clip(self, mean: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
        """`mean` clipped into the target's valid range, and per row what was clipped (`Target.clip`)."""
        if self.target is None:
            return mean, [[] for _ in range(len(mean))]
        return self.target.clip(mean)

    def _to_target_scale(
        self, mean: np.ndarray, std: np.ndarray | None, datasets: Any
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The model's output in the target's units: unchanged, unless the predictor was fit on several datasets
        (module docstring), then each row scaled back with its dataset's target mean and std."""
        records = getattr(self, "trained_datasets_", None)
        if not records or "target_mean" not in records[0]:
            return mean, std
        from .descriptor_features import target_scales

        offset, factor = target_scales(records, datasets, len(mean))
        if np.ndim(mean) == 1:
            offset, factor = offset[:, 0], factor[:, 0]
        return mean * factor + offset, None if std is None else std * factor

    def predict_with_std(self, archs: Any, datasets: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation; predictors without an uncertainty return zeros for the std. The mean
        is clipped into the target's valid range (`for_target`)."""
        mean, std = self._raw_predict_with_std(archs, datasets)
        return self._clip(mean)[0], std

    def predict_with_notes(self, archs: Any, datasets: Any = None) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """`predict_with_std`, and per architecture what was done to its prediction: a value outside the
        target's valid range is clipped into it, and the note gives the raw value (empty: nothing done). What
        the search scores with and `na-toolkit predict` prints: it clips a plugin's own `predict_with_std` too."""
        if type(self).predict_with_std is not Predictor.predict_with_std:  # a plugin's (docs/plugin_hooks.md)
            mean, std = _call(self.predict_with_std, archs, self._datasets(datasets))
        else:
            mean, std = self._raw_predict_with_std(archs, datasets)
        mean, notes = self._clip(np.asarray(mean, dtype=np.float64))
        return mean, np.asarray(std, dtype=np.float64), notes

    def _raw_predict_with_std(self, archs: Any, datasets: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean (unclipped) and std in the target's units: what subclasses with an uncertainty override."""
        datasets = self._datasets(datasets)
        if type(self).predict is not Predictor.predict:
            # a plugin's predictor may define predict(archs) only (see docs/plugin_hooks.md)
            mean = np.asarray(_call(self.predict, archs, datasets), dtype=np.float64)
        else:
            self._check_fitted()
            archs = self._check_archs(archs)
            mean = self._raw_predict(archs, datasets) if archs else np.zeros(0)
        return mean, np.zeros_like(mean)

    def domain_warnings(self, archs: Any, datasets: Any = None) -> list[list[str]]:
        """Per architecture, why predicting it is an extrapolation (empty: inside what the predictor was trained
        on; NotFittedError before `fit`). Feature-based predictors compare its features with their training
        networks' (`features.domain_warnings`); one without features says nothing about the architecture. A dataset
        descriptor (given, or conditioned) no training row had is named too, for every architecture."""
        from .descriptor_features import dataset_domain_warnings
        from .features import domain_warnings

        self._check_fitted()
        archs = self._check_archs(archs)
        features = getattr(self, "features_", None)
        # the training matrix, or only its per-feature min and max rows (`feature_range_`: a predictor that
        # keeps no training matrix, the neural one)
        training = getattr(self, "X_train_", None)
        training = getattr(self, "feature_range_", None) if training is None else training
        out = [[] for _ in archs] if features is None else domain_warnings(features, archs, training)
        datasets = self._datasets(datasets)
        records = getattr(self, "trained_datasets_", None)
        if datasets is not None and records:
            per_row = _per_row(datasets, len(archs))
            for reasons, dataset in zip(out, per_row):
                reasons[:0] = dataset_domain_warnings(records, dataset)
        return out

    def score(self, archs: Any, y: Any, datasets: Any = None, sample_weight: Any = None) -> float:
        """R² of the predictions (scikit-learn's `r2_score`), the dataset descriptors passed on to `predict`."""
        from sklearn.metrics import r2_score

        archs, y = self._check_fit_input(archs, y, fitting=False)
        datasets = self._datasets(datasets)
        pred = np.asarray(_call(self.predict, archs, datasets), dtype=np.float64)
        return float(r2_score(y, pred, sample_weight=sample_weight))

    def _fit(self, archs: list, y: np.ndarray, datasets: Any) -> None:
        raise NotImplementedError

    def _predict(self, archs: list, datasets: Any) -> np.ndarray:
        raise NotImplementedError

    # ---- checks ---------------------------------------------------------------------------------------
    def is_fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("__") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(f"predictor {self.name!r} is not fitted yet: call fit(archs, y) first")

    def _check_archs(self, archs: Any) -> list:
        from .features import check_architectures

        return check_architectures(archs)

    def _check_fit_input(self, archs: Any, y: Any, fitting: bool = True) -> tuple[list, np.ndarray]:
        archs = self._check_archs(archs)
        if isinstance(y, np.ndarray) and y.dtype.kind in "USb":  # as in a list, below
            raise DataError(f"targets must be numbers, got an array of {y.dtype} (e.g. {y.ravel()[:1].tolist()})")
        if isinstance(y, (list, tuple)) or (isinstance(y, np.ndarray) and y.dtype.kind == "O"):
            # numpy would read true as 1.0 and "0.5" as 0.5: a typo, not a target
            odd = next((v for v in np.ravel(np.asarray(y, dtype=object)) if isinstance(v, (bool, str, bytes))), None)
            if odd is not None:
                raise DataError(f"targets must be numbers, got {odd!r}")
        try:
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("targets must be numbers") from None
        if y.ndim != 1 and not (self.multi_output and y.ndim == 2 and y.shape[1] >= 1):
            want = "a 1-D array or a 2-D array [samples, outputs]" if self.multi_output else "a 1-D array"
            raise DataError(f"targets must be {want}, got shape {y.shape}")
        if len(y) != len(archs):
            raise DataError(f"got {len(archs)} architectures but {len(y)} targets")
        if not np.all(np.isfinite(y)):
            raise DataError("targets contain NaN or infinite values")
        if y.size and (largest := float(np.max(np.abs(y)))) > MAX_TARGET:
            raise DataError(
                f"targets reach {largest:.3g}, beyond {MAX_TARGET:.0e}: a model's sums of squares overflow "
                "and its predictions would be NaN; give them in a larger unit"
            )
        if fitting and len(archs) < self.min_samples:
            raise DataError(
                f"predictor {self.name!r} needs at least {self.min_samples} samples to fit, got {len(archs)}"
            )
        return archs, y

    # ---- persistence (no pickle) ----------------------------------------------------------------------
    def _state_to_json(self) -> dict[str, Any]:
        raise NotImplementedError(f"predictor {self.name!r} cannot be saved")

    def _state_from_json(self, state: dict[str, Any]) -> None:
        raise NotImplementedError(f"predictor {self.name!r} cannot be loaded")

    def to_json(self) -> dict[str, Any]:
        self._check_fitted()
        if _unseeded(self.get_params()):
            raise DataError(
                f"predictor {self.name!r} has random_state none: loading refits it, so saved unseeded it would "
                "predict differently on every load; give random_state an integer and fit again"
            )
        return {
            "schema_version": PREDICTOR_SCHEMA_VERSION,
            "kind": "na_toolkit.predictor",
            "predictor": self.name,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "params": _jsonable(self.get_params()),
            "versions": library_versions(),
            "n_train": int(getattr(self, "n_train_", 0)),
            "state": self._state_to_json(),
            "datasets": list(getattr(self, "trained_datasets_", [])),
            **({} if self.target is None else {"target": self.target.name, **self.target.to_json()}),
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json()))

    @classmethod
    def from_json(cls, doc: Any, toolkit: Toolkit | None = None) -> Predictor:
        """Rebuild a saved predictor. Called on the base class, it finds the class by the saved name in
        `toolkit.predictors` (so `toolkit` is required there); on a subclass, that class must match."""
        if not isinstance(doc, dict) or doc.get("kind") != "na_toolkit.predictor":
            hint = ""
            if isinstance(doc, dict) and "nodes" in doc:  # an architecture given where a model is asked for
                hint = ": it is an architecture (predict it with `na-toolkit predict ARCH.json --model MODEL.json`)"
            raise DataError(
                f"not a saved na_toolkit predictor (expected a JSON object with kind 'na_toolkit.predictor'){hint}"
            )
        version = doc.get("schema_version")
        if version != PREDICTOR_SCHEMA_VERSION or type(version) is not int:
            raise DataError(
                f"saved predictor has schema version {version!r}, this na_toolkit reads "
                f"{PREDICTOR_SCHEMA_VERSION}; refit it with this version"
            )
        file = validate(PredictorFile, doc, "saved predictor", error=DataError)
        name = file.predictor
        klass: type[Predictor]
        if cls is Predictor or not cls.name:
            if toolkit is None:
                raise TypeError(
                    "Predictor.from_json / Predictor.load on the base class need the toolkit whose predictor "
                    "registry names the saved predictor: Predictor.load(path, toolkit)"
                )
            klass = toolkit.predictors.get(str(name))
        else:
            if name != cls.name:
                raise DataError(f"saved predictor is {name!r}, not {cls.name!r}")
            klass = cls
        options = getattr(klass, "Options", None)
        if options is not None:  # the saved parameters get the same checks as a config's (types, ranges)
            validate(options, file.params, f"saved predictor {name!r}: params", error=DataError)
        if _unseeded(file.params):
            raise DataError(
                f"saved predictor {name!r} was fit unseeded (random_state null): loading refits it, so it would "
                "predict differently every time; fit it again (predict fit seeds it) or with random_state set"
            )
        try:
            model = klass(**file.params)
        except TypeError as exc:
            raise DataError(f"saved predictor {name!r} has parameters this version does not take: {exc}") from None
        try:
            model._state_from_json(file.state)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"saved predictor {name!r} has a corrupt state: {type(exc).__name__}: {exc}") from None
        model.n_train_ = file.n_train
        if file.target is not None and file.unit is not None and file.valid_range is not None:
            model.target = Target.from_json(file.target, file.unit, file.valid_range)
        if file.datasets is not None:
            from .descriptor_features import check_dataset_records

            model.trained_datasets_ = check_dataset_records(file.datasets)
        return model

    @classmethod
    def load(cls, path: str | Path, toolkit: Toolkit | None = None) -> Predictor:
        """`from_json` of the file at `path` (the toolkit is needed when called on the base class)."""
        return cls.from_document(cls.read_document(path), path, toolkit)

    @classmethod
    def from_document(cls, doc: Any, path: str | Path, toolkit: Toolkit | None = None) -> Predictor:
        """`from_json` of `doc`, read from the file at `path`: a DataError names the file."""
        try:
            predictor = cls.from_json(doc, toolkit=toolkit)
        except DataError as exc:  # named once: the file, unless the message names it already
            raise (exc if str(path) in str(exc) else DataError(f"saved predictor {str(path)!r}: {exc}")) from None
        from .saved_state import warn_other_versions  # (it imports this module)

        warn_other_versions(doc, path)  # a refit on load under another scikit-learn may predict otherwise
        return predictor

    @staticmethod
    def read_document(path: str | Path) -> Any:  # the JSON of a saved predictor file (from_json checks it)
        return parse_json(read_text(path, "saved predictor", DataError), f"saved predictor {str(path)!r}", DataError)


def _call(method: Any, archs: Any, datasets: Any) -> Any:
    """`method(archs, datasets)`, or `method(archs)` when there are no descriptors or `method` takes the
    architectures alone: a plugin's `predict(archs)` / `predict_with_std(archs)` (docs/plugin_hooks.md) is
    called as it is written when the search has conditioned the predictor on its dataset, too."""
    return method(archs) if datasets is None or not _takes_datasets(method) else method(archs, datasets)


def _takes_datasets(method: Any) -> bool:
    """Does the bound `method` take a second positional argument (the descriptors)?"""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # no readable signature: pass them, as before
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def _per_row(datasets: Any, n: int) -> list[Any]:
    """One descriptor per row: the one given for all (a descriptor or a bare vector), or the list given."""
    if hasattr(datasets, "to_vector"):
        return [datasets] * n
    items = list(datasets)
    if len(items) and np.isscalar(items[0]):
        return [datasets] * n
    return items


def _unseeded(params: dict[str, Any]) -> bool:
    """Whether a predictor's parameters leave its seed to chance (scikit-learn's random_state=None)."""
    return "random_state" in params and params["random_state"] is None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """An array as JSON: dtype, shape and the values as a flat list (exact for float64 through repr)."""
    a = np.asarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.ravel().tolist()}


def decode_array(doc: dict[str, Any]) -> np.ndarray:
    try:
        return np.asarray(doc["data"], dtype=np.dtype(doc["dtype"])).reshape(doc["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"corrupt array in saved predictor: {str(exc)[:200]}") from None
