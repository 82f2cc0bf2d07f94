"""Built-in hardware plugin."""
