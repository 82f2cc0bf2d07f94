"""CLI commands: search (stub)."""

COMMANDS = ()
