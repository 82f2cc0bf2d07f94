"""report.html: self-contained (no external URL, no script library), well formed, every figure carries the
data it draws, and the controller's learning curves and the moves of the best networks are in it."""

import copy
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from na_toolkit.plugins import load_toolkit
from na_toolkit.search.figure_sources import metric_sources
from na_toolkit.search.loop import run_search
from na_toolkit.search.outputs import pareto_table, report_markdown
from na_toolkit.search.plots import CONTROLLER_PANELS, plot_controller, report_panels
from na_toolkit.search.report_html import report_html
from test_search_cli import CONFIG

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")

NA = CONFIG.replace("evaluations = 10", "evaluations = 9").replace(
    'name = "evolution"\noptions = { population = 4, sample = 2 }',
    'name = "neural-architect"\noptions = { episodes = 4, updates = 2, episode_length = 2, explore_episodes = 2 }',
)
VOID = {"meta", "br", "hr", "img", "input", "link"}


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.data = [], [], []
        self._in_data = False

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        self.stack.append(tag)
        self._in_data = tag == "script" and ("class", "figure-data") in attrs

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()
        self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data.append(json.loads(data))


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    (tmp / "s.toml").write_text(NA)
    result = run_search(tmp / "s.toml", progress=False, toolkit=load_toolkit())
    return result, (result.run_dir / "report.html").read_text()


def test_the_page_is_self_contained_and_well_formed(page):
    result, text = page
    assert text.startswith("<!DOCTYPE html>") and result.outputs["report_html"].endswith("report.html")
    assert not re.search(r"https?://|src=|<link|@import", text)  # nothing is fetched
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.errors == [] and checker.stack == []


def test_every_figure_carries_the_data_it_draws(page):
    result, text = page
    figures = re.findall(r'<figure class="figure">(.*?)</figure>', text, re.S)
    checker = _Checker()
    checker.feed(text)
    assert len(figures) == len(checker.data) >= 4  # progress, 2 trade-offs, controller curves
    for svg, data in zip(figures, checker.data):
        dots = sum(len(s["points"]) for s in data["series"] if s.get("kind") != "line")
        assert svg.count("<circle") == dots
        assert svg.count("<polyline") == sum(1 for s in data["series"] if s.get("kind") == "line" and s["points"])
    titles = [d["title"] for d in checker.data]
    assert "reward over the evaluations" in titles
    title = "accuracy vs latency_ms@pixel3 (measured elsewhere (table: HW-NAS-Bench (Li et al., ICLR 2021), pixel3:"
    assert any(t.startswith(title) for t in titles)
    assert "policy entropy" in titles  # the controller's learning
    # the trade-offs' axes carry units, accuracy in % as the report's tables (before: a fraction, no units)
    tradeoff = checker.data[next(i for i, t in enumerate(titles) if t.startswith(title))]
    assert (tradeoff["x"], tradeoff["y"]) == ("latency_ms@pixel3 (ms)", "validation accuracy (%)")
    best = max(result.evaluated, key=lambda e: e.score.metrics.get("accuracy", 0))
    drawn = [y for series in tradeoff["series"] for _, y in series["points"]]
    assert max(drawn) == pytest.approx(100 * best.score.metrics["accuracy"])
    progress = checker.data[titles.index("reward over the evaluations")]
    assert len(progress["series"][0]["points"]) == len(result.evaluated)


def test_a_run_recorded_when_tables_were_labelled_estimated_still_renders_so(page):
    """Before "measured elsewhere", a table's latency was recorded as "estimated": such a run folder's summary
    loads and renders with the label it was recorded with, in its metric_sources or (older still) only in its
    provenance's device entry."""
    result, _ = page
    old = copy.deepcopy(result.summary())
    source = {"kind": "estimated", "how": "time model nb201-table of lat_pixel3", "by": "time_model nb201-table"}
    old["metric_sources"] = {"latency_ms@pixel3": source}
    assert "| latency pixel3 (ms, estimated) |" in report_markdown(old)
    assert "latency_ms@pixel3 (estimated (time model nb201-table of lat_pixel3))" in html.unescape(report_html(old))
    device = old["provenance"]["events"][0]["components"]["devices"]["pixel3"]
    del device["figures"], old["metric_sources"]
    device["estimate"] = "estimated (nb201-table)"
    assert metric_sources(old["provenance"])["latency_ms@pixel3"]["kind"] == "estimated"
    assert "latency pixel3 (ms, estimated)" in pareto_table(old).splitlines()[0]
    device["estimate"] = "measured elsewhere (nb201-table)"
    assert "latency pixel3 (ms, measured elsewhere)" in pareto_table(old).splitlines()[0]


def test_a_plugin_strategys_report_is_drawn_with_its_own_series(page, tmp_path):
    """A plugin strategy's `report` (docs/plugin_hooks.md: per-update `series`, `totals`) holds figures of its
    own: controller.png and the page draw those, not neural-architect's three panels left empty ("no updates
    (policy not trained)", "policy ?") as they did."""
    result, _ = page
    summary = copy.deepcopy(result.summary())
    series = [{"ask": 1, "walks": 4, "best_predicted_reward": 0.9, "stalled": False}, {"ask": 2, "walks": 2}]
    summary["controller"] = {"series": series, "totals": {"asks": 2}}
    assert report_panels(series) == [("walks", "walks"), ("best_predicted_reward", "best_predicted_reward")]
    checker = _Checker()
    checker.feed(report_html(summary))
    titles = [d["title"] for d in checker.data]
    assert "walks" in titles and "best_predicted_reward" in titles and "policy entropy" not in titles
    assert plot_controller(summary["controller"], tmp_path / "c.png", "run")
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert not plot_controller({"series": [{"ask": 1, "note": "x"}]}, tmp_path / "none.png")  # nothing to draw
    assert report_panels([{"ask": 1.0, "entropy": 1.2}]) == list(CONTROLLER_PANELS)  # neural-architect's


def test_best_networks_come_with_their_moves(page):
    result, text = page
    best = result.summary()["best"]["pixel3"]
    # the seeded search finds a network within the budget, some moves away from its seed
    assert best is not None and best["moves"] and "no network met the budgets" not in text
    assert best["arch_hash"] in text
    assert all(m["operation"] in text for m in best["moves"])
    # its accuracy as report.md and the CLI show it, a percentage (the page showed the fraction, 0.9944)
    cell = re.search(rf"<tr><td>pixel3</td><td><code>{best['arch_hash']}</code></td><td>([^<]*)</td>", text)
    percent = f"{100 * best['metrics']['accuracy']:.2f}%"
    assert cell is not None and cell.group(1) == percent
    assert "<th>network</th><th>valid acc</th>" in text  # the column as report.md names it (it said "accuracy")
    assert f"pixel3: best {best['arch_hash']} valid acc {percent}," in (result.run_dir / "report.md").read_text()
    # a device no network met the budgets of says so in its row
    summary = copy.deepcopy(result.summary())
    summary["best"]["pixel3"] = None
    assert "<tr><td>pixel3</td><td colspan='4'>no network met the budgets</td></tr>" in report_html(summary)


@pytest.mark.skipif(not shutil.which("chromium"), reason="Chromium is not installed here")
def test_chromium_renders_it_without_console_errors(page, tmp_path):
    result, _ = page
    p = subprocess.run(
        ["chromium", "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--dump-dom",
         (result.run_dir / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0 and "<svg" in p.stdout
    assert "CONSOLE" not in p.stderr.upper() or "ERROR" not in p.stderr.upper()
