"""CLI commands: evaluate (stub)."""

COMMANDS = ()
