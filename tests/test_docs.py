"""The docs keep up with the code (datasette's test_docs.py habit).

- docs/plugin_hooks.md has a section per hook of na_toolkit/hookspecs.py, with the signature exactly as in
  the code, and no section for a hook that does not exist;
- each section's example is a working plugin: executed as a module and loaded, it registers what it says
  (and what it registers works);
- docs/cli.md mentions every built-in command;
- every document the code and the docs cite exists in the repository (docs/architecture.md holds what the
  code relies on; nothing points at design notes kept elsewhere);
- what a reader copies works as far as it can be checked without running it: the command lines in the docs
  use options their command has, TOML blocks are configs that resolve (or hardware models that load), the
  na_toolkit names they import or mention exist, and the repository files they name are there.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import types
from pathlib import Path

import numpy as np
import pytest

from na_toolkit import hookspecs
from na_toolkit.builtin.commands import COMMAND_MODULES
from na_toolkit.plugins import REGISTRIES, load_toolkit

REPO_ROOT = Path(__file__).resolve().parents[1]
HOOKS_DOC = REPO_ROOT / "docs" / "plugin_hooks.md"
CLI_DOC = REPO_ROOT / "docs" / "cli.md"
HOOKS = sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("na_"))


def signature_line(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name))

    def text(annotation):  # string under `from __future__ import annotations`, else a class
        return annotation if isinstance(annotation, str) else annotation.__name__

    params = ", ".join(f"{p.name}: {text(p.annotation)}" for p in sig.parameters.values())
    return f"def {name}({params}) -> {text(sig.return_annotation)}"


def sections() -> dict[str, str]:
    """Hook name -> text of its `## `hook`` section."""
    parts = re.split(r"^## `([^`]+)`[ \t]*$", HOOKS_DOC.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_hooks_found():
    assert "na_register_layer_types" in HOOKS and len(HOOKS) >= 10


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_documented_with_its_exact_signature(hook):
    docs = sections()
    assert hook in docs, f"docs/plugin_hooks.md has no '## `{hook}`' section"
    code_lines = {
        line.strip() for block in re.findall(r"```python\n(.*?)```", docs[hook], re.S) for line in block.splitlines()
    }
    assert signature_line(hook) in code_lines, (
        f"signature of {hook} in docs differs from hookspecs.py: {signature_line(hook)}"
    )


def test_no_section_for_a_hook_that_does_not_exist():
    assert set(sections()) <= set(HOOKS), set(sections()) - set(HOOKS)


# ---- the examples are working plugins ------------------------------------------------------------------
def example_plugin(hook: str, tmp_path) -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", sections()[hook], re.S)
    source = next(b for b in reversed(blocks) if "@na_toolkit.hookimpl" in b)
    module = types.ModuleType(f"docs_example_{hook}")
    module.__file__ = str(tmp_path / "plugin.py")
    exec(compile(source, f"docs/plugin_hooks.md#{hook}", "exec"), module.__dict__)
    return module


def check_layer_types(tk, capsys):
    from na_toolkit.cli.arch import onnx_parity_max_abs_err
    from na_toolkit.ir.builder import ArchitectureBuilder

    b = ArchitectureBuilder((3, 4, 4), layer_types=tk.layer_types)
    b.layer("swish", b.layer("conv2d", b.input, filters=4))
    assert onnx_parity_max_abs_err(b.build()) <= 1e-4


def check_operations(tk, capsys):
    arch = tk.seed("simple-cnn")
    op = tk.moves.get("insert_relu")
    new = op.apply(arch, **op.sample(arch, np.random.default_rng(0)))
    assert len(new.nodes) == len(arch.nodes) + 1 and sum(n.type == "relu" for n in new.nodes) == 3


def check_seeds(tk, capsys):
    from na_toolkit.datasets import get_dataset

    arch, seed = tk.seed("tiny-mlp"), tk.seeds.get("tiny-mlp")
    # built for the dataset it names: the example took (64,), which a search on digits (1, 8, 8) refused
    digits = get_dataset(seed.dataset, tk.datasets)
    assert arch.input_shape == digits.input_shape and arch.output_shape == (digits.classes,)


def check_predictors(tk, capsys):
    from na_toolkit.testing import check_predictor

    check_predictor("mean", tk)  # the plugin kit: fit/predict checks, scikit-learn conventions, saving
    archs = [tk.seed("simple-cnn")] * 3
    assert list(tk.predictors.get("mean")().fit(archs, [1.0, 2.0, 3.0]).predict(archs[:2])) == [2.0, 2.0]


def check_time_models(tk, capsys):
    from na_toolkit.errors import ConfigError
    from na_toolkit.testing import check_time_model
    from na_toolkit.timemodels.hwmodel import load_hardware_model

    check_time_model("flops-rate", tk, seeds=["simple-cnn"])  # the plugin kit: the contract, unknown options refused
    arch = tk.seed("simple-cnn")
    est = tk.time_models.get("flops-rate").from_toolkit(tk, device="h100-sxm").estimate(arch)
    peak_flops_per_s = load_hardware_model("h100-sxm", tk.hardware).flops_per_s("fp32")
    assert est.device == "h100-sxm" and est.latency_ms == pytest.approx(arch.flops / (0.5 * peak_flops_per_s) * 1e3)
    with pytest.raises(ConfigError, match="efficency: unknown key. Did you mean"):
        tk.time_models.get("flops-rate").from_toolkit(tk, efficency=0.9)


def check_hardware(tk, capsys):
    assert tk.hardware.get("my-board").kind == "model"


def check_evaluators(tk, capsys):
    arch = tk.seed("simple-cnn")
    assert 0 < tk.evaluators.get("param-oracle")().evaluate(arch).valid_accuracy < 1


def check_datasets(tk, capsys):
    data = tk.datasets.get("stripes").load(seed=0)
    assert data.classes == 2 and data.samples == 200


def check_commands(tk, capsys):
    assert tk.commands.get("hello").run(argparse.Namespace(name="plugin author")) == 0
    assert capsys.readouterr().out == "hello, plugin author\n"


def check_benchmarks(tk, capsys, registered=()):
    # every benchmark the example registers runs with its default arguments and returns its figures
    for name in registered:
        benchmark = tk.benchmarks.get(name)
        parser = argparse.ArgumentParser()
        benchmark.configure(parser)
        figures = benchmark.run(parser.parse_args([]), tk)
        assert isinstance(figures, dict) and figures, f"benchmark {name!r} returned {figures!r}"
        json.dumps(figures)  # what `na-toolkit bench NAME --json` prints


def check_strategies(tk, capsys, registered=()):
    from na_toolkit.testing import ConformanceWarning, check_strategy

    for name in registered:  # the strategy contract: runs ask/tell rounds, reproducible, options checked
        # the example is a module made here (exec), which a fresh process cannot import: that part is told
        with pytest.warns(ConformanceWarning, match="not checked in a fresh process: the plugin module"):
            check_strategy(name, tk, moves=("insert_conv", "scale"))


CHECKS = {name: globals().get(f"check_{attr}") for name, (attr, _cls) in REGISTRIES.items()}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_example_is_a_working_plugin(hook, tmp_path, capsys):
    (tmp_path / "hardware").mkdir()
    (tmp_path / "hardware" / "my-board.toml").write_text('name = "my-board"\n')
    module = example_plugin(hook, tmp_path)
    tk = load_toolkit(entry_points=False, extra_plugins=(module,))
    attr = REGISTRIES[hook][0]
    registered = tk.plugins[module.__name__].registered.get(attr)
    assert registered, f"the {hook} example registers nothing"
    check = CHECKS.get(hook)
    if check in (check_benchmarks, check_strategies):
        check(tk, capsys, registered)
    elif check is not None:  # executors need a running search: registration is the check
        check(tk, capsys)


# ---- CLI reference ---------------------------------------------------------------------------------------
def test_cli_doc_mentions_every_builtin_command():
    import importlib

    text = CLI_DOC.read_text()
    for module_name in COMMAND_MODULES:
        for command in importlib.import_module(module_name).COMMANDS:
            assert re.search(rf"^#+ `na-toolkit {re.escape(command.name)}\b", text, re.M), (
                f"docs/cli.md has no heading for `na-toolkit {command.name}`"
            )


# ---- cited documents exist ---------------------------------------------------------------------------------
#: files a run writes (cited by the code that writes them), not documents of the repository
GENERATED_DOCUMENTS = {"report.md"}
CITING = ("na_toolkit", "docs", "plugins", "tests", "examples", "README.md", "setup.cfg", "Makefile")


def _text_files() -> list[Path]:
    files: list[Path] = []
    for name in CITING:
        path = REPO_ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p
                for p in path.rglob("*")
                if p.suffix in {".py", ".md", ".toml", ".cfg"} and p.is_file() and ".egg-info" not in str(p)
            )
    return files


def test_cited_documents_exist():
    """A markdown file cited in a docstring, comment or document is in the repository (its path may be
    given from the repository root, from the citing file's folder, or as the trailing part of a path)."""
    documents = [p.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.rglob("*.md") if ".venv" not in p.parts]
    missing, checked = [], 0
    for path in _text_files():
        for cited in set(re.findall(r"(?<![\w/.-])([\w./-]*\w\.md)\b", path.read_text(errors="replace"))):
            if cited in GENERATED_DOCUMENTS or cited.startswith(("http", "/")):
                continue
            checked += 1
            local = (path.parent / cited).resolve()
            if local.is_file() or any(d == cited or d.endswith("/" + cited) for d in documents):
                continue
            missing.append(f"{path.relative_to(REPO_ROOT)} cites {cited}")
    assert checked >= 100, f"only {checked} cited documents found: the scan reads no docs"  # ~half of today
    assert not missing, (
        "documents cited but not in the repository (what the code relies on belongs in "
        "docs/architecture.md):\n" + "\n".join(sorted(missing))
    )


# ---- what a reader copies: commands, configs, Python names ---------------------------------------------
#: the documents a user reads and copies from
READ_DOCUMENTS = sorted([REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")]) + sorted(
    (REPO_ROOT / "plugins").glob("*/README.md")
)
#: fenced blocks of shell commands (no language, or a shell's)
SHELL_BLOCK = re.compile(r"^```(?:sh|bash|console)?\n(.*?)^```", re.S | re.M)
#: a flag in a command line: `--out`, `[--json]`, `(--device`, `-v|-vv|-q`; not the minus of `1e-4` or `x - mean`
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def _doc_name(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def command_lines(text: str) -> list[str]:
    """The one-line code spans and the lines of shell blocks (a trailing `\\` joins the next line), each
    without its comment and without a leading `na-toolkit ` or `python -m na_toolkit `."""
    lines = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)
    for block in SHELL_BLOCK.findall(text):
        lines += block.replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        line = re.sub(r"\s#.*$", "", line)
        out.append(re.sub(r"^.*?\b(?:na-toolkit|python -m na_toolkit) ", "", line).strip())
    return out


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def unknown_flags(parser: argparse.ArgumentParser, words: list[str]) -> tuple[str, list[str]]:
    """(the command path the words name, the flags in them that command does not take). A placeholder where a
    subcommand goes (`bench NAME --json`) allows the flags of any of its subcommands."""
    path: list[str] = []
    allowed = set(parser._option_string_actions)
    current, rest = parser, words
    while rest and (subs := _subparsers(current)):
        if rest[0] in subs:
            path.append(rest[0])
            current, rest = subs[rest[0]], rest[1:]
            continue
        for sub in subs.values():  # a placeholder: any subcommand's flags
            allowed |= set(sub._option_string_actions)
        break
    allowed |= set(current._option_string_actions)
    flags = FLAG.findall(" ".join(rest))
    return " ".join(path), [f for f in flags if f not in allowed and not re.fullmatch(r"-v+", f)]


def test_commands_in_the_docs_use_options_their_command_has():
    """Every command line a document shows (`na-toolkit predict fit --data ...`, `search --resume RUN`) uses
    flags that command has: a renamed or removed option is a command that fails as copied."""
    from na_toolkit.cli.main import build_parser

    parser = build_parser(load_toolkit())
    commands = _subparsers(parser)
    wrong, checked = [], 0
    for path in READ_DOCUMENTS:
        for line in command_lines(path.read_text()):
            words = line.split()
            if not words or words[0] not in commands or not FLAG.search(" ".join(words[1:])):
                continue
            command, flags = unknown_flags(parser, words)
            checked += 1
            if flags:
                wrong.append(f"{_doc_name(path)}: `na-toolkit {command}` has no {', '.join(flags)}: {line}")
    assert checked >= 50, f"only {checked} command lines found: the scan reads no docs"  # ~half of today
    assert not wrong, "commands in the docs with options their command does not have:\n" + "\n".join(wrong)


def test_unknown_flags_finds_a_misspelt_option():
    from na_toolkit.cli.main import build_parser

    parser = build_parser(load_toolkit())
    assert unknown_flags(parser, "predict fit --data D --target accuracy".split()) == ("predict", [])
    assert unknown_flags(parser, "predict fit --dat D".split()) == ("predict", ["--dat"])
    assert unknown_flags(parser, "arch export resnet --onnx x.onnx --chek".split()) == ("arch export", ["--chek"])
    assert unknown_flags(parser, "bench NAME --json -vv".split()) == ("bench", [])
    assert command_lines("`na-toolkit hw show NAME --json`, `search --resume RUN`  # comment") == [
        "hw show NAME --json",
        "search --resume RUN",
    ]


def _toml_blocks() -> list[tuple[str, str]]:
    return [
        (_doc_name(path), block)
        for path in READ_DOCUMENTS
        for block in re.findall(r"^```toml\n(.*?)^```", path.read_text(), re.S | re.M)
    ]


def _relative_files(value) -> list[str]:
    """The relative file paths named anywhere in a config document."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in _relative_files(v)]
    if isinstance(value, list):
        return [p for v in value for p in _relative_files(v)]
    if isinstance(value, str) and re.fullmatch(r"[\w./-]+\.(json|toml|onnx|npz|csv)", value):
        return [value]
    return []


@pytest.mark.parametrize("where,block", _toml_blocks(), ids=lambda v: v if v.endswith(".md") else "")
def test_toml_in_the_docs_is_valid(where, block, tmp_path, monkeypatch):
    """A TOML block is a hardware model that loads, or (a fragment of) a search config that resolves: its
    keys, component names and every component's options (the fragment completed with a seed network and an
    evaluation budget; the files it names made empty where it runs)."""
    import tomllib

    from na_toolkit.search.config import load_config
    from na_toolkit.timemodels.hwmodel import load_hardware_model

    doc = tomllib.loads(block)
    if "peak_flops_per_s" in doc:
        path = tmp_path / f"{doc.get('name', 'model')}.toml"
        path.write_text(block)
        assert load_hardware_model(path).name == path.stem
        return
    monkeypatch.chdir(tmp_path)
    for name in _relative_files(doc):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    config = load_config({"seed_network": "simple-cnn", "evaluations": 4, **doc}, toolkit=load_toolkit())
    assert config is not None, where


def _python_blocks() -> list[tuple[str, str]]:
    return [
        (_doc_name(path), block)
        for path in READ_DOCUMENTS
        for block in re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)
    ]


#: dotted names in the docs that are not Python: the metadata keys an exported ONNX file carries
ONNX_METADATA_KEYS = {
    f"na_toolkit.{key}"
    for key in ("input_normalization", "class_names", "trained_weights", "arch_hash", "run_id", "weights_seed")
}


def _ours(module: str) -> bool:
    """na_toolkit and the NB201 plugin (the example plugin is installed apart: tests/test_example_plugin.py)."""
    return module.split(".")[0] in ("na_toolkit", "na_toolkit_nb201")


def _resolves(dotted: str) -> bool:
    """`na_toolkit.timemodels.devices.torch_device`: the longest importable module, then attributes."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_python_names_in_the_docs_exist():
    """What a reader imports exists: every `import` / `from ... import` of na_toolkit (and the NB201 plugin)
    in a document's Python blocks runs, and every dotted `na_toolkit.x.y` a document names resolves to a
    module or attribute (a moved module or a renamed function is caught here, not by a reader)."""
    import ast

    wrong, checked = [], 0
    for where, block in _python_blocks():
        try:
            tree = ast.parse(block)
        except SyntaxError:  # a hook's signature line (checked above), not a program
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level and _ours(node.module or ""):
                checked += 1
                missing = [a.name for a in node.names if not _resolves(f"{node.module}.{a.name}")]
                if not _resolves(node.module or "") or missing:
                    wrong.append(f"{where}: {ast.unparse(node)} ({', '.join(missing) or node.module} missing)")
            elif isinstance(node, ast.Import):
                wrong += [f"{where}: import {a.name}" for a in node.names if _ours(a.name) and not _resolves(a.name)]
    for path in READ_DOCUMENTS:
        for dotted in set(re.findall(r"`((?:na_toolkit|na_toolkit_nb201)(?:\.\w+)+)", path.read_text())):
            checked += 1
            if dotted not in ONNX_METADATA_KEYS and not _resolves(dotted):
                wrong.append(f"{_doc_name(path)}: {dotted}")
    assert checked >= 80, f"only {checked} Python names found: the scan reads no docs"  # ~half of today
    assert not wrong, "names in the docs that do not exist:\n" + "\n".join(sorted(wrong))


#: the repository's top folders: a code span starting with one names a file of the repository
REPO_FOLDERS = ("na_toolkit/", "plugins/", "tests/", "docs/", "examples/", "benchmarks/", "hwmodels/", "profiles/")


def test_repository_files_named_in_the_docs_exist():
    """A code span naming a file of the repository (`na_toolkit/search/loop.py`, `benchmarks/ir.json`,
    `plugins/.../bench/nb201_search.py`) names one that exists; a trailing `:name` or `*` pattern is allowed."""
    wrong, checked = [], 0
    for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        for span in set(re.findall(r"`([\w./*-]+)(?::\w+)?`", path.read_text())):
            if not span.startswith(REPO_FOLDERS) or "NAME" in span:
                continue
            checked += 1
            if not any(REPO_ROOT.glob(span.rstrip("/"))):
                wrong.append(f"{_doc_name(path)}: {span}")
    assert checked >= 80, f"only {checked} repository paths found: the scan reads no docs"  # ~half of today
    assert not wrong, "files named in the docs that are not in the repository:\n" + "\n".join(sorted(wrong))


def cited_benchmark_records(text: str, prefixes: set[str]) -> set[str]:
    """The committed results a text cites, as paths under benchmarks/: `benchmarks/X.json` anywhere (prose
    too, not only code spans), and a bare `predictor-500.json` code span whose first word is that of a
    committed result (`predictor`, `controller`, ...); `NAME`, `*` and `...` are placeholders, not files."""
    cited = set(re.findall(r"(?<![\w/.-])benchmarks/([\w.-]+\.json)\b", text))
    for span in re.findall(r"`([\w.-]+\.json)`", text):
        if "-" in span and span.split("-")[0] in prefixes:
            cited.add(span)
    return {c for c in cited if "NAME" not in c and not c.startswith(".")}


def test_cited_benchmark_records_finds_prose_and_bare_names():
    text = "(benchmarks/ir-resnet50.json, and `controller-40.json` beside `summary.json`, `seed-X.json`)"
    assert cited_benchmark_records(text, {"controller", "ir"}) == {"ir-resnet50.json", "controller-40.json"}


def test_benchmark_results_cited_in_the_docs_are_committed():
    """Every figure a document quotes from a committed result names a file of benchmarks/: a citation in prose
    (`(benchmarks/ir-resnet50.json)`) or a bare file name is checked as a code span is."""
    committed = {p.name for p in (REPO_ROOT / "benchmarks").glob("*.json")}
    prefixes = {name.split("-")[0].split(".")[0] for name in committed}
    wrong = [
        f"{_doc_name(path)}: benchmarks/{cited}"
        for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
        for cited in sorted(cited_benchmark_records(path.read_text(), prefixes))
        if cited not in committed
    ]
    assert not wrong, "benchmark results cited in the docs that are not committed:\n" + "\n".join(wrong)


def _snippet(doc: str, marker: str) -> str:
    """The Python block of `doc` (a file of docs/) that contains `marker`."""
    blocks = re.findall(r"^```python\n(.*?)^```", (REPO_ROOT / "docs" / doc).read_text(), re.S | re.M)
    return next(b for b in blocks if marker in b)


@pytest.mark.parametrize(
    "doc,marker,made",
    [
        ("controller.md", "ctrl.update(", "ctrl"),  # rng, states and rewards were used without being made
        ("whatif.md", "run_whatif(", "result"),  # the toolkit was used without being built
    ],
)
def test_library_snippets_run_as_written(doc, marker, made, tmp_path, monkeypatch, capsys):
    """Snippets that show a library API end to end run as a reader copies them, from a folder holding the
    repository's examples/ (what they read), writing only there."""
    import shutil

    shutil.copytree(REPO_ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_snippet(doc, marker), f"docs/{doc}", "exec"), namespace)
    assert namespace.get(made) is not None
    if doc == "whatif.md":
        assert [o.label for o in namespace["result"].outcomes] == [
            f"memory_bandwidth={f}" for f in ("0.5x", "1x", "2x")
        ]
        assert (tmp_path / "whatif" / "whatif.json").is_file() and "memory_bandwidth" in capsys.readouterr().out


def test_the_tutorials_test_snippets_run_as_a_test_module(monkeypatch):
    """The python blocks of the example plugin's section 6 ("Test it"), pasted together, are a test module that
    imports what it uses (it used `pytest.fixture` without importing pytest: a NameError on collection)."""
    import sys

    from na_toolkit.plugins import load_toolkit

    monkeypatch.syspath_prepend(str(REPO_ROOT / "plugins" / "na_toolkit_example_se"))
    text = (REPO_ROOT / "plugins" / "na_toolkit_example_se" / "README.md").read_text()
    section = text[text.index("## 6. Test it") : text.index("## 7.")]
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    namespace: dict = {}
    exec(compile("\n".join(blocks), "plugins/na_toolkit_example_se/README.md#6", "exec"), namespace)
    toolkit = load_toolkit(entry_points=False, extra_plugins=(namespace["na_toolkit_example_se"],))
    # the tests the section writes run and pass (each raises on a broken contract); the layer contract's ONNX
    # Runtime check (2 s) runs in the plugin's own tests (test_squeeze_excite.py, run by test_example_plugin)
    tests = sorted(name for name in namespace if name.startswith("test_"))
    assert tests == [
        "test_builds",
        "test_the_layer_type_keeps_the_layer_contract",
        "test_the_move_keeps_the_move_contract",
    ]
    namespace["test_builds"](toolkit)
    namespace["test_the_move_keeps_the_move_contract"](toolkit)
    for name in [m for m in sys.modules if m.split(".")[0] == "na_toolkit_example_se"]:
        del sys.modules[name]  # later tests in this process see no example plugin


def test_the_testing_guides_plugin_tests_run_on_the_plugin_plugin_new_writes(tmp_path, monkeypatch):
    """docs/testing.md's test module imports `my_plugin`: written by `na-toolkit plugin new my_plugin`, as
    the guide says, the module runs and each of its tests passes (it named a plugin and components that
    existed nowhere, so a reader could not run it)."""
    import sys

    from na_toolkit.cli.plugin_new import write_plugin
    from na_toolkit.plugins import load_toolkit

    write_plugin("my_plugin", tmp_path / "my_plugin")
    monkeypatch.syspath_prepend(str(tmp_path / "my_plugin"))
    namespace: dict = {}
    try:
        exec(compile(_snippet("testing.md", "import my_plugin"), "docs/testing.md", "exec"), namespace)
        toolkit = load_toolkit(entry_points=False, extra_plugins=(namespace["my_plugin"],))
        tests = {name: f for name, f in namespace.items() if name.startswith("test_")}
        assert len(tests) == 8
        for test in tests.values():
            test(toolkit)
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "my_plugin"]:
            del sys.modules[name]
