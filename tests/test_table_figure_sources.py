"""A latency read from the NAS-Bench-201 table was measured, by the table's authors, on their device: its
figure source is "measured elsewhere" with the table and the device, neither "measured" (here) nor "estimated"
(a model); the table's simulated devices (Eyeriss, FPGA) are "estimated". What a run makes of it (summary.json's
metric_sources, report.md, report.html, the printed Pareto table) is checked on the runs the search tests make
anyway: tests/test_search_cli.py, test_provenance.py, test_report_html.py (with a run recorded under the old
"estimated" label)."""

import pytest

from na_toolkit.plugins import load_toolkit

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
TK = load_toolkit()


def _table_model(device, **options):
    return TK.time_models.get("nb201-table")(device, **options)


def test_table_columns_say_who_measured_them_on_which_device(tmp_path):
    pixel3 = _table_model("lat_pixel3").figure_source("latency_ms")
    assert pixel3.kind == "measured elsewhere"
    assert pixel3.how.startswith("table: HW-NAS-Bench (Li et al., ICLR 2021), pixel3: measured by its authors")
    assert "Google Pixel 3" in pixel3.how and "not here" in pixel3.how
    gold = _table_model("gold_6226").figure_source("latency_ms")
    assert gold.kind == "measured elsewhere" and "HELP (Lee et al., NeurIPS 2021), gold_6226" in gold.how
    for device in ("titan_rtx", "titan_rtx_32"):  # the bare GPU name and a batch size's column
        source = _table_model(device).figure_source("latency_ms")
        assert source.kind == "measured elsewhere" and "NVIDIA Titan RTX" in source.how
    eyeriss = _table_model("eyeriss").figure_source("latency_ms")
    assert eyeriss.kind == "estimated" and "simulated" in eyeriss.how and "not measured" in eyeriss.how
    assert _table_model("pixel3").figure_source("peak_memory_bytes") is None  # the table holds latencies only
    mine = tmp_path / "my-latencies.csv"  # a table of the user's: whose measurements it holds is not known here
    custom = _table_model("pixel3", table=str(mine)).figure_source("latency_ms")
    assert custom.kind == "measured elsewhere" and custom.how == "table: my-latencies.csv, pixel3; not measured here"
