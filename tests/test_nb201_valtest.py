"""docs/nb201.md: the c100 / in16 selection column (`*_valtest_acc_200ep`) is NAS-Bench-201's "valtest", the valid
and test halves together, so it contains the test half it is reported against (not held out from selection)."""

from __future__ import annotations

import numpy as np

from na_toolkit_nb201.table import load_table
from na_toolkit_nb201.table_models import ACCURACY_COLUMNS


def _spread(table, a: str, b: str) -> float:
    x, y = table.column(a), table.column(b)
    known = np.isfinite(x) & np.isfinite(y)
    return float(np.std(x[known] - y[known]))


def test_the_c100_and_in16_selection_columns_contain_the_test_half_they_are_reported_against():
    table = load_table()
    for dataset in ("c100", "in16"):
        # the 12-epoch columns: the disjoint valid and test halves of the same test set
        disjoint = _spread(table, *ACCURACY_COLUMNS[(dataset, 12)])
        selection, reported = ACCURACY_COLUMNS[(dataset, 200)]
        assert selection == f"{dataset}_valtest_acc_200ep"
        # a half shared with the reported column: well below what two disjoint halves differ by
        assert _spread(table, selection, reported) < 0.6 * disjoint
