"""CLI commands: predict (stub)."""

COMMANDS = ()
