"""Claims of docs/predictors.md about choosing a predictor's options, checked on NAS-Bench-201 rows."""

from __future__ import annotations

import numpy as np

from conftest import default_toolkit
from na_toolkit.predictors import make_predictor


def test_log_target_does_not_suit_the_additive_kernel_model_of_training_time():
    from na_toolkit_nb201.space import nb201_architecture
    from na_toolkit_nb201.table import finite_rows, load_table

    tk, table = default_toolkit(), load_table()
    column = "c10_train_time_s_200ep"
    y = table.column(column)
    known = finite_rows(table, column)
    rows = known[np.random.default_rng(0).permutation(len(known))[:400]]
    archs = [nb201_architecture(table.arch_strs[i], layer_types=tk.layer_types) for i in rows]
    train, test = slice(0, 100), slice(100, None)

    def mape(log_target: bool) -> float:
        model = make_predictor("kernel-ridge", {"log_target": log_target}, tk).fit(archs[train], y[rows[train]])
        return float(np.mean(np.abs(model.predict(archs[test]) / y[rows[test]] - 1)) * 100)

    additive, logged = mape(False), mape(True)
    assert additive < 2.5 and logged > 1.5 * additive, (additive, logged)
