"""`bench latency --quick` is a smoke test of minutes: besides the small measurement minimums it profiles and
holds out few networks where the sizes are not given (it profiled 100 networks with 2 adaptive rounds and
measured 200 held-out networks 3 times, over 8 minutes on a 2-core CPU); sizes given win."""

import argparse

import pytest

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


def test_a_profile_measured_with_other_threads_is_refused_naming_them(tmp_path):
    """`--profile` of two intra-op threads (wall clock) against held-out networks measured with one thread
    (thread CPU time): the figures would compare two runtimes' latencies, so it is refused, naming each."""
    from na_toolkit.bench.latency import check_profile_fits
    from na_toolkit.errors import ConfigError
    from na_toolkit.plugins import load_toolkit
    from na_toolkit.timemodels.profile import DeviceProfile, resolve_profile_path

    profile = DeviceProfile.load(resolve_profile_path("example-cpu", load_toolkit().hardware))
    check_profile_fits(profile, "example-cpu.json", "cpu")  # the shipped one fits
    profile.runtime = {**profile.runtime, "intra_op_threads": 2, "clock": "wall"}
    with pytest.raises(ConfigError) as err:
        check_profile_fits(profile, "two.json", "cpu")
    msg = str(err.value)
    assert "intra-op threads: 2 in the profile, 1 in this benchmark" in msg
    assert (
        "clock: wall in the profile, thread_cpu in this benchmark" in msg and "na-toolkit profile --device cpu" in msg
    )


def test_a_profile_of_two_threads_is_benchmarked_on_two_threads(tmp_path):
    """A profile measured with `--threads 2` is a device of its own: `bench latency --profile` measures its
    held-out networks (and calibrates its roofline) with the profile's threads unless --threads says otherwise,
    and a --threads that differs from the profile's is refused, naming the profile command that fits."""
    from na_toolkit.bench.latency import check_profile_fits, profile_threads
    from na_toolkit.errors import ConfigError
    from na_toolkit.plugins import load_toolkit
    from na_toolkit.timemodels.profile import DeviceProfile, resolve_profile_path

    profile = DeviceProfile.load(resolve_profile_path("example-cpu", load_toolkit().hardware))
    profile.runtime = {**profile.runtime, "intra_op_threads": 2, "clock": "wall"}
    assert profile_threads(None, profile) == 2 and profile_threads(1, profile) == 1
    assert _args("--threads", "2").threads == 2 and _args().threads is None
    check_profile_fits(profile, "two.json", "cpu", 2)  # measured as it was profiled: fits
    profile.runtime = {**profile.runtime, "intra_op_threads": 1, "clock": "thread_cpu"}
    with pytest.raises(ConfigError, match=r"intra-op threads: 1 in the profile, 2 in this benchmark.*"
                       r"`na-toolkit profile --device cpu --threads 2`"):  # fmt: skip
        check_profile_fits(profile, "one.json", "cpu", 2)


def test_a_failed_run_leaves_no_temporary_folder_and_a_profile_name_is_read(tmp_path, run_cli):
    """The audit: `bench latency --device cuda:0` on a machine without one failed cleanly but left an empty
    na-bench-XXXX folder each time; and `--profile example-cpu` was read as a file ("No such file") where
    hw estimate --device, --prior and hw show take registered names."""
    env = {"TMPDIR": str(tmp_path)}
    res = run_cli("bench", "latency", "--device", "cuda:7", "--quick", env=env)
    assert "building a profile" in res.stderr and res.returncode != 0, res.stderr  # failed inside the folder
    assert not list(tmp_path.glob("na-bench-*"))
    line = run_cli("bench", "latency", "--profile", "example-cpu", "--threads", "2", "--quick", env=env).error_line()
    assert "intra-op threads: 1 in the profile, 2 in this benchmark" in line and "No such file" not in line
    assert not list(tmp_path.glob("na-bench-*"))
