"""CLI commands: plugins_cmd (stub)."""

COMMANDS = ()
