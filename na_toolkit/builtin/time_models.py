"""Built-in time_models plugin."""
