"""CLI commands: arch (stub)."""

COMMANDS = ()
