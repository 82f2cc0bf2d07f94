"""Built-in executors plugin."""
