"""Built-in predictors plugin."""
