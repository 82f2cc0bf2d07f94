"""na_toolkit: hardware-aware neural architecture search (Neural Architect) built of pluggy plugins."""

__version__ = "0.1.0"

from .hookspecs import hookimpl  # noqa: E402  (a plugin writes @na_toolkit.hookimpl)
from .errors import NAToolkitError  # noqa: E402
from .ir.architecture import Architecture, Attrs, Node  # noqa: E402
from .plugins import get_toolkit, load_toolkit  # noqa: E402

__all__ = ["__version__", "hookimpl", "NAToolkitError", "Architecture", "Attrs", "Node", "get_toolkit", "load_toolkit"]
