"""The NB201 benches on a table the plugin never shipped: other devices (`lat_*` names of its own), no CIFAR-10
columns, every cell or only some. The method takes its columns from the table and the options, never from
the shipped table's layout."""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pytest

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")

from conftest import default_toolkit
from na_toolkit.errors import ConfigError, DataError, TimeModelError
from na_toolkit_nb201.bench import controller, fewshot_latency, nb201_search, whatif
from na_toolkit_nb201.space import OPS, RESNET_CELL, cell_string
from na_toolkit_nb201.table import SPACE_SIZE, load_table
from na_toolkit_nb201.table_models import NB201TableTimeModel

#: the columns of the held-out table: CIFAR-100 and ImageNet16-120 only, and a device the shipped table lacks
COLUMNS = ("c100_valtest_acc_200ep", "c100_test_acc_200ep", "in16_valtest_acc_200ep", "in16_test_acc_200ep")


def _write_table(path, rows: int | None = None) -> str:
    """Every cell of the space (or the first `rows`), with accuracies and a latency made up from its ops."""
    lines = ["arch_index,arch_str," + ",".join(COLUMNS) + ",lat_edgegpu"]
    for i, ops in enumerate(itertools.product(OPS, repeat=6)):
        if rows is not None and i >= rows:
            break
        convs = sum(o.startswith("nor_conv") for o in ops)
        wide = sum(o == "nor_conv_3x3" for o in ops)
        c100, in16 = 40 + 4 * convs + (i % 7) * 0.1, 20 + 3 * wide + (i % 5) * 0.1
        values = (c100, c100 - 0.5, in16, in16 - 0.3, 1.0 + convs + wide)
        lines.append(f"{i},{cell_string(ops)}," + ",".join(f"{v:.4f}" for v in values))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> str:
    return _write_table(tmp_path_factory.mktemp("heldout") / "heldout.csv")


def _args(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.configure(parser)
    return parser.parse_args(argv)


def test_controller_bench_searches_the_chosen_dataset_under_a_new_device(heldout, monkeypatch):
    # small enough for a test (tests/test_nb201_search.py does the same)
    monkeypatch.setitem(nb201_search.STRATEGY_OPTIONS, "neural-architect", {"episodes": 8, "updates": 2})
    argv = ["--seeds", "1", "--evaluations", "6", "--per-round", "3", "--budgets", "10", "--variants", "trained"]
    args = _args(controller, [*argv, "--table", heldout, "--dataset", "c100", "--settings", "edgegpu"])
    args.update_repeats = 0
    out = controller.run(args, default_toolkit())
    table = load_table(heldout)
    valid, test = table.column("c100_valtest_acc_200ep"), table.column("c100_test_acc_200ep")
    budget = np.quantile(table.column("lat_edgegpu"), 0.25)
    feasible = table.column("lat_edgegpu") <= budget
    ceiling = out["ceiling"]["lat_edgegpu"]
    # the reference is the CIFAR-100 columns' (no c10 column exists to fall back on)
    assert ceiling["feasible_optimum_test"] == pytest.approx(test[feasible].max(), abs=1e-4)
    assert ceiling["feasible_best_valid_test"] == pytest.approx(test[np.argmax(np.where(feasible, valid, -1))])
    (found,) = out["variants"]["lat_edgegpu"]["10"]["trained"]["test_accuracy_per_seed"]
    assert found is not None and np.isclose(test, found, atol=1e-4).any()
    assert out["protocol"]["reports"].startswith("c100_test_acc_200ep")


def test_nb201_search_bench_reports_the_chosen_dataset_and_no_cifar10_target(heldout):
    argv = ["--seeds", "1", "--evaluations", "4", "--per-round", "2", "--strategies", "random", "--rate-batch", "5"]
    out = nb201_search.run(_args(nb201_search, [*argv, "--table", heldout, "--dataset", "in16"]), default_toolkit())
    test = load_table(heldout).column("in16_test_acc_200ep")
    assert out["reference"]["optimum_test"] == pytest.approx(test.max(), abs=1e-4)
    assert out["protocol"]["sees"].startswith("in16_valtest_acc_200ep")
    # the targets are CIFAR-10 figures: none is claimed for another dataset
    assert out["target"]["neural-architect_test_accuracy"] is None
    # the shipped table's dataset is missing here: named, with the columns the table has
    with pytest.raises(ConfigError, match="--dataset c10: .*no column c10_valid_acc_200ep or .* has: c100, in16"):
        nb201_search.run(_args(nb201_search, [*argv, "--table", heldout]), default_toolkit())


def test_search_benches_refuse_a_table_that_lacks_cells_naming_why(tmp_path):
    partial = _write_table(tmp_path / "partial.csv", rows=50)
    for module in (nb201_search, controller, whatif):
        with pytest.raises(ConfigError, match="holds 50 of them.*every cell"):
            module.run(_args(module, ["--table", partial, "--dataset", "c100"]), default_toolkit())
    assert SPACE_SIZE == 15625


def test_table_time_model_on_a_partial_table_fails_as_a_time_model(tmp_path):
    """A cell the table lacks is a TimeModelError (the loop scores it as failed), not a DataError that stops
    the search; the message says the table is partial."""
    partial = _write_table(tmp_path / "partial.csv", rows=50)
    tm = NB201TableTimeModel(device="edgegpu", table=partial)
    assert tm.estimate(load_table(partial).arch_strs[3]).latency_ms > 0
    with pytest.raises(TimeModelError, match="holds 50 of the 15625 cells"):
        tm.estimate(RESNET_CELL)


def test_fewshot_latency_names_the_tables_devices_for_ones_it_lacks(heldout):
    for argv, option in ((["--device", "all"], "--device all means HELP"), (["--exclude", "pixl3"], "--exclude")):
        args = _args(fewshot_latency, ["--table", heldout, "--device", "edgegpu", *argv])
        with pytest.raises(ConfigError, match=f"{option}.*lat_edgegpu"):
            fewshot_latency.run(args, default_toolkit())
    # one latency column: no prior device left, said as such
    with pytest.raises(ConfigError, match="no other latency column"):
        fewshot_latency.run(_args(fewshot_latency, ["--table", heldout, "--device", "edgegpu"]), default_toolkit())


def test_transfer_targets_the_chosen_dataset_from_the_datasets_the_table_has(heldout):
    from na_toolkit_nb201.bench import transfer

    argv = ["--table", heldout, "--target-dataset", "c100", "--target-cells", "5", "--source-cells", "40"]
    args = _args(transfer, [*argv, "--test", "60", "--seeds", "1", "--predictor", "bayesian-ridge"])
    out = transfer.run(args, default_toolkit())
    # no CIFAR-10 column in this table: ImageNet16-120 is the one source, CIFAR-100 the target
    assert out["sources"] == {"ImageNet16-120": "in16_valtest_acc_200ep"}
    assert out["target"] == {
        "dataset": "cifar100",
        "train_column": "c100_valtest_acc_200ep",
        "test_column": "c100_test_acc_200ep",
    }
    assert out["test_cells"] == 60 and -1 <= out["kendall_tau"]["transfer"] <= 1


def test_predictor_bench_without_the_default_column_says_which_option_to_give(heldout):
    from na_toolkit_nb201.bench import predictor

    with pytest.raises(ConfigError, match="--target: .*no column 'c10_test_acc_200ep'.*c100_test_acc_200ep"):
        predictor.run(_args(predictor, ["--table", heldout]), default_toolkit())


def test_predict_fit_on_a_table_without_the_default_column_says_to_give_the_target(heldout):
    from na_toolkit_nb201.table_models import NB201TableEvaluator

    with pytest.raises(DataError, match="no column 'c10_valid_acc_200ep' to fit on.*--target.*c100_valtest"):
        NB201TableEvaluator.training_rows("c10_valid_acc_200ep", 5, 0, default_toolkit().layer_types, heldout)
    rows = NB201TableEvaluator.training_rows("lat_edgegpu", 5, 0, default_toolkit().layer_types, heldout)
    assert rows.unit == "ms" and len(rows.values) == 5


def test_table_time_model_reads_a_devices_column_at_the_requested_batch_size(tmp_path):
    """A held-out device measured at batch 1 and 8 (`lat_edgegpu`, `lat_edgegpu_8`): batch 8 reads the batch-8
    column and says batch 8, not the batch-1 column with a warning."""
    cells = [cell_string(ops) for ops in itertools.islice(itertools.product(OPS, repeat=6), 3)]
    lines = ["arch_index,arch_str,lat_edgegpu,lat_edgegpu_8"] + [
        f"{i},{c},{1 + i},{5 + i}" for i, c in enumerate(cells)
    ]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    tm = NB201TableTimeModel(device="edgegpu", table=str(tmp_path / "t.csv"))
    at8, at1 = tm.estimate(cells[2], batch_size=8), tm.estimate(cells[2], batch_size=1)
    assert (at8.latency_ms, at8.batch_size, at8.warnings, at8.details["column"]) == (7.0, 8, (), "lat_edgegpu_8")
    assert (at1.latency_ms, at1.batch_size, at1.warnings) == (3.0, 1, ())


def test_blank_fields_are_missing_values_every_consumer_skips(tmp_path):
    """A held-out table with gaps (pandas writes NaN as a blank field): it loads; the time model and the
    evaluator say the table has no value for that cell (scored / recorded as failed, not a crash); the budget
    and the predictor bench use only the cells with values."""
    from na_toolkit_nb201.bench import predictor
    from na_toolkit_nb201.table_models import NB201TableEvaluator

    cells = [cell_string(ops) for ops in itertools.islice(itertools.product(OPS, repeat=6), 40)]
    lines = ["arch_index,arch_str,c100_valtest_acc_200ep,c100_test_acc_200ep,lat_edgegpu"]
    for i, c in enumerate(cells):
        lat = "" if i % 4 == 0 else f"{1 + i}"  # every fourth latency unknown
        acc = "" if i == 1 else f"{50 + i % 9}"
        lines.append(f"{i},{c},{acc},{acc},{lat}")
    path = tmp_path / "gaps.csv"
    path.write_text("\n".join(lines) + "\n")
    table = load_table(path)
    assert np.isnan(table.column("lat_edgegpu")[::4]).all() and np.isfinite(table.column("lat_edgegpu")[1::4]).all()
    with pytest.raises(TimeModelError, match="no lat_edgegpu value for cell"):
        NB201TableTimeModel(device="edgegpu", table=str(path)).estimate(cells[0])
    with pytest.raises(DataError, match="no c100_valtest_acc_200ep value for cell"):
        NB201TableEvaluator(dataset="c100", table=str(path)).evaluate(cells[1])
    # the budget is the quantile of the known latencies; an unknown one is not feasible
    budget, feasible = nb201_search.latency_budget(table, "lat_edgegpu", 0.5)
    known = table.column("lat_edgegpu")[np.isfinite(table.column("lat_edgegpu"))]
    assert budget == pytest.approx(np.quantile(known, 0.5)) and not feasible[::4].any()
    argv = ["--table", str(path), "--target", "c100_test_acc_200ep", "--train", "10", "--test", "29", "--seeds", "1"]
    out = predictor.run(
        _args(predictor, [*argv, "--predictors", "bayesian-ridge", "--throughput-archs", "5"]), default_toolkit()
    )
    assert np.isfinite(out["kendall_tau"]["bayesian-ridge"])
    with pytest.raises(ConfigError, match="exceeds the table's 39 cells with c100_test_acc_200ep"):
        predictor.run(_args(predictor, [*argv[:-4], "--test", "30", "--seeds", "1"]), default_toolkit())
