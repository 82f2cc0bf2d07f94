"""Built-in strategies plugin."""
