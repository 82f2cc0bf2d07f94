"""`na-toolkit plugins [--json]`: every plugin, its version, what it registered, and what failed."""

from __future__ import annotations

import argparse
import json

from .command import Command


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object: plugins and errors")


def plugins_report(toolkit) -> dict:
    """The JSON document `na-toolkit plugins --json` prints."""
    return {
        "plugins": [p.to_json() for p in toolkit.plugins.values()],
        # every load error, including those of plugins not listed above (e.g. a clashing plugin name)
        "errors": [str(e) for e in toolkit.errors],
    }


def run(args: argparse.Namespace) -> int:
    from ..plugins import get_toolkit

    toolkit = get_toolkit()
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
            print(f"    {len(names)} {kind}{'s' if len(names) != 1 else ''}: {', '.join(names)}")
    attached = {p.error for p in toolkit.plugins.values() if p.error}
    unattached = [e for e in report["errors"] if e not in attached]
    for message in unattached:
        print(f"FAILED: {message}")
    failed = sum(1 for p in toolkit.plugins.values() if p.error)
    print(f"{len(toolkit.plugins) - failed} plugin(s) loaded, {failed + len(unattached)} failed")
    return 0


COMMANDS = (Command("plugins", "list the installed plugins, their versions and what each registered", configure, run),)
