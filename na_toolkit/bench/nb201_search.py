"""Benchmark 'nb201_search' (not written yet)."""


def configure(parser):
    pass


def run(args):
    from na_toolkit.errors import NAToolkitError

    raise NAToolkitError("benchmark 'nb201_search' is not implemented yet")
