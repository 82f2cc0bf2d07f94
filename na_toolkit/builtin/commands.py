"""Built-in CLI commands. Each module of na_toolkit.cli listed here exposes a `COMMANDS` tuple."""

from __future__ import annotations

import importlib

import na_toolkit

COMMAND_MODULES = (
    "na_toolkit.cli.plugins_cmd",
    "na_toolkit.cli.plugin_new",
    "na_toolkit.cli.arch",
    "na_toolkit.cli.hw",
    "na_toolkit.cli.profile",
    "na_toolkit.cli.evaluate",
    "na_toolkit.cli.predict",
    "na_toolkit.cli.search",
    "na_toolkit.cli.whatif",
    "na_toolkit.cli.runs",
    "na_toolkit.cli.worker",
    "na_toolkit.cli.bench",
    "na_toolkit.cli.demo",
)


@na_toolkit.hookimpl
def na_register_commands(registry):
    for module_name in COMMAND_MODULES:
        for command in importlib.import_module(module_name).COMMANDS:
            registry.add(command)
