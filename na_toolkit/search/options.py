"""Component options shown: the `Options` model of a registered component as `na-toolkit plugins --options
NAME` and the generated docs/options.md show it. The models and how options are checked against them live in
`na_toolkit.validation` (`options_model`, `check_options`; re-exported here for code that imports them from
this module).

A component class (strategy, evaluator, executor, predictor, time model) declares its keyword options as a
nested pydantic model `Options` (a `na_toolkit.validation.Options`: unknown keys refused, types, defaults,
value ranges). A third-party component without one gets a model derived from its `__init__` keyword
parameters (types from the annotations, else from a bool / int / float / str default, defaults from the
signature; a `**kwargs` of its own lets unknown keys through, a base class's generic `**options` does not), so
every component is checked the same way, when the config is resolved and before anything is paid.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ..validation import (
    allows_unknown_options,
    check_options,
    declared_options,
    derived_options_model,
    options_model,
    takes_option,
)

if TYPE_CHECKING:
    from ..toolkit import Toolkit

#: the toolkit registries whose components are classes built with keyword options, in the order shown
OPTION_REGISTRIES = ("strategies", "evaluators", "executors", "predictors", "time_models")
#: what the registries' items are called in `KIND:NAME` (`time-model:roofline`)
KIND_LABELS = {
    "strategies": "strategy",
    "evaluators": "evaluator",
    "executors": "executor",
    "predictors": "predictor",
    "time_models": "time-model",
}
HEADINGS = {
    "strategies": "Strategies",
    "evaluators": "Evaluators",
    "executors": "Executors",
    "predictors": "Predictors",
    "time_models": "Time models",
}


# ---- showing a model ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptionInfo:
    """One option as `na-toolkit plugins --options` and docs/options.md show it."""

    name: str
    type: str
    default: Any
    required: bool
    constraints: str
    description: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "default": _jsonable(self.default),
            "required": self.required,
            "constraints": self.constraints,
            "description": self.description,
        }


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def type_name(annotation: Any) -> str:
    """A short, TOML-minded name of a type: `int`, `float | None`, `"sgd" | "adam"`, `table`, `list[str]`."""
    if annotation is type(None) or annotation is None:
        return "none"
    if annotation is Any:
        return "any"
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(annotation))
    if origin is typing.Annotated:
        return type_name(get_args(annotation)[0])
    if origin in (list, tuple, set, frozenset):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        return f"list[{type_name(args[0])}]" if args else "list"
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return "table"
    names = {bool: "bool", int: "int", float: "float", str: "str", list: "list"}
    if annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "<="),
)


def _constraints(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, attr)}")
        if isinstance(item, annotated_types.MinLen):  # a string or a list: "non-empty" says it of both
            parts.append("non-empty" if item.min_length == 1 else f"length >= {item.min_length}")
        if isinstance(item, annotated_types.MaxLen):
            parts.append(f"length <= {item.max_length}")
    return ", ".join(parts)


def describe_options(model: type[BaseModel]) -> list[OptionInfo]:
    """The options of a model, in declaration order."""
    out = []
    for name, f in model.model_fields.items():
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        shown = extra.get("type_name")
        required = f.is_required()
        default = None if required or f.default is PydanticUndefined else f.default
        out.append(
            OptionInfo(
                name=f.alias or name,
                type=str(shown) if shown else type_name(f.annotation),
                default=default,
                required=required,
                constraints=_constraints(list(f.metadata)),
                description=" ".join((f.description or "").split()),
            )
        )
    return out


def format_value(value: Any) -> str:
    """A default as a config file writes it (`true`, `"sgd"`, `0.3`); `none` for an unset default."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str, list, dict)):
        return json.dumps(value)
    return repr(value)


def format_default(info: OptionInfo) -> str:
    return "(required)" if info.required else format_value(info.default)


def component_options_json(toolkit: Toolkit, attr: str, name: str) -> dict[str, Any]:
    """What `na-toolkit plugins --options KIND:NAME --json` prints for one component."""
    registry = toolkit.registries()[attr]
    cls = registry.get(name)
    model = options_model(cls)
    return {
        "kind": KIND_LABELS[attr],
        "name": name,
        "plugin": registry.plugin_of(name),
        "description": getattr(cls, "description", ""),
        "declared": declared_options(cls) is not None,
        "unknown_options_allowed": allows_unknown_options(model),
        "notes": " ".join((model.__doc__ or "").split()) if declared_options(cls) is not None else "",
        "options": [o.to_json() for o in describe_options(model)],
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def options_table(model: type[BaseModel]) -> list[str]:
    """A markdown table of a model's options."""
    rows = ["| option | type | default | range | description |", "|---|---|---|---|---|"]
    for o in describe_options(model):
        rows.append(
            f"| `{o.name}` | {_cell(o.type)} | {_cell(format_default(o))} | {_cell(o.constraints)} | "
            f"{_cell(o.description)} |"
        )
    if len(rows) == 2:
        rows.append("| (none) | | | | |")
    return rows


OPTIONS_DOC_HEADER = """\
# Component options

<!-- Generated from the components' `Options` models: do not edit by hand. Regenerate with
     `na-toolkit plugins --options-docs > docs/options.md` (tests/test_options.py fails when out of date). -->

Every registered strategy, evaluator, executor, predictor and time model declares its keyword options as a
pydantic model (`Options`, a subclass of `na_toolkit.validation.Options`). A search config's `options = { ... }`
tables are checked against these models when the config is resolved, before anything is evaluated: an unknown
key (with the close matches), a wrong type or a value out of range is one error naming its path, e.g.
`predictors.accuracy.options.n_estimators`. `na-toolkit plugins --options NAME` prints the same tables for
any installed component (`NAME` or `KIND:NAME`, e.g. `predictor:gp`; `--json` for a document).

This page lists the built-in components; a time model's `device` is filled in from its device's table
(`[devices.NAME] device = ...`) unless its options give one.
"""


def options_markdown(toolkit: Toolkit) -> str:
    """docs/options.md: the option tables of every built-in component, from their models."""
    lines = [OPTIONS_DOC_HEADER.rstrip("\n")]
    registries = toolkit.registries()
    for attr in OPTION_REGISTRIES:
        registry = registries[attr]
        # the built-in names, chosen before any is imported: a broken lazy component of another plugin is not read
        names = sorted(n for n in registry.names() if _builtin(toolkit, registry.plugin_of(n)))
        if not names:
            continue
        lines += ["", f"## {HEADINGS[attr]}"]
        for name in names:
            cls = registry.get(name)
            model = options_model(cls)
            lines += ["", f"### `{name}` ({KIND_LABELS[attr]}:{name})", ""]
            description = getattr(cls, "description", "")
            if description:
                lines += [description[0].upper() + description[1:] + ".", ""]
            notes = " ".join((model.__doc__ or "").split()) if declared_options(cls) is not None else ""
            if notes:
                lines += [notes, ""]
            lines += options_table(model)
    return "\n".join(lines) + "\n"


def _builtin(toolkit: Toolkit, plugin: str) -> bool:
    """Was `plugin` (as a registry entry names it: the plugin's label) a built-in one?"""
    return any(info.builtin and plugin in (info.label, info.name) for info in toolkit.plugins.values())


__all__ = [
    "OPTION_REGISTRIES",
    "OptionInfo",
    "check_options",
    "component_options_json",
    "declared_options",
    "derived_options_model",
    "describe_options",
    "format_value",
    "options_markdown",
    "options_model",
    "options_table",
    "takes_option",
    "type_name",
]
