"""CLI commands: hw (stub)."""

COMMANDS = ()
