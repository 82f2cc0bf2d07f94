"""Benchmark 'predictor' (not written yet)."""


def configure(parser):
    pass


def run(args):
    from na_toolkit.errors import NAToolkitError

    raise NAToolkitError("benchmark 'predictor' is not implemented yet")
