"""The shape of the code base: the package layering, import cycles, module sizes, mypy, reproduced figures.

`PACKAGE_LAYERS` is the layer table of docs/architecture.md (a test checks the two agree): a package may
import the packages of its own layer and of the layers below, never one above. The import graph is read
statically from the source (every `import` and `from ... import`, relative ones and those inside functions
included; imports under `if TYPE_CHECKING:` are not run, so they do not count).

Figures (`na-toolkit bench architecture --json`):
- `ir_import_modules`: `na_toolkit` modules in `sys.modules` after `import na_toolkit.ir` and reading an
  architecture JSON with the built-in layer types passed explicitly (a fresh interpreter); the list is under
  `ir_import.modules`.
- `import_cycles`: cycles between packages (strongly connected groups), listed under `imports.cycles`;
  `upward_imports`: imports of a package from a layer above, each under `imports.upward` with file and line.
- `largest_module_lines`: the longest `na_toolkit/**/*.py`, named under `modules.largest`.
- `mypy_errors`: mypy over the packages `[tool.mypy] files` lists (null with a reason without mypy or
  outside a source checkout).
- `nb201_search_reproduced`: fresh `bench nb201-search` results (`--nb201-result`) against the committed
  `benchmarks/nb201-search*.json` of the same parameters, per strategy and seed (null without one);
  `predictor_reproduced` likewise for `bench predictor` (`--predictor-result`). `--rerun FILE` makes the fresh
  result itself: the committed FILE's command on its first `--rerun-seeds` seeds (listed under `reruns`).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Benchmark
from .reproduce import reproduced_by, rerun

if TYPE_CHECKING:
    from ..toolkit import Toolkit

PACKAGE = "na_toolkit"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parent

#: The layers, bottom up. An entry is a package of na_toolkit (`ir`), a top-level module (`errors`) or, where
#: one module sits apart from its package, a dotted module (`cli.main`); `__init__` is na_toolkit's own
#: `__init__.py`. Mirrored by the table in docs/architecture.md.
PACKAGE_LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "__init__",
        "errors",
        "hookspecs",
        "registry",
        "validation",
        "caches",
        "files",
        "machine",
        "torchutil",
        "sqlite_wal",
        "data",
    ),
    ("ir",),
    ("moves",),
    ("embedding",),
    ("timemodels", "predictors", "evaluation", "datasets"),
    ("controller",),
    ("store",),
    ("search",),
    ("bench",),
    ("cli",),
    ("plugins", "toolkit", "builtin", "testing"),
    ("cli.main", "__main__"),
)
#: what each layer is, for the docs and the benchmark's output
LAYER_NAMES: tuple[str, ...] = (
    "foundation",
    "IR",
    "moves",
    "network embedding",
    "components",
    "controller",
    "run store",
    "search",
    "benchmarks",
    "commands",
    "composition root",
    "entry point",
)
#: the composition root: what an entry point may import to build a toolkit
COMPOSITION_ROOT: tuple[str, ...] = ("plugins", "toolkit")
#: Functions below the composition root that build a toolkit when the caller gives none, as
#: "module:function" -> why. Only there, and only inside that function (a lazy import), may a lower layer
#: import the composition root; those imports are left out of the cycle and layer checks and reported apart.
ENTRY_POINTS: dict[str, str] = {
    "na_toolkit.search.loop:run_search": "the library's entry point: run_search(config) without a toolkit",
    "na_toolkit.search.finished:open_run": "the library's reader: open_run(run) without a toolkit",
    "na_toolkit.search.demo:run_demo": "the demo's entry point (na-toolkit demo passes its toolkit)",
    "na_toolkit.search.executors:_worker_toolkit": "a worker process rebuilds its task's plugin selection",
    "na_toolkit.bench.gpu_check:main": "a script of its own (benchmarks/gpu_check.sh)",
    "na_toolkit.controller.timing:update_seconds": "the controller-update measurement: its callers pass no toolkit",
}
#: distributions that plug into na_toolkit: the core never imports them (the boundary holds both ways)
PLUGIN_PACKAGES: tuple[str, ...] = ("na_toolkit_nb201", "na_toolkit_example_se")
MAX_IR_IMPORT_MODULES = 15  # the bounds, this and the next
MAX_MODULE_LINES = 500

# ---- the import graph ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportEdge:
    """One import statement's target: `importer` (module) imports `imported` (module) at `path:line`, in the
    function or method `scope` ("" at module or class level)."""

    importer: str
    imported: str
    path: str
    line: int
    scope: str = ""

    @property
    def entry_point(self) -> bool:
        """An entry point's import of the composition root (see `ENTRY_POINTS`)."""
        if not self.scope or unit_of(self.imported) not in COMPOSITION_ROOT:
            return False
        return any(
            self.importer == module and (self.scope == fn or self.scope.startswith(fn + "."))
            for module, _, fn in (key.partition(":") for key in ENTRY_POINTS)
        )


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Module name -> source file, for every `.py` file of the package."""
    return {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py")) if "__pycache__" not in p.parts}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


Scoped = tuple[ast.Import | ast.ImportFrom, str]


def _imports(tree: ast.AST, scope: str = "", in_function: bool = False) -> Iterable[Scoped]:
    """Every import statement that can run, with the qualified name of the function it is in: at module level,
    in functions and classes, under any `if` except the body of `if TYPE_CHECKING:` (its `else` runs)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                yield from _imports_in(stmt, scope, in_function)
        else:
            yield from _imports_in(child, scope, in_function)


def _imports_in(node: ast.AST, scope: str, in_function: bool) -> Iterable[Scoped]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, scope if in_function else ""
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        name = f"{scope}.{node.name}" if scope else node.name
        yield from _imports(node, name, in_function or not isinstance(node, ast.ClassDef))
        return
    yield from _imports(node, scope, in_function)


def import_edges(package_dir: Path = PACKAGE_DIR) -> list[ImportEdge]:
    """Every import of every module of the package, resolved to module names (relative imports included;
    `from pkg import name` points at `pkg.name` when that is a module, else at `pkg`)."""
    modules = source_modules(package_dir)
    edges: list[ImportEdge] = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        rel_path = path.relative_to(package_dir.parent).as_posix()
        for stmt, scope in _imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(stmt, ast.Import):
                edges.extend(ImportEdge(name, alias.name, rel_path, stmt.lineno, scope) for alias in stmt.names)
                continue
            if stmt.level:
                base_parts = package.split(".")[: len(package.split(".")) - (stmt.level - 1)]
                base = ".".join(base_parts + ([stmt.module] if stmt.module else []))
            else:
                base = stmt.module or ""
            for alias in stmt.names:
                sub = f"{base}.{alias.name}"
                edges.append(ImportEdge(name, sub if sub in modules else base, rel_path, stmt.lineno, scope))
    return list(dict.fromkeys(edges))  # `from m import a, b` is one import of m


#: table entry -> its layer index (0 = bottom)
LAYER_OF: dict[str, int] = {entry: i for i, layer in enumerate(PACKAGE_LAYERS) for entry in layer}


def unit_of(module: str) -> str | None:
    """The table entry a module of na_toolkit belongs to (the most specific one), None outside na_toolkit."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    rest = module[len(PACKAGE) + 1 :]
    if not rest:
        return "__init__"
    parts = rest.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYER_OF:
            return ".".join(parts[:n])
    return parts[0]  # a package the table does not place (reported by `unplaced_units`)


def package_graph(edges: Iterable[ImportEdge]) -> dict[str, set[str]]:
    """Unit -> the units it imports (imports within a unit and entry points' imports left out)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        a, b = unit_of(e.importer), unit_of(e.imported)
        if e.entry_point:
            b = None
        if a is not None:
            graph.setdefault(a, set())
            if b is not None and b != a:
                graph[a].add(b)
    return graph


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one unit (Tarjan), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # the graph has a few dozen nodes: recursion depth is no concern
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def upward_imports(edges: Iterable[ImportEdge]) -> list[ImportEdge]:
    """Imports of a unit from a higher layer than the importer's (entry points' imports left out)."""
    out = []
    for e in edges:
        if e.entry_point:
            continue
        importer, imported = LAYER_OF.get(unit_of(e.importer) or ""), LAYER_OF.get(unit_of(e.imported) or "")
        if importer is not None and imported is not None and imported > importer:
            out.append(e)
    return out


def stale_entry_points(edges: Iterable[ImportEdge]) -> list[str]:
    """`ENTRY_POINTS` keys that no longer import the composition root (remove them from the list)."""
    used = [e for e in edges if e.entry_point]

    def current(key: str) -> bool:
        module, _, fn = key.partition(":")
        return any(e.importer == module and (e.scope == fn or e.scope.startswith(fn + ".")) for e in used)

    return sorted(key for key in ENTRY_POINTS if not current(key))


def plugin_imports(edges: Iterable[ImportEdge]) -> list[ImportEdge]:
    """Imports of a plugin distribution by the core."""
    return [e for e in edges if e.imported.split(".")[0] in PLUGIN_PACKAGES]


def unplaced_units(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Packages and top-level modules of na_toolkit that the layer table does not place."""
    units = {unit_of(m) for m in source_modules(package_dir)}
    return sorted(u for u in units if u is not None and u not in LAYER_OF)


def edge_json(e: ImportEdge) -> dict[str, Any]:
    """The edge with the layer of each end (`"timemodels (components, layer 4)"`)."""

    def layer(module: str) -> str | None:
        unit = unit_of(module)
        i = LAYER_OF.get(unit or "")
        return None if i is None else f"{unit} ({LAYER_NAMES[i]}, layer {i})"

    return {**asdict(e), "importer_layer": layer(e.importer), "imported_layer": layer(e.imported)}


def import_report(package_dir: Path = PACKAGE_DIR) -> dict[str, Any]:
    edges = import_edges(package_dir)
    graph = package_graph(edges)
    return {
        "cycles": import_cycles(graph),
        "upward": [edge_json(e) for e in upward_imports(edges)],
        "plugin_imports": [edge_json(e) for e in plugin_imports(edges)],
        "entry_points": [edge_json(e) for e in edges if e.entry_point],
        "stale_entry_points": stale_entry_points(edges),
        "unplaced": unplaced_units(package_dir),
        "graph": {k: sorted(v) for k, v in sorted(graph.items())},
    }


# ---- module sizes ----------------------------------------------------------------------------------------


def module_lines(package_dir: Path = PACKAGE_DIR) -> dict[str, int]:
    """Source file (relative to the repository) -> lines, longest first."""
    sizes = {
        p.relative_to(package_dir.parent).as_posix(): len(p.read_text().splitlines())
        for p in source_modules(package_dir).values()
    }
    return dict(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])))


# ---- what `import na_toolkit.ir` costs ---------------------------------------------------------------------

_IR_PROBE = """
import json, sys
import na_toolkit.ir
from na_toolkit.builtin.layers import builtin_layer_types
from na_toolkit.ir.architecture import Architecture
with open(sys.argv[1]) as f:
    arch = Architecture.from_json(json.load(f), layer_types=builtin_layer_types())
arch.hash
print(json.dumps(sorted(m for m in sys.modules if m.startswith("na_toolkit"))))
"""


def ir_import_modules(arch_json: Mapping[str, Any], timeout_s: float = 120.0) -> list[str]:
    """The `na_toolkit*` modules a fresh interpreter holds after `import na_toolkit.ir` and reading
    `arch_json` (an architecture document of built-in layer types) with the built-in layer types."""
    with tempfile.TemporaryDirectory(prefix="na-arch-") as tmp:
        path = Path(tmp) / "arch.json"
        path.write_text(json.dumps(arch_json))
        proc = subprocess.run(
            [sys.executable, "-c", _IR_PROBE, str(path)], capture_output=True, text=True, timeout=timeout_s, cwd=tmp
        )
    if proc.returncode != 0:
        raise RuntimeError(f"the IR import probe failed:\n{proc.stderr[-3000:]}")
    modules: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return modules


# ---- mypy ------------------------------------------------------------------------------------------------

_MYPY_ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):(?P<line>\d+): error: (?P<message>.*)$")


def mypy_report(repo_root: Path = REPO_ROOT, timeout_s: float = 900.0) -> dict[str, Any]:
    """`mypy` with the repository's configuration: {"errors": n or None, "reason", "messages", "files"}."""
    pyproject = repo_root / "pyproject.toml"
    if not pyproject.is_file() or "[tool.mypy]" not in pyproject.read_text():
        return {"errors": None, "reason": f"no [tool.mypy] in {pyproject} (not a source checkout)"}
    try:
        import mypy  # noqa: F401  (only whether it is installed)
    except ModuleNotFoundError:
        return {"errors": None, "reason": "mypy is not installed (pip install -e '.[dev]')"}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(pyproject), "--no-color-output", "--no-error-summary"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=repo_root,
    )
    messages = [line for line in proc.stdout.splitlines() if _MYPY_ERROR.match(line)]
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not messages):
        return {"errors": None, "reason": f"mypy exited {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}"}
    files = sorted({m.split(":", 1)[0] for m in messages})
    return {"errors": len(messages), "reason": None, "messages": messages, "files": files}


# ---- the benchmark -------------------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nb201-result",
        action="append",
        default=[],
        metavar="PATH",
        help="a fresh `bench nb201-search --out PATH` result to compare with the committed one of "
        "the same params (repeatable)",
    )
    parser.add_argument(
        "--predictor-result",
        action="append",
        default=[],
        metavar="PATH",
        help="a fresh `bench predictor --out PATH` result to compare likewise (repeatable)",
    )
    parser.add_argument(
        "--rerun",
        action="append",
        default=[],
        metavar="FILE",
        help="a committed nb201-search or predictor result to run again (its params, today's option names) on "
        "its first --rerun-seeds seeds and compare (repeatable)",
    )
    parser.add_argument("--rerun-seeds", type=int, default=1, help="seeds of each --rerun (default 1)")
    parser.add_argument(
        "--seed-network",
        default="resnet-cifar",
        help="the seed whose JSON the IR import probe reads (default resnet-cifar)",
    )
    parser.add_argument("--skip-mypy", action="store_true", help="do not run mypy (mypy_errors is null)")
    parser.add_argument(
        "--benchmarks-dir",
        default=None,
        help="where the committed results are (default: the repository's benchmarks/)",
    )


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    arch = toolkit.seed(args.seed_network)
    modules = ir_import_modules(arch.to_json())
    imports = import_report()
    sizes = module_lines()
    largest = next(iter(sizes.items()))
    layers = [{"layer": i, "name": n, "packages": list(p)} for i, (n, p) in enumerate(zip(LAYER_NAMES, PACKAGE_LAYERS))]
    mypy = {"errors": None, "reason": "--skip-mypy"} if args.skip_mypy else mypy_report()
    folder = Path(args.benchmarks_dir) if args.benchmarks_dir else REPO_ROOT / "benchmarks"
    with tempfile.TemporaryDirectory(prefix="bench-architecture-") as tmp:
        reruns = [rerun(Path(f), args.rerun_seeds, Path(tmp), toolkit) for f in args.rerun]
        fresh = {name: [r.result for r in reruns if r.benchmark == name] for name in ("nb201-search", "predictor")}
        names = {r.result: r.command for r in reruns}  # a temporary file: named by the command that made it
        nb201 = reproduced_by(toolkit, "nb201-search", [*args.nb201_result, *fresh["nb201-search"]], folder, names)
        predictor = reproduced_by(toolkit, "predictor", [*args.predictor_result, *fresh["predictor"]], folder, names)
    return {
        "ir_import_modules": len(modules),
        "import_cycles": len(imports["cycles"]),
        "upward_imports": len(imports["upward"]),
        "largest_module_lines": largest[1],
        "mypy_errors": mypy["errors"],
        "nb201_search_reproduced": nb201["reproduced"],
        "predictor_reproduced": predictor["reproduced"],
        "target": {
            "ir_import_modules": MAX_IR_IMPORT_MODULES,
            "import_cycles": 0,
            "upward_imports": 0,
            "largest_module_lines": MAX_MODULE_LINES,
            "mypy_errors": 0,
            "met": bool(
                len(modules) <= MAX_IR_IMPORT_MODULES
                and not imports["cycles"]
                and not imports["upward"]
                and largest[1] <= MAX_MODULE_LINES
                and mypy["errors"] == 0
            ),
        },
        "ir_import": {"seed_network": args.seed_network, "modules": modules},
        "imports": imports,
        "modules": {
            "largest": largest[0],
            "over_limit": {k: v for k, v in sizes.items() if v > MAX_MODULE_LINES},
            "count": len(sizes),
            "total_lines": sum(sizes.values()),
        },
        "mypy": mypy,
        "nb201_search": nb201,
        "predictor": predictor,
        "reruns": [{"committed": r.committed, "command": r.command, "wall_s": r.wall_s} for r in reruns],
        "layers": layers,
    }


BENCHMARK = Benchmark(
    name="architecture",
    help="the code base's shape: IR import cost, import cycles and layering, module sizes, mypy, reproduced figures",
    configure=configure,
    run=run,
)


if __name__ == "__main__":  # `python -m na_toolkit.bench.architecture`: the import report alone, no toolkit
    report = import_report()
    json.dump(report, sys.stdout, indent=2)
    print()
    sys.exit(1 if report["cycles"] or report["upward"] or report["unplaced"] else 0)
