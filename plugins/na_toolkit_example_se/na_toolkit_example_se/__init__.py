"""Example na_toolkit plugin: the squeeze-and-excitation layer type and the `insert_se` move.

The hook implementations are all there is to a plugin; the classes they register live in `layer.py` and
`move.py`. Nothing heavy is imported here: the toolkit imports every plugin to load it, so torch is
imported only when a network is built.
"""

import na_toolkit

__version__ = "0.1.0"


@na_toolkit.hookimpl
def na_register_layer_types(registry):
    from .layer import SqueezeExcite

    registry.add(SqueezeExcite())


@na_toolkit.hookimpl
def na_register_moves(registry):
    from .move import InsertSqueezeExcite

    registry.add(InsertSqueezeExcite())
