"""The best candidate per device and over all devices follow one deterministic order (issue: best/cpu and
best/all of a one-device run differed, tie-broken by noisy measured latency in one and by size in the other)."""

from conftest import default_toolkit
from na_toolkit.search.strategy import Candidate, Score
from na_toolkit.search.summary import Evaluated, _best_of


def _evaluated(seq, arch, accuracy, reward, latency_ms, size_bytes):
    metrics = {"accuracy": accuracy, "model_size_bytes": size_bytes, "latency_ms@cpu": latency_ms}
    return Evaluated(
        seq, 1, Candidate(arch, (), None, "test"), Score(reward, metrics, real=True), {}, None, {"cpu": True}
    )


def test_ties_break_by_reward_then_size_then_order_never_by_measured_latency():
    tk = default_toolkit()
    a, b, c = (tk.seed(name) for name in ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar"))
    rows = [
        _evaluated(0, a, 0.9, 0.5, latency_ms=0.020, size_bytes=2000),
        _evaluated(1, b, 0.9, 0.5, latency_ms=0.033, size_bytes=1000),  # slower, smaller: wins the tie
        _evaluated(2, c, 0.9, 0.5, latency_ms=0.010, size_bytes=1000),  # same size, evaluated later
    ]
    assert _best_of(rows, "cpu") is rows[1].hash == _best_of(rows) == _best_of(rows, "gpu")
    assert _best_of(list(reversed(rows)), "cpu") == rows[1].hash  # not the order of the list: seq
    assert len({r.hash for r in rows}) == 3
    rows[0] = _evaluated(0, a, 0.9, 0.6, latency_ms=9.0, size_bytes=9000)
    assert _best_of(rows, "cpu") == _best_of(rows) == rows[0].hash  # a higher reward comes first
    rows[2] = _evaluated(2, c, 0.91, 0.0, latency_ms=9.0, size_bytes=9000)
    assert _best_of(rows, "cpu") == _best_of(rows) == rows[2].hash  # and accuracy above all


def _config(**search):
    from na_toolkit.search.config import load_config

    doc = {
        "name": "floor",
        "seed_network": "simple-cnn",
        "evaluations": 4,
        "search": search,
        "devices": {"cpu": {"device": "cpu", "time_model": {"name": "roofline", "options": {"hardware": "x"}}}},
    }
    return load_config(doc)


def test_a_chance_level_network_stays_off_the_pareto_front_however_fast():
    from na_toolkit.search.summary import Counters, summarize

    tk = default_toolkit()
    a, b, c = (tk.seed(name) for name in ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar"))
    classes = a.output_shape[0]
    rows = [
        _evaluated(0, a, 0.95, 0.9, latency_ms=2.0, size_bytes=9000),
        _evaluated(1, b, 1.0 / classes + 0.0006, 0.1, latency_ms=0.1, size_bytes=10),  # chance level, fastest
        _evaluated(2, c, 0.90, 0.8, latency_ms=1.0, size_bytes=5000),
    ]
    kw = dict(run_id="r", run_dir=".", stop_reason="budget", seed_hash=a.hash, counters=Counters(), elapsed_s=0.0)
    result = summarize(_config(), rows, **kw)
    assert rows[1].hash not in result.pareto and set(result.pareto) == {rows[0].hash, rows[2].hash}
    # the floor is configurable: at 0 the chance-level network is a trade-off like any other
    assert rows[1].hash in summarize(_config(pareto_min_accuracy=0.0), rows, **kw).pareto
    assert summarize(_config(pareto_min_accuracy=0.92), rows, **kw).pareto == [rows[0].hash]


def test_a_best_network_off_the_front_is_still_in_the_printed_table():
    from na_toolkit.search.outputs import pareto_table
    from na_toolkit.search.summary import Counters, summarize

    tk = default_toolkit()
    a, c = tk.seed("simple-cnn"), tk.seed("mobilenetv2-cifar")
    rows = [  # as accurate and as small: the first evaluated is the best; the faster one dominates it
        _evaluated(0, a, 0.9, 0.5, latency_ms=0.033, size_bytes=1000),
        _evaluated(1, c, 0.9, 0.5, latency_ms=0.010, size_bytes=1000),
    ]
    kw = dict(run_id="r", run_dir=".", stop_reason="budget", seed_hash=a.hash, counters=Counters(), elapsed_s=0.0)
    summary = summarize(_config(), rows, **kw).summary()
    assert [e["arch_hash"] for e in summary["pareto"]] == [rows[1].hash]
    assert summary["best"]["cpu"]["arch_hash"] == rows[0].hash
    lines = pareto_table(summary).splitlines()
    assert lines[2].startswith(rows[1].hash) and lines[3].startswith(rows[0].hash) and lines[3].endswith("cpu")
    assert lines[4] == (
        "(the last 1 row: best for a device but not on the front; an equally accurate network measured no slower "
        "dominates it, and the best is chosen without measured latency)"
    )
    # a floor above every network: the front is empty, and the note gives the floor as the reason, not dominance
    summary = summarize(_config(pareto_min_accuracy=0.99), rows, **kw).summary()
    assert summary["pareto"] == [] and summary["pareto_min_accuracy"] == 0.99
    assert pareto_table(summary).splitlines()[-1] == (
        "(the last 1 row: best for a device but not on the front; all below the front's accuracy floor 99.00% "
        "(search.pareto_min_accuracy; by default 1.1 x the share of the commonest class))"
    )
