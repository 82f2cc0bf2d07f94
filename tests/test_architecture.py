"""The layering of docs/architecture.md holds: no import cycles between packages, no package importing one of a
layer above it, the core never importing a plugin distribution, modules of at most 500 lines, and the IR
usable without loading the rest of the toolkit.

The import graph is read statically (`na_toolkit.bench.architecture`, which `na-toolkit bench architecture`
reports from too): every import statement, relative ones and those inside functions included, except those
under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

from conftest import default_toolkit, get_seed
from na_toolkit.bench import architecture as arch_bench
from na_toolkit.bench.reproduce import NB201_SEARCH, PREDICTOR, reproduced, reproduced_by

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE_DOC = REPO_ROOT / "docs" / "architecture.md"
BENCHMARKS = REPO_ROOT / "benchmarks"


def _where(edges: list[arch_bench.ImportEdge]) -> str:
    return "\n".join(f"  {e.path}:{e.line}: {e.importer} imports {e.imported}" for e in edges)


# ---- the layer table: one in the code, the same in the docs ----------------------------------------------
def doc_layers() -> dict[int, tuple[str, ...]]:
    """Layer index -> entries, from the table of docs/architecture.md's "Layers" section."""
    text = ARCHITECTURE_DOC.read_text()
    section = re.search(r"^## Layers\b.*?(?=^## )", text, re.S | re.M)
    assert section, "docs/architecture.md has no '## Layers' section"
    rows = re.findall(r"^\|\s*(\d+)\s*\|[^|\n]*\|([^|\n]*)\|", section.group(0), re.M)
    return {int(i): tuple(re.findall(r"`([^`]+)`", packages)) for i, packages in rows}


def test_docs_layer_table_is_the_code_table():
    code = dict(enumerate(arch_bench.PACKAGE_LAYERS))
    assert doc_layers() == code, "docs/architecture.md's layer table differs from PACKAGE_LAYERS"


def test_docs_list_the_entry_points():
    text = ARCHITECTURE_DOC.read_text()
    for key in arch_bench.ENTRY_POINTS:
        assert f"`{key.removeprefix('na_toolkit.')}`" in text, (
            f"docs/architecture.md does not list the entry point {key}"
        )


def test_entry_points_are_current():
    stale = arch_bench.stale_entry_points(arch_bench.import_edges())
    assert not stale, f"these ENTRY_POINTS no longer build a toolkit: remove them (code and docs): {stale}"


def test_every_package_has_a_layer():
    assert arch_bench.unplaced_units() == [], "place these in PACKAGE_LAYERS and docs/architecture.md"


# ---- the rules, on the real tree --------------------------------------------------------------------------
def test_no_import_cycles_between_packages():
    edges = arch_bench.import_edges()
    cycles = arch_bench.import_cycles(arch_bench.package_graph(edges))
    detail = []
    for group in cycles:
        inside = [
            e for e in edges if arch_bench.unit_of(e.importer) in group and arch_bench.unit_of(e.imported) in group
        ]
        inside = [e for e in inside if arch_bench.unit_of(e.importer) != arch_bench.unit_of(e.imported)]
        detail.append(f"cycle {' <-> '.join(group)}:\n{_where(inside)}")
    assert not cycles, "\n".join(detail)


def test_no_package_imports_one_above_it():
    upward = arch_bench.upward_imports(arch_bench.import_edges())
    assert not upward, f"imports from a higher layer (docs/architecture.md, Layers):\n{_where(upward)}"


def test_the_core_never_imports_a_plugin_distribution():
    found = arch_bench.plugin_imports(arch_bench.import_edges())
    assert not found, f"the core imports a plugin (register through a hook instead):\n{_where(found)}"


def test_every_module_has_at_most_500_lines():
    over = {path: n for path, n in arch_bench.module_lines().items() if n > arch_bench.MAX_MODULE_LINES}
    assert not over, f"modules over {arch_bench.MAX_MODULE_LINES} lines: {over}"


def test_reading_an_architecture_loads_few_modules():
    """`import na_toolkit.ir` plus reading an architecture JSON with the built-in layer types passed explicitly
    loads no plugin manager, no other component: at most 15 na_toolkit modules (a fresh interpreter)."""
    modules = arch_bench.ir_import_modules(get_seed("resnet-cifar").to_json())
    assert "na_toolkit.ir.architecture" in modules
    assert len(modules) <= arch_bench.MAX_IR_IMPORT_MODULES, modules
    assert not {"na_toolkit.plugins", "na_toolkit.toolkit"} & set(modules), modules


# ---- the scanner itself, on a small package -----------------------------------------------------------------
def make_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "na_toolkit"
    for rel, source in files.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return package


def test_scanner_reads_relative_lazy_and_guarded_imports(tmp_path):
    package = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "ir/__init__.py": "from .. import errors\n",
            "ir/core.py": """
                import typing
                from typing import TYPE_CHECKING
                from ..errors import X
                from . import other
                if TYPE_CHECKING:
                    from ..search import loop  # never runs
                else:
                    from ..moves import ops  # runs
                if typing.TYPE_CHECKING:
                    import na_toolkit.store  # never runs
                def f():
                    from ..store import sqlite  # runs when called
                class C:
                    def g(self):
                        import na_toolkit.search.loop  # runs when called
                """,
            "ir/other.py": "",
            "moves/__init__.py": "",
            "moves/ops.py": "",
            "search/__init__.py": "",
            "search/loop.py": "",
            "store/__init__.py": "",
            "store/sqlite.py": "",
        },
    )
    edges = {(e.importer, e.imported) for e in arch_bench.import_edges(package)}
    core = {b for a, b in edges if a == "na_toolkit.ir.core"}
    assert core == {
        "typing",
        "na_toolkit.errors",
        "na_toolkit.ir.other",
        "na_toolkit.moves.ops",
        "na_toolkit.store.sqlite",
        "na_toolkit.search.loop",
    }
    assert ("na_toolkit.ir", "na_toolkit.errors") in edges


def test_scanner_finds_cycles_and_upward_imports(tmp_path):
    package = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "ir/__init__.py": "from ..moves import ops\n",  # upward: ir is below moves
            "moves/__init__.py": "",
            "moves/ops.py": "from ..ir import layers\n",
            "ir/layers.py": "",
            "store/__init__.py": "def f():\n    from .. import search\n",
            "search/__init__.py": "from ..store import x\n",
            "store/x.py": "",
        },
    )
    edges = arch_bench.import_edges(package)
    assert arch_bench.import_cycles(arch_bench.package_graph(edges)) == [["ir", "moves"], ["search", "store"]]
    upward = {(e.importer, e.imported) for e in arch_bench.upward_imports(edges)}
    assert upward == {("na_toolkit.ir", "na_toolkit.moves.ops"), ("na_toolkit.store", "na_toolkit.search")}


def test_only_a_listed_entry_point_may_import_the_composition_root(tmp_path):
    package = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "plugins.py": "from .search import loop\n",
            "search/__init__.py": "",
            "search/loop.py": """
                def run_search(toolkit=None):  # listed in ENTRY_POINTS
                    def default():
                        from ..plugins import load_toolkit
                    from .. import plugins
                def helper():  # not listed
                    from ..plugins import get_toolkit
                """,
            "search/config.py": "from ..plugins import load_toolkit\n",  # module level: never an entry point
        },
    )
    edges = arch_bench.import_edges(package)
    assert {(e.scope, e.line) for e in edges if e.entry_point} == {("run_search.default", 4), ("run_search", 5)}
    upward = {(e.importer, e.scope) for e in arch_bench.upward_imports(edges)}
    assert upward == {("na_toolkit.search.loop", "helper"), ("na_toolkit.search.config", "")}
    assert arch_bench.import_cycles(arch_bench.package_graph(edges)) == [["plugins", "search"]]


def test_a_dotted_entry_sits_apart_from_its_package():
    assert arch_bench.unit_of("na_toolkit.cli.main") == "cli.main"
    assert arch_bench.unit_of("na_toolkit.cli.arch") == "cli"
    assert arch_bench.unit_of("na_toolkit") == "__init__"
    assert arch_bench.unit_of("na_toolkit_nb201.space") is None


# ---- reproduced figures -------------------------------------------------------------------------------------
def test_a_committed_result_reproduces_itself_and_its_subsets(tmp_path):
    committed = BENCHMARKS / "nb201-search.json"
    assert reproduced(NB201_SEARCH, [committed], BENCHMARKS)["reproduced"] is True
    doc = json.loads(committed.read_text())
    doc["params"].update(seeds=2, strategies="random")  # a smaller run of the same benchmark
    first_two = doc["strategies"]["random"]["test_accuracy_per_seed"][:2]
    doc["strategies"] = {"random": {"test_accuracy_per_seed": first_two}}
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps(doc))
    report = reproduced(NB201_SEARCH, [subset], BENCHMARKS)
    assert report["reproduced"] is True and report["files"][0]["compared"] == 2
    # a file of the repository is named relative to it, one outside it as given
    assert report["files"][0]["committed"] == "benchmarks/nb201-search.json"
    assert report["files"][0]["fresh"] == str(subset)


def test_a_mismatch_on_another_cpu_model_says_so(tmp_path):
    # the predictor benchmark's float fits differ across CPU models from the 5th digit: a rerun elsewhere
    # failed with nothing saying why
    doc = json.loads((BENCHMARKS / "nb201-search.json").read_text())
    doc["strategies"]["random"]["test_accuracy_per_seed"][0] += 1e-5
    doc["machine"]["cpu"] = "Another CPU 9000"
    fresh = tmp_path / "elsewhere.json"
    fresh.write_text(json.dumps(doc))
    (file,) = reproduced(NB201_SEARCH, [fresh], BENCHMARKS)["files"]
    committed_cpu = json.loads((BENCHMARKS / "nb201-search.json").read_text())["machine"]["cpu"]
    assert file["reproduced"] is False
    assert file["note"].startswith(f"committed on {committed_cpu}, rerun on Another CPU 9000: fitted figures differ")


def test_a_reports_paths_do_not_name_the_machine(tmp_path):
    """A committed report named its rerun's temporary file (/tmp/bench-architecture-.../nb201-search.json,
    gone when the run ended) and the checkout it ran in (/work/wt-repro/benchmarks/...): a file of the
    repository is named relative to it, a rerun's result by the command that made it."""
    fresh = tmp_path / "nb201-search.json"
    shutil.copy(BENCHMARKS / "nb201-search.json", fresh)
    command = "na-toolkit bench nb201-search --strategies neural-architect --seeds 1"
    (file,) = reproduced(NB201_SEARCH, [fresh], BENCHMARKS, names={fresh: command})["files"]
    assert file["reproduced"] is True
    assert (file["fresh"], file["committed"]) == (command, "benchmarks/nb201-search.json")
    (file,) = reproduced(NB201_SEARCH, [BENCHMARKS / "nb201-search.json"], BENCHMARKS)["files"]
    assert file["fresh"] == "benchmarks/nb201-search.json"


def test_a_changed_seed_or_unknown_params_do_not_reproduce(tmp_path):
    doc = json.loads((BENCHMARKS / "nb201-search-pixel3.json").read_text())
    per_seed = doc["strategies"]["evolution"]["test_accuracy_per_seed"]
    committed_value = per_seed[3]
    per_seed[3] += 1e-3
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(doc))
    report = reproduced(NB201_SEARCH, [changed], BENCHMARKS)
    assert report["reproduced"] is False
    (mismatch,) = report["files"][0]["mismatches"]
    assert mismatch == {"series": "evolution", "seed": 3, "fresh": per_seed[3], "committed": committed_value}
    doc["params"]["evaluations"] = 7
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    assert reproduced(NB201_SEARCH, [other], BENCHMARKS)["files"][0]["committed"] is None
    assert reproduced(NB201_SEARCH, [], BENCHMARKS)["reproduced"] is None


def test_a_result_predating_an_option_matches_that_options_default_only(tmp_path):
    """`--dataset` (default c10) came after results committed without it: a rerun records dataset "c10" where
    they record nothing, and `bench architecture` found "no benchmarks/nb201-search*.json with the same
    params". A parameter one side lacks matches the option's default today (or null), no other value."""
    doc = json.loads((BENCHMARKS / "nb201-search.json").read_text())
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    older = {**doc, "params": {k: v for k, v in doc["params"].items() if k != "dataset"}}  # written before it
    (folder / "nb201-search.json").write_text(json.dumps(older))
    fresh = tmp_path / "fresh.json"
    for dataset, found in (("c10", True), ("c100", False)):
        fresh.write_text(json.dumps({**doc, "params": {**doc["params"], "dataset": dataset}}))
        report = reproduced_by(default_toolkit(), "nb201-search", [fresh], folder, {})
        assert (report["files"][0]["committed"] is not None) is found, report
        assert report["reproduced"] is found
    fresh.write_text(json.dumps({**doc, "params": {**doc["params"], "dataset": "c10"}}))
    assert reproduced(NB201_SEARCH, [fresh], folder)["files"][0]["committed"] is None  # no defaults given


def test_predictor_results_compare_per_seed(tmp_path):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    shutil.copy(BENCHMARKS / "predictor-100.json", folder)
    assert reproduced(PREDICTOR, [BENCHMARKS / "predictor-100.json"], folder)["reproduced"] is True
    assert reproduced(PREDICTOR, [BENCHMARKS / "predictor-500.json"], folder)["reproduced"] is False


# ---- the benchmark -----------------------------------------------------------------------------------------
def test_benchmark_is_registered(toolkit):
    assert toolkit.benchmarks.get("architecture") is arch_bench.BENCHMARK


def test_bench_architecture_prints_the_issue_figures(run_cli):
    res = run_cli("bench", "architecture", "--skip-mypy", "--nb201-result", BENCHMARKS / "nb201-search.json", "--json")
    assert res.returncode == 0, res.stderr
    doc = res.json()
    for key in ("ir_import_modules", "import_cycles", "upward_imports", "largest_module_lines"):
        assert isinstance(doc[key], int), key
    assert doc["mypy_errors"] is None and doc["mypy"]["reason"] == "--skip-mypy"
    assert doc["nb201_search_reproduced"] is True and doc["predictor_reproduced"] is None
    (file,) = doc["nb201_search"]["files"]
    assert file["fresh"] == file["committed"] == "benchmarks/nb201-search.json"
    assert doc["modules"]["largest"].startswith("na_toolkit/")
    assert doc["params"]["benchmark"] == "architecture" and "machine" in doc
