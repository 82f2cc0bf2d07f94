"""`predict fit --data` as users write their files (a spreadsheet's CSV, a run's evaluations with a failed
measurement, a misspelt column, a file of another kind), `--seed` and `--param` as they read, and the
library's target checks: each a fit of the rows that hold a value, or one error line naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import default_toolkit, layer_types
from na_toolkit.errors import DataError
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.predictors import make_predictor
from na_toolkit.predictors.fewshot import FewShotLatencyPredictor

TK = default_toolkit()


def cnn(width: int, depth: int):
    b = ArchitectureBuilder((1, 8, 8), name=f"cnn-{width}-{depth}", layer_types=layer_types())
    x = b.input
    for _ in range(depth):
        x = b.layer("relu", b.layer("conv2d", x, filters=width, kernel=3))
    b.layer("linear", b.layer("flatten", b.layer("global_avg_pool", x)), units=10)
    return b.build()


ARCHS = [cnn(w, d) for w in (4, 8, 16, 32) for d in (1, 2, 3)]


def _write_csv(path, header: list[str], rows: list[list[str]], bom: bool = False) -> None:
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(header)
    w.writerows(rows)
    path.write_text(("\ufeff" if bom else "") + out.getvalue(), encoding="utf-8")


def _rows(values) -> list[list[str]]:
    return [[json.dumps(a.to_json()), v] for a, v in zip(ARCHS, values)]


def fit(run_cli, tmp_path, data, target="acc", *more):
    return run_cli("predict", "fit", "--data", data, "--target", target, "--param", "n_estimators=5", *more,
                   "--out", tmp_path / "m.json")  # fmt: skip


def test_a_spreadsheets_csv_is_read_as_written(tmp_path, run_cli):
    # Excel's "CSV UTF-8" starts with a byte order mark, and a header typed by hand has spaces after commas
    values = [f"{0.5 + i / 100}" for i in range(len(ARCHS))]
    _write_csv(tmp_path / "bom.csv", ["arch", " acc"], _rows(values), bom=True)
    res = fit(run_cli, tmp_path, tmp_path / "bom.csv")
    assert res.returncode == 0, res.stderr
    assert f"fit ensemble on {len(ARCHS)} samples of acc" in res.stdout


def test_rows_without_the_target_are_left_out_and_counted(tmp_path, run_cli):
    # a run's evaluation whose measurement failed has no latency, though the evaluation itself succeeded
    values = ["" if i in (2, 5) else f"{0.5 + i / 100}" for i in range(len(ARCHS))]
    _write_csv(tmp_path / "blank.csv", ["arch", "acc"], _rows(values))
    res = fit(run_cli, tmp_path, tmp_path / "blank.csv")
    assert res.returncode == 0, res.stderr
    assert "left out 2 line(s) with no value of acc" in res.stderr
    assert f"on {len(ARCHS) - 2} samples" in res.stdout


def test_a_misspelt_target_names_the_columns_there_are(tmp_path, run_cli):
    _write_csv(tmp_path / "d.csv", ["arch", "acc"], _rows(["0.5"] * len(ARCHS)))
    res = fit(run_cli, tmp_path, tmp_path / "d.csv", "acd")
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"na-toolkit: error: --data {tmp_path / 'd.csv'}: no line has a value of 'acd' (--target); its keys: acc, "
        "arch. Did you mean 'acc'?"
    )
    _write_csv(tmp_path / "typo.csv", ["archs", "acc"], _rows(["0.5"] * len(ARCHS)))
    res = fit(run_cli, tmp_path, tmp_path / "typo.csv")
    assert res.returncode == 2 and "line 2: no 'arch' (its keys: archs, acc)" in res.stderr


def test_a_column_named_twice_is_refused(tmp_path, run_cli):
    _write_csv(tmp_path / "d.csv", ["arch", "acc", "acc"], [r + ["1"] for r in _rows(["0.5"] * len(ARCHS))])
    res = fit(run_cli, tmp_path, tmp_path / "d.csv")
    assert res.returncode == 2 and "names column(s) 'acc' more than once" in res.stderr
    assert not (tmp_path / "m.json").exists()


def test_a_file_of_another_kind_is_named(tmp_path, run_cli):
    lines = [{"arch": a.to_json(), "acc": 0.5} for a in ARCHS]
    (tmp_path / "array.json").write_text(json.dumps(lines, indent=1))
    res = fit(run_cli, tmp_path, tmp_path / "array.json")
    assert res.returncode == 2
    assert "array.json is one JSON list spread over lines, not JSON Lines; --data is JSON Lines" in res.stderr
    (tmp_path / "hw.toml").write_text('name = "x"\npeak_flops_per_s = 1e12\nmemory_bandwidth_bytes_per_s = 1e10\n')
    res = fit(run_cli, tmp_path, tmp_path / "hw.toml")
    assert res.returncode == 2 and "hw.toml is a hardware model, not data to fit on" in res.stderr


def test_seed_seeds_the_predictor_and_is_refused_where_it_does_nothing(tmp_path, run_cli):
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(json.dumps({"arch": a.to_json(), "acc": 0.5 + i / 100}) + "\n" for i, a in enumerate(ARCHS))
    )
    assert fit(run_cli, tmp_path, data, "acc", "--seed", "5").returncode == 0
    assert json.loads((tmp_path / "m.json").read_text())["params"]["random_state"] == 5
    both = fit(run_cli, tmp_path, data, "acc", "--seed", "5", "--param", "random_state=2")
    assert both.returncode == 2 and "--seed and --param random_state both seed the predictor" in both.stderr
    res = run_cli("predict", "fit", "--data", data, "--target", "acc", "--predictor", "bayesian-ridge", "--seed", "5",
                  "--out", tmp_path / "b.json")  # fmt: skip
    assert res.returncode == 2 and "takes no random_state and --data gives the rows" in res.stderr
    none = fit(run_cli, tmp_path, data, "acc", "--param", "random_state=none")
    assert none.returncode == 2 and "none is written null on a command line (KEY=null)" in none.stderr


def test_a_file_a_param_reads_is_never_the_output(tmp_path, run_cli):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"arch": a.to_json(), "acc": 0.5}) + "\n" for a in ARCHS))
    model = tmp_path / "pre.json"
    model.write_text('{"kind": "na_toolkit.predictor"}')
    before = model.read_bytes()
    res = run_cli("predict", "fit", "--data", data, "--target", "acc", "--predictor", "neural",
                  "--param", f"pretrained={model}", "--out", model)  # fmt: skip
    assert res.returncode == 2 and "it is the input" in res.stderr
    assert model.read_bytes() == before


def test_a_prior_that_is_no_latency_prior_is_one_error(tmp_path, run_cli):
    res = run_cli("predict", "fit", "--train", "20", "--target", "lat_pixel3", "--predictor", "fewshot-latency",
                  "--param", "prior=fs.json", "--out", tmp_path / "f.json")  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "prior is 'fs.json' (str), not a LatencyPrior" in res.stderr
    with pytest.raises(DataError, match="not a LatencyPrior"):
        FewShotLatencyPredictor(prior="fs.json").fit(ARCHS, np.linspace(1, 2, len(ARCHS)))


# ---- the library's targets --------------------------------------------------------------------------------
def test_targets_that_are_text_or_too_large_are_refused():
    model = make_predictor("random-forest", {"n_estimators": 5}, TK)
    with pytest.raises(DataError, match="targets must be numbers, got an array of <U"):
        model.fit(ARCHS, np.array([str(0.5 + i / 100) for i in range(len(ARCHS))]))
    with pytest.raises(DataError, match="targets must be numbers, got '0.5'"):
        model.fit(ARCHS, np.array(["0.5"] * len(ARCHS), dtype=object))
    with pytest.raises(DataError, match=r"targets reach 2e\+302, beyond 1e\+100.*give them in a larger unit"):
        model.fit(ARCHS, np.linspace(1, 2, len(ARCHS)) * 1e302)


def test_a_few_shot_latency_is_never_negative_without_a_target():
    # a ridge on three samples extrapolates: below 0 it is clipped, and says so
    y = np.array([5.0, 1.0, 9.0])
    model = FewShotLatencyPredictor(alpha=1e-6, weight=1.0).fit(ARCHS[:3], y)
    mean, _, notes = model.predict_with_notes(ARCHS)
    assert mean.min() >= 0.0
    assert all(n for m, n in zip(mean, notes) if m == 0.0)


def test_domain_warnings_name_kernels_readably():
    model = FewShotLatencyPredictor().fit(ARCHS[:6], np.linspace(1.0, 2.0, 6))
    warned = model.domain_warnings([TK.seed("simple-cnn")])[0]
    assert warned and any(w.startswith("kernel conv2d(") for w in warned)
    assert not any("{'" in w for w in warned)  # no attribute dict as Python writes it


def _no_file_over(size_bytes: int):
    """`preexec_fn`: the child may write no file past `size_bytes` (a full disk, as the write sees it: EFBIG)."""

    def limit() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the child
        resource.setrlimit(resource.RLIMIT_FSIZE, (size_bytes, size_bytes))

    return limit


def test_a_write_the_file_system_refuses_is_one_error_line_and_the_old_file_stays(tmp_path, run_cli):
    # before: a traceback ending in OSError (a full disk under predict fit --out, export into a read-only run)
    import subprocess
    import sys

    _write_csv(tmp_path / "d.csv", ["arch", "acc"], _rows([f"{0.5 + i / 100}" for i in range(len(ARCHS))]))
    assert fit(run_cli, tmp_path, tmp_path / "d.csv").returncode == 0
    before = (tmp_path / "m.json").read_bytes()
    cmd = [sys.executable, "-m", "na_toolkit", "predict", "fit", "--data", str(tmp_path / "d.csv"), "--target",
           "acc", "--param", "n_estimators=9", "--out", str(tmp_path / "m.json")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_no_file_over(len(before) // 2), timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("na-toolkit: error: cannot write ") and "File too large" in line and "(--out)" in line
    assert (tmp_path / "m.json").read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "d.csv",
        "m.json",
    ]
