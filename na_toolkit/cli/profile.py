"""CLI commands: profile (stub)."""

COMMANDS = ()
