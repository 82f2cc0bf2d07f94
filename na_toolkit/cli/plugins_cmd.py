"""`na-toolkit plugins [--json]`: every plugin, its version, what it registered, and what failed.

    na-toolkit plugins --options NAME [--json]   a component's options: types, defaults, ranges
    na-toolkit plugins --options-docs            docs/options.md (the built-in components' option tables)

NAME is a component's name when it is unique across strategies, evaluators, executors, predictors and time
models, or `KIND:NAME` (`predictor:gp`, `time-model:torch`). The options come from the same `Options` models
that check a search config (na_toolkit/validation.py; shown by na_toolkit/search/options.py).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, UnknownComponentError, counted
from .command import Command

if TYPE_CHECKING:
    from ..toolkit import Toolkit


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object: plugins and errors")
    parser.add_argument(
        "--options",
        metavar="NAME",
        help="print a component's options (types, defaults, ranges): NAME or KIND:NAME, e.g. predictor:gp",
    )
    parser.add_argument(
        "--options-docs",
        action="store_true",
        help="print docs/options.md: the option tables of the built-in components (markdown)",
    )


def plugins_report(toolkit: Toolkit) -> dict[str, Any]:
    """The JSON document `na-toolkit plugins --json` prints."""
    return {
        "plugins": [p.to_json() for p in toolkit.plugins.values()],
        # every load error, including those of plugins not listed above (e.g. a clashing plugin name)
        "errors": [str(e) for e in toolkit.errors],
    }


def _kind_aliases() -> dict[str, str]:
    from ..search.options import KIND_LABELS

    aliases: dict[str, str] = {}
    for attr, label in KIND_LABELS.items():
        for alias in (attr, label, attr.rstrip("s"), label.replace("-", "")):
            aliases[alias.replace("_", "-")] = attr
    return aliases


def find_component(toolkit: Toolkit, spec: str) -> tuple[str, str]:
    """(toolkit registry attribute, name) of `NAME` or `KIND:NAME`; a ConfigError or UnknownComponentError
    (with the close matches) otherwise."""
    from ..search.options import KIND_LABELS, OPTION_REGISTRIES

    registries = toolkit.registries()
    kind, sep, name = spec.rpartition(":")
    if sep:
        aliases = _kind_aliases()
        attr = aliases.get(kind.strip().lower().replace("_", "-").replace(" ", "-"))
        if attr is None:
            kinds = ", ".join(KIND_LABELS[a] for a in OPTION_REGISTRIES)
            raise ConfigError(f"--options {spec}: unknown kind {kind!r}; kinds: {kinds}")
        registries[attr].get(name)  # UnknownComponentError with the close matches
        return attr, name
    found = [attr for attr in OPTION_REGISTRIES if name in registries[attr]]
    if not found:
        known = sorted({n for attr in OPTION_REGISTRIES for n in registries[attr].names()})
        raise UnknownComponentError("component", name, known)
    if len(found) > 1:
        both = ", ".join(f"{KIND_LABELS[a]}:{name}" for a in found)
        raise ConfigError(f"--options {name}: several components have this name ({both}); give one as KIND:NAME")
    return found[0], name


def _print_options(doc: dict[str, Any]) -> None:
    from ..search.options import format_value
    from ._format import render_table

    print(f"{doc['kind']} {doc['name']} (plugin {doc['plugin']})")
    if doc["description"]:
        print(f"    {doc['description']}")
    if doc["notes"]:
        print(f"    {doc['notes']}")
    if not doc["declared"]:
        print("    (no Options model: options derived from its keyword parameters)")
    rows = [
        [
            o["name"],
            o["type"],
            "(required)" if o["required"] else format_value(o["default"]),
            o["constraints"],
            o["description"],
        ]
        for o in doc["options"]
    ]
    if rows:
        print(render_table(["option", "type", "default", "range", "description"], rows))
    else:
        print("(no options)")
    if doc["unknown_options_allowed"]:
        print("other keyword options are passed through unchecked")


def run(args: argparse.Namespace) -> int:
    toolkit: Toolkit = args.toolkit
    if args.options_docs:
        from ..search.options import options_markdown

        print(options_markdown(toolkit), end="")
        return 0
    if args.options is not None:
        from ..search.options import component_options_json

        attr, name = find_component(toolkit, args.options)
        doc = component_options_json(toolkit, attr, name)
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            _print_options(doc)
        return 0
    report = plugins_report(toolkit)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    kinds = {attr: reg.kind for attr, reg in toolkit.registries().items()}
    for p in toolkit.plugins.values():
        source = "built-in" if p.builtin else (p.dist or "registered directly")
        print(f"{p.name} {p.version} ({source})".replace("  ", " "))
        if p.error:
            print(f"    FAILED: {p.error}")
        elif not p.registered:
            print("    (registers nothing)")
        for attr, names in p.registered.items():
            kind = kinds.get(attr, attr)
            print(f"    {counted(len(names), kind)}: {', '.join(names)}")
    attached = {p.error for p in toolkit.plugins.values() if p.error}
    unattached = [e for e in report["errors"] if e not in attached]
    for message in unattached:
        print(f"FAILED: {message}")
    failed = sum(1 for p in toolkit.plugins.values() if p.error)
    print(f"{len(toolkit.plugins) - failed} plugin(s) loaded, {failed + len(unattached)} failed")
    return 0


COMMANDS = (Command("plugins", "list the installed plugins, their versions and what each registered", configure, run),)
