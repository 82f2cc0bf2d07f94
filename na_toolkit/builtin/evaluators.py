"""Built-in evaluators plugin."""
