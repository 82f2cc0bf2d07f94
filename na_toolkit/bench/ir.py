"""Benchmark 'ir' (not written yet)."""


def configure(parser):
    pass


def run(args):
    from na_toolkit.errors import NAToolkitError

    raise NAToolkitError("benchmark 'ir' is not implemented yet")
