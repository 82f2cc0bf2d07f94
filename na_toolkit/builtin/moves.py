"""Built-in moves plugin."""
