"""The docs keep up with the code (datasette's test_docs.py habit).

- docs/plugin_hooks.md has a section per hook of na_toolkit/hookspecs.py, with the signature exactly as in
  the code, and no section for a hook that does not exist;
- each section's example is a working plugin: executed as a module and loaded, it registers what it says
  (and what it registers works);
- docs/cli.md mentions every built-in command;
- every document the code and the docs cite exists in the repository (docs/architecture.md holds what the
  code relies on; nothing points at design notes kept elsewhere).
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
    assert tk.seed("tiny-mlp").output_shape == (10,)


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
    if check is check_benchmarks:
        check(tk, capsys, registered)
    elif check is not None:  # strategies and executors need a running search: registration is the check
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
    missing = []
    for path in _text_files():
        for cited in set(re.findall(r"(?<![\w/.-])([\w./-]*\w\.md)\b", path.read_text(errors="replace"))):
            if cited in GENERATED_DOCUMENTS or cited.startswith(("http", "/")):
                continue
            local = (path.parent / cited).resolve()
            if local.is_file() or any(d == cited or d.endswith("/" + cited) for d in documents):
                continue
            missing.append(f"{path.relative_to(REPO_ROOT)} cites {cited}")
    assert not missing, (
        "documents cited but not in the repository (what the code relies on belongs in "
        "docs/architecture.md):\n" + "\n".join(sorted(missing))
    )
