"""The one validation layer: pydantic (v2) models for documents and component options.

Every document the toolkit reads (search config, hardware model, device profile, predictor file, run
records) and every registered component's options are pydantic models. Errors become one `ConfigError`
(or the error class the caller names) that carries the path of the bad value
(`devices.cpu.time_model.options.threads`) and keeps the "did you mean" hint for a misspelt key.

Parsing has no side effects: a model checks types and ranges; resolving names against the registry and
paths against the file system is a separate step done by the caller.
"""

from __future__ import annotations

import difflib
import inspect
import math
import typing
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .caches import register_cache
from .errors import ConfigError, NAToolkitError

M = TypeVar("M", bound=BaseModel)

#: an option's random seed: what numpy, torch and a search config's random_seed take (past it: a traceback)
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
#: an option's count of passes or steps (epochs): past a million it is a typo, as a search config's counts
Count = Annotated[int, Field(ge=1, le=1_000_000)]


class Document(BaseModel):
    """Base of every document model: unknown keys are refused (a typo is an error, not ignored)."""

    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)


class Options(BaseModel):
    """Base of a registered component's options (`Component.Options`): keyword parameters with types,
    defaults and value ranges; unknown keys are refused. `na-toolkit plugins --options NAME` prints it."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool, which Python counts as an int) that is finite: what a measured figure,
    an accuracy or a budget limit must be before its range is checked."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _path(loc: tuple[Any, ...], where: str) -> str:
    parts = [where] if where else []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts).replace(".[", "[") or "(top level)"


def format_validation_error(exc: ValidationError, model: type[BaseModel] | None = None, where: str = "") -> str:
    """One line naming the first bad value by its path, what is wrong, and (for an unknown key) the
    close matches among the keys the model knows."""
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic always reports at least one
        return f"{where or 'document'}: invalid"
    first = errors[0]
    if first.get("type") == "missing":
        # a required key missing beside an unknown one: usually the same key misspelt, and the unknown key's
        # message says so ("Did you mean ...") where "missing" would not
        first = next((e for e in errors if e.get("type") == "extra_forbidden"), first)
    loc = tuple(first.get("loc", ()))
    path = _path(loc, where)
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1]) if model is not None else []
        key = str(loc[-1]) if loc else ""
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
        # suggestions are written as the path is: a key path keeps its prefix (`strategy.name`); a `where`
        # that describes rather than locates ("predictor 'ensemble' params") is left out of them
        # (the prefix is the path of the key's table, not the text before the last dot: a key may hold dots)
        table = _path(loc[:-1], where if " " not in where else "") if loc[:-1] or " " not in where else ""
        prefix = table + "." if table and table != "(top level)" else ""
        hint = f" Did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""
        head, dot, rest = key.partition(".")
        if dot and head in known:  # a dotted path given as one key (`{"search.per_round": 1}`)
            hint = f" A key of table {prefix + head!r} goes inside that table: {{{head!r}: {{{rest!r}: ...}}}}."
        known_txt = f" Known keys: {', '.join(known)}." if known and not close else ""
        if model is not None and len(loc) == 1 and not model.model_fields:
            known_txt = " It takes no options: leave them out."
        msg = f"{path}: unknown key.{hint}{known_txt}"
    elif kind == "missing":
        msg = f"{path}: missing (required)"
    else:
        value = first.get("input")
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        # a validator's own message, without pydantic's "Value error, " before it
        text = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        msg = f"{path}: {text} (got {shown})"
        if isinstance(value, str) and value.lower() == "none":
            msg += "; none is written null on a command line (KEY=null)"
    more = len(errors) - 1
    return msg + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def did_you_mean(unknown: Iterable[str], known: Iterable[str]) -> str:
    """ " Did you mean 'statistic'?" for the known names close to the `unknown` ones ("" when none is close):
    what an option refused outside a pydantic model says, as `format_validation_error` does."""
    known = list(known)
    close = dict.fromkeys(c for key in unknown for c in difflib.get_close_matches(key, known, n=3, cutoff=0.5))
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names (aliases where set) of the sub-model at `loc`, as far as it can be followed."""
    current: Any = model
    for item in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None or item not in fields:
            return []
        annotation = fields[item].annotation
        current = _model_in(annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", {})
    return [f.alias or name for name, f in fields.items()]


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validate(
    model: type[M],
    data: Any,
    where: str = "",
    error: type[NAToolkitError] = ConfigError,
) -> M:
    """`model.model_validate(data)`, with a failure turned into one `error` (ConfigError by default)
    whose message names the path of the bad value, prefixed by `where`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(format_validation_error(exc, model, where)) from None


def validate_options(model: type[M], options: Mapping[str, Any] | None, where: str) -> M:
    """A component's options checked against its `Options` model (ConfigError naming `where.key`)."""
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"{where}: must be a table of options, got {type(options).__name__}")
    return validate(model, dict(options or {}), where)


# ---- component options: declared, or derived from the signature ----------------------------------------
class _DerivedOptions(Options):
    """Base of the models derived from a signature: annotations may name any class."""

    model_config = ConfigDict(arbitrary_types_allowed=True)


class _OpenDerivedOptions(_DerivedOptions):
    """A derived model of an `__init__` with `**kwargs`: keys it does not name are let through."""

    model_config = ConfigDict(extra="allow")


def declared_options(cls: type) -> type[Options] | None:
    """The `Options` model `cls` declares for its own `__init__`: None when it declares none, or when the one
    it inherits was written for a base class's `__init__` that `cls` replaces."""
    model = getattr(cls, "Options", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    mro = inspect.getmro(cls)
    init_owner = next((c for c in mro if "__init__" in vars(c)), object)
    options_owner = next(c for c in mro if "Options" in vars(c))
    return model if issubclass(options_owner, init_owner) else None  # type: ignore[return-value]


def options_model(cls: type) -> type[Options]:
    """The options model of a component class: its declared `Options`, else one derived from `__init__`."""
    return declared_options(cls) or derived_options_model(cls)


def takes_option(cls: type, key: str) -> bool:
    """Does the component class `cls` take the option `key` (its model names it, or its own `__init__` takes
    `**kwargs`)? How a config's `dataset` is decided to reach an evaluator or be refused."""
    model = options_model(cls)
    return key in model.model_fields or allows_unknown_options(model)


def _is_generic_init(owner: type) -> bool:
    """Is `owner.__init__` a generic `__init__(..., **options)` taking any keyword on behalf of its subclasses
    (`object`'s, or a component base class's that sets `_generic_options_init = True` in its own body: the
    toolkit's Strategy, Executor, Evaluator, TimeModel)? A component that inherits one declares no options of
    its own, so its derived model refuses every key the base does not name. A base class whose `__init__`
    takes leading positional dependencies that are not options (a strategy's `context`) says how many in
    `_option_leading_dependencies`."""
    return owner is object or bool(vars(owner).get("_generic_options_init", False))


@lru_cache(maxsize=256)
def derived_options_model(cls: type) -> type[Options]:
    """An `Options` model from the keyword parameters of `cls.__init__` (annotations, defaults). Required
    keyword-only parameters are left out: they are dependencies `from_toolkit` passes (a registry). A
    `**kwargs` lets unknown keys through only when it is the class's own: the generic `**options` of a base
    class (`_is_generic_init`) declares nothing, so a component without an `__init__` of its own takes no
    options (besides those its base names: a time model's `device`)."""
    init = cls.__init__  # type: ignore[misc]
    try:
        signature = inspect.signature(init)
    except (TypeError, ValueError):
        return _OpenDerivedOptions
    params = [p for p in signature.parameters.values() if p.name != "self"]
    params = params[getattr(cls, "_option_leading_dependencies", 0) :]
    init_owner = next((c for c in inspect.getmro(cls) if "__init__" in vars(c)), object)
    open_ended = not _is_generic_init(init_owner) and any(p.kind is p.VAR_KEYWORD for p in params)
    hints = _hints(init)
    fields: dict[str, Any] = {}
    for p in params:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
            continue
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            continue  # a dependency `from_toolkit` passes (a registry), not an option a config gives
        default = ... if p.default is p.empty else p.default
        annotation = hints.get(p.name, Any) if p.annotation is not p.empty else _type_of_default(p.default)
        fields[p.name] = (annotation, default)
    base = _OpenDerivedOptions if open_ended else _DerivedOptions
    name = f"{cls.__name__}Options"
    try:
        return create_model(name, __base__=base, __doc__=f"Derived from {cls.__name__}.__init__.", **fields)
    except Exception:  # an annotation pydantic cannot check: keep the names and defaults, any type
        loose: dict[str, Any] = {k: (Any, d) for k, (_t, d) in fields.items()}
        return create_model(name, __base__=base, __doc__=f"Derived from {cls.__name__}.__init__.", **loose)


register_cache("validation.derived_options_model", derived_options_model.cache_clear)

#: the default types that give an unannotated parameter its type (exactly these: a numpy scalar gives none)
_DEFAULT_TYPES = (bool, int, float, str)


def _type_of_default(default: Any) -> Any:
    """The type of an unannotated parameter, from its default (`shrink=0.0` is a float, which takes an int
    too): a bool, int, float or str default gives its type; no default, None or another value gives Any."""
    return type(default) if type(default) in _DEFAULT_TYPES else Any


def _hints(func: Any) -> dict[str, Any]:
    """The evaluated annotations of `func`, one by one: a name imported only for type checking gives Any."""
    try:
        return typing.get_type_hints(func)
    except Exception:
        pass
    out: dict[str, Any] = {}
    globalns = getattr(func, "__globals__", {})
    for name, ann in getattr(func, "__annotations__", {}).items():
        try:
            out[name] = eval(ann, globalns) if isinstance(ann, str) else ann  # the class's own annotation
        except Exception:
            out[name] = Any
    return out


def check_options(cls: type, options: Mapping[str, Any] | None, where: str) -> Options:
    """`options` checked against the options model of `cls`; a ConfigError names `where.KEY` otherwise."""
    return validate_options(options_model(cls), options, where)


def check_inherited_init(component: Any, base: type, options: Mapping[str, Any], kind: str) -> None:
    """What a component built in code with its base class's generic `__init__(**options)` is given, checked
    as a config's options are (`check_options`): a class without an `__init__` of its own takes only what its
    `Options` model names, or nothing when it declares none. A class with its own `__init__` checks its own
    (it calls the base's with what it chose to keep)."""
    cls = type(component)
    if options and cls.__init__ is base.__init__:  # type: ignore[misc]
        check_options(cls, options, f"{kind} {getattr(cls, 'name', '') or cls.__name__!r} options")


def allows_unknown_options(model: type[BaseModel]) -> bool:
    return model.model_config.get("extra") == "allow"
