"""`na-toolkit plugin new NAME [--out DIR]`: write a working plugin package to start from.

The skeleton is a pip-installable distribution (setup.cfg with the `na_toolkit` entry point, pyproject.toml)
holding a package NAME whose hook implementations register one layer type (`NAME_scale`, a learned scale
and shift per channel, with cost, torch build, ONNX emit and import) and one move (`insert_NAME_scale`),
and tests that run the plugin kit's conformance checks (`na_toolkit.testing`) on them. The folder is
written beside its destination and renamed into place, so a failure leaves nothing half-written. A NAME that
is already an importable module or an installed plugin's name is refused: the package would shadow the
module, or one of two plugins of one name would be refused.
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import re
import shutil
import sys
from pathlib import Path

from .. import __version__
from ..errors import ConfigError
from .command import Command

#: a package name as PEP 8 writes it (and pip, setuptools and an entry point all take)
PACKAGE_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")

SETUP_CFG = """\
[metadata]
name = __DIST__
version = attr: __NAME__.__version__
description = na_toolkit plugin: the __NAME___scale layer type and the insert___NAME___scale move
long_description = file: README.md
long_description_content_type = text/markdown

[options]
python_requires = >=3.11
packages = __NAME__
install_requires =
    na-toolkit>=__REQUIRES__

# What makes this a na_toolkit plugin: an entry point in group `na_toolkit`. The key is the plugin's name
# (what `na-toolkit plugins` shows and NA_TOOLKIT_DISABLE_PLUGINS takes), the value the module holding the
# @na_toolkit.hookimpl functions.
[options.entry_points]
na_toolkit =
    __NAME__ = __NAME__

[tool:pytest]
testpaths = tests
# the package is importable from a checkout, before (or without) `pip install -e .`
pythonpath = .
"""

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"
"""

README = """\
# __NAME__

A na_toolkit plugin, written by `na-toolkit plugin new __NAME__`. It registers

- the layer type `__NAME___scale` (`__NAME__/layer.py`): a learned scale and shift per channel of a feature
  map, with its cost, torch module (`__NAME__/_torch.py`), ONNX emitter and importer;
- the move `insert___NAME___scale` (`__NAME__/move.py`): puts one after a layer that outputs a feature map.

```
pip install -e .                 # the entry point in setup.cfg makes na-toolkit load it (offline: add
                                 # --no-build-isolation, to build with this environment's setuptools)
na-toolkit plugins               # lists __NAME__ and what it registered
pytest                           # the plugin kit's conformance checks (na_toolkit.testing) and its own tests
na-toolkit demo --move insert___NAME___scale --steps 3 --out demo
```

Replace the layer and the move with yours and keep the tests' `check_layer_type` / `check_move` calls:
na_toolkit's docs/plugin_hooks.md documents every hook, docs/testing.md the checks. Other components have
theirs: `check_predictor`, `check_time_model`, `check_dataset`, `check_strategy`, `check_evaluator` and
`check_executor` (`na_toolkit.testing`).

`python -m na_toolkit` run from the folder that holds this checkout imports the checkout folder `__NAME__`
instead of the package (the current directory comes first on `sys.path`), and na-toolkit refuses the plugin
as a namespace package: run it from inside the checkout, or from anywhere else.
"""

INIT = '''\
"""__NAME__: a na_toolkit plugin. The hook implementations below are all there is to a plugin; the classes
they register live in layer.py and move.py. Nothing heavy is imported here: every na-toolkit command
imports its plugins, so torch is imported only when a network is built."""

import na_toolkit

__version__ = "0.1.0"


@na_toolkit.hookimpl
def na_register_layer_types(registry):
    from .layer import ChannelScale

    registry.add(ChannelScale())


@na_toolkit.hookimpl
def na_register_moves(registry):
    from .move import InsertChannelScale

    registry.add(InsertChannelScale())
'''

TORCH = '''\
"""The torch module of `__NAME___scale` (its own module: torch is imported only when a network is built)."""

import torch
from torch import nn


class ChannelScaleModule(nn.Module):
    def __init__(self, channels, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        if bias:
            self.bias = nn.Parameter(torch.zeros(channels))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x * self.weight.view(1, -1, 1, 1)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
'''

LAYER = '''\
"""The `__NAME___scale` layer type: a learned scale (and shift) per channel of a feature map,

    y[c] = w[c] * x[c] + b[c]

the affine half of a batch norm. In ONNX it is Mul(x, w) then Add(., b), with w and b of shape (C, 1, 1)."""

from na_toolkit.ir.layers import BYTES_PER_ELEMENT, AttrSpec, LayerCost, LayerType, check_feature_map, numel

LAYER = "__NAME___scale"


class ChannelScale(LayerType):
    name = LAYER
    description = "a learned scale (and shift) per channel of a feature map: y = w * x + b"
    attrs = {"bias": AttrSpec(bool, True, doc="add a learned shift per channel")}
    has_weights = True
    onnx_ops = ("Mul",)  # the first ONNX node emit_onnx writes: the import starts there

    def infer_shape(self, attrs, in_shapes):
        check_feature_map(self.name, in_shapes[0])  # ShapeError naming the layer for a vector
        return in_shapes[0]

    def cost(self, attrs, in_shapes, out_shape):
        channels = in_shapes[0][0]
        elements = numel(in_shapes[0])
        params = channels * (2 if attrs["bias"] else 1)
        macs = elements  # one multiply(-add) per element; FLOPs count a multiply-add as 2
        x_bytes = elements * BYTES_PER_ELEMENT
        return LayerCost(params, macs, 2 * macs, params * BYTES_PER_ELEMENT, x_bytes, x_bytes)

    def build_torch(self, attrs, in_shapes, out_shape):
        from ._torch import ChannelScaleModule

        return ChannelScaleModule(in_shapes[0][0], attrs["bias"])

    def init_weights(self, attrs, in_shapes, out_shape, rng):
        # named as the torch module's state_dict; near the identity, as the torch module starts
        channels = in_shapes[0][0]
        weights = {"weight": 1 + 0.1 * rng.standard_normal(channels)}
        if attrs["bias"]:
            weights["bias"] = 0.1 * rng.standard_normal(channels)
        return weights

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        channels = in_shapes[0][0]
        w = ctx.initializer(f"{node_id}.weight", weights["weight"].reshape(channels, 1, 1))
        if not attrs["bias"]:
            return ctx.node("Mul", [inputs[0], w], node_id)
        scaled = ctx.node("Mul", [inputs[0], w], f"{node_id}.scale")
        b = ctx.initializer(f"{node_id}.bias", weights["bias"].reshape(channels, 1, 1))
        return ctx.node("Add", [scaled, b], node_id)

    def import_onnx(self, ctx, onnx_node):
        """Mul(x, w) with a constant w of shape (C, 1, 1), and the Add of a constant (C, 1, 1) that alone
        reads it: one node. Any other Mul returns False (another layer type may claim it)."""
        if len(onnx_node.input) != 2:
            return False
        a, b = onnx_node.input
        x, w = (a, ctx.constant(b)) if ctx.constant(a) is None else (b, ctx.constant(a))
        if w is None or ctx.constant(x) is not None or len(ctx.shape(x)) != 3:
            return False
        channels = ctx.shape(x)[0]
        if w.shape != (channels, 1, 1):
            return False
        weights = {"weight": w.reshape(-1)}
        tail = onnx_node
        add = ctx.sole_consumer(onnx_node.output[0])
        if add is not None and add.op_type == "Add" and len(add.input) == 2:
            other = add.input[1] if add.input[0] == onnx_node.output[0] else add.input[0]
            shift = ctx.constant(other)
            if shift is not None and shift.shape == (channels, 1, 1):
                weights["bias"] = shift.reshape(-1)
                tail = add
        ctx.add(self.name, [ctx.value(x)], {"bias": "bias" in weights}, weights, output=tail.output[0])
        if tail is not onnx_node:
            ctx.absorb(tail)
        return True
'''

MOVE = '''\
"""The `insert___NAME___scale` move: put a `__NAME___scale` layer right after a layer that outputs a
feature map (not next to another one: two scales in a row are one)."""

import numpy as np

from na_toolkit.errors import MoveError
from na_toolkit.ir import edit
from na_toolkit.ir.architecture import Attrs, Node
from na_toolkit.moves import MoveType, ParamSpec

from .layer import LAYER


class InsertChannelScale(MoveType):
    name = "insert___NAME___scale"
    description = "insert a learned per-channel scale after a layer that outputs a feature map"

    def params(self):
        # the order the controller samples in: first where, then how
        return (ParamSpec.position("position"), ParamSpec("bias", (True, False)))

    def _admits(self, arch, node):
        if len(arch.shape(node.id)) != 3 or node.type == LAYER:
            return False
        return all(arch.node(c).type != LAYER for c in arch.consumers[node.id])

    def mask(self, arch, param, chosen):
        if param == "position":  # one entry per node of the network
            if LAYER not in arch.layer_types:  # the layer type's plugin is not loaded in this toolkit
                return np.zeros(len(arch.nodes), dtype=bool)
            return np.array([self._admits(arch, node) for node in arch.nodes], dtype=bool)
        if param == "bias":  # both complete any admitted position
            return np.ones(2, dtype=bool)
        raise MoveError(f"{self.name}: no parameter {param!r}")

    def apply(self, arch, **params):
        self.check(arch, params)  # MoveError naming the first value the masks refuse
        target = arch.nodes[params["position"]]
        scale = Node(arch.new_id("scale"), LAYER, Attrs(bias=bool(params["bias"])), (target.id,))
        # the layer keeps the shape: every consumer of the target (and the output) now reads the scaled tensor
        return edit.insert_after(arch, target.id, [scale])
'''

TESTS = '''\
"""Tests of the __NAME__ plugin: the na_toolkit plugin kit's conformance checks (na_toolkit.testing) on
what it registers, then its own behaviour. Each test uses a toolkit of the built-ins and this plugin alone
(`entry_points=False`: an installed copy would otherwise register the same names twice)."""

import pytest

import __NAME__
from na_toolkit.errors import ShapeError
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.plugins import load_toolkit
from na_toolkit.testing import check_layer_type, check_move

LAYER = "__NAME___scale"
MOVE = "insert___NAME___scale"


@pytest.fixture(scope="module")
def toolkit():
    return load_toolkit(entry_points=False, extra_plugins=(__NAME__,))


def test_registers_its_layer_type_and_move(toolkit):
    info = toolkit.plugins[__NAME__.__name__]
    assert info.error is None
    # what else the plugin registers later (a time model, a strategy) adds kinds of its own to `registered`
    assert info.registered["layer_types"] == [LAYER] and info.registered["moves"] == [MOVE]


@pytest.mark.parametrize("attrs", [{}, {"bias": False}])
def test_layer_type_keeps_the_contract(toolkit, attrs):
    # shape, cost against the torch module, ONNX Runtime parity, ONNX import back, JSON
    (result,) = check_layer_type(LAYER, toolkit, examples=[(attrs, [(4, 7, 7)])])
    assert result.cost.params == (4 if attrs else 8)
    assert result.same_hash_after_import


def test_move_keeps_the_contract(toolkit):
    # masks, every admitted value applies on every seed network, apply is pure, refused values raise
    results = check_move(MOVE, toolkit)
    assert all(r.applied for r in results)


def test_a_vector_is_a_shape_error(toolkit):
    b = ArchitectureBuilder((12,), layer_types=toolkit.layer_types)
    b.layer(LAYER, b.input)
    with pytest.raises(ShapeError, match=LAYER):
        b.build()
'''

FILES = {
    "setup.cfg": SETUP_CFG,
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "__NAME__/__init__.py": INIT,
    "__NAME__/_torch.py": TORCH,
    "__NAME__/layer.py": LAYER,
    "__NAME__/move.py": MOVE,
    "tests/test___NAME__.py": TESTS,
}


def check_name(name: str) -> str:
    """`name` if it makes a good package name, else a one-line ConfigError saying why."""
    if not PACKAGE_NAME.match(name) or keyword.iskeyword(name):
        raise ConfigError(
            f"plugin name {name!r} is not a valid Python package name: use lowercase letters, digits and "
            "underscores, starting with a letter (e.g. my_plugin)"
        )
    if name in sys.stdlib_module_names or name == "na_toolkit":  # the plugin would hide that module
        taken = "a standard library" if name in sys.stdlib_module_names else "na_toolkit's own"
        raise ConfigError(f"plugin name {name!r} is {taken} module name; choose another (e.g. {name}_plugin)")
    plugin = installed_plugin(name)
    if plugin is not None:  # the entry point name is the plugin's name: two of one name, and one is refused
        raise ConfigError(
            f"plugin name {name!r} is the name of the installed plugin {plugin}: installed beside it, one of the "
            f"two would be refused as a second plugin of that name; choose another (e.g. {name}_plugin)"
        )
    origin = importable_module(name)
    if origin is not None:  # its tests put the checkout first on sys.path (pythonpath = .): it would shadow it
        raise ConfigError(
            f"plugin name {name!r} is the name of an importable module ({origin}), which the plugin's package "
            f"would shadow; choose another (e.g. {name}_plugin)"
        )
    return name


def installed_plugin(name: str) -> str | None:
    """`name (dist version)` of the installed entry-point plugin called `name`, or None."""
    from importlib.metadata import entry_points

    from ..hookspecs import PROJECT_NAME  # the entry-point group (plugins.ENTRY_POINT_GROUP, a layer above)

    for ep in entry_points(group=PROJECT_NAME, name=name):
        return f"{name} ({ep.dist.name} {ep.dist.version})" if ep.dist is not None else name
    return None


def importable_module(name: str) -> str | None:
    """Where the top-level module `name` is imported from, or None when there is none (a bare folder, a
    namespace package, does not count: nothing is shadowed)."""
    from importlib.util import find_spec

    try:
        spec = find_spec(name)
    except (ImportError, ValueError):  # a module that fails to be found is not one to shadow
        return None
    if spec is None or spec.origin in (None, "namespace"):
        return None
    return spec.origin


def render(name: str) -> dict[str, str]:
    """Relative path -> text of each file of the skeleton of plugin `name`."""
    major, minor = __version__.split(".")[:2]
    values = {"__NAME__": name, "__DIST__": name.replace("_", "-"), "__REQUIRES__": f"{major}.{minor}"}
    out = {}
    for path, text in FILES.items():
        for key, value in values.items():
            path, text = path.replace(key, value), text.replace(key, value)
        out[path] = text
    return out


def write_plugin(name: str, out: Path) -> list[str]:
    """Write the skeleton of plugin `name` into folder `out` (absent or empty); the files written, relative."""
    check_name(name)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; give a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {str(out)!r} is not empty; give a new or empty folder (nothing was written)")
    files = render(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except OSError as exc:
        raise ConfigError(f"cannot write the plugin into {str(out)!r}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(files)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="plugin_command", metavar="ACTION", required=True)
    p = sub.add_parser("new", help="write a working plugin package (a layer type, a move and their tests)")
    p.add_argument("name", help="the Python package name of the plugin (lowercase, e.g. my_plugin)")
    p.add_argument("--out", help="the folder to write, new or empty (default: ./NAME)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    name = check_name(args.name)
    out = Path(args.out if args.out else name)
    files = write_plugin(name, out)
    doc = {
        "name": name,
        "folder": str(out),
        "files": files,
        "layer_types": [f"{name}_scale"],
        "moves": [f"insert_{name}_scale"],
    }
    if getattr(args, "json", False):
        print(json.dumps(doc, indent=2))
        return 0
    print(f"wrote plugin {name} into {out}:")
    for rel in files:
        print(f"  {rel}")
    print(
        f"next: cd {out} && pytest && pip install -e .   (offline: pip install --no-build-isolation -e .; "
        "docs: na_toolkit's docs/testing.md)"
    )
    return 0


COMMANDS = (Command("plugin", "write a new plugin package to start from (plugin new NAME)", configure, run),)
