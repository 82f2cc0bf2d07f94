"""`bench latency --quick` is a smoke test of minutes: besides the small measurement minimums it profiles and
holds out few networks where the sizes are not given (it profiled 100 networks with 2 adaptive rounds and
measured 200 held-out networks 3 times, over 8 minutes on a 2-core CPU); sizes given win."""

import argparse

from na_toolkit.bench.latency import DEFAULT_HELDOUT, QUICK_SIZES, configure, resolve_sizes


def _args(*argv):
    parser = argparse.ArgumentParser()
    configure(parser)
    return resolve_sizes(parser.parse_args(list(argv)))


def test_quick_uses_small_sizes_where_none_is_given():
    args = _args("--quick")
    assert (args.samples, args.adaptive_rounds, args.heldout) == (20, 0, 30) == tuple(QUICK_SIZES.values())
    given = _args("--quick", "--samples", "50", "--heldout", "40", "--adaptive-rounds", "1")
    assert (given.samples, given.adaptive_rounds, given.heldout) == (50, 1, 40)


def test_without_quick_the_defaults_stay():
    args = _args()
    assert args.heldout == DEFAULT_HELDOUT and args.samples is None and args.adaptive_rounds is None


def test_the_sizes_used_are_what_the_results_params_show():
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["--quick"])
    resolve_sizes(args)  # in place: the bench command reads "params" from the same namespace after the run
    assert (args.samples, args.adaptive_rounds, args.heldout) == (20, 0, 30)
