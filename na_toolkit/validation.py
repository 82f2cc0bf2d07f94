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
import math
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError, NAToolkitError

M = TypeVar("M", bound=BaseModel)


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
        dotted = path if " " not in where else _path(loc, "")
        prefix = dotted.rsplit(".", 1)[0] + "." if "." in dotted else ""
        hint = f" Did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""
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
        msg = f"{path}: {first.get('msg', 'invalid value')} (got {shown})"
    more = len(errors) - 1
    return msg + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


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
