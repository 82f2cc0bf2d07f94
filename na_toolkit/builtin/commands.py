"""Built-in commands plugin."""
