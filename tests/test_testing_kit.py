"""The plugin kit (`na_toolkit.testing`, docs/testing.md): it passes what keeps the contracts (every
registered move and predictor here; layer types and time models in their contract tests, which call it) and
fails what breaks one, with a message naming the component and what broke."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import default_toolkit
from na_toolkit.builtin.layers import LAYER_TYPES
from na_toolkit.datasets.base import Dataset, DatasetSource, LabeledArrays
from na_toolkit.errors import MoveError
from na_toolkit.ir import edit
from na_toolkit.ir.architecture import Attrs, Node
from na_toolkit.moves import MoveType, ParamSpec
from na_toolkit.predictors.base import Predictor
from na_toolkit.predictors.sklearn_predictors import FEATURE_PREDICTORS
from na_toolkit.testing import (
    ConformanceError,
    check_dataset,
    check_layer_type,
    check_move,
    check_predictor,
    default_examples,
)

TOOLKIT = default_toolkit()
FAST = {"n_estimators": 20, "epochs": 2, "n_restarts": 0, "mc_samples": 4, "net_dim": 16, "layer_dim": 16, "hidden": 16}


@pytest.mark.parametrize("name", TOOLKIT.moves.names())
def test_every_registered_move_passes(name):
    results = check_move(name, TOOLKIT)
    assert [r.seed for r in results] == TOOLKIT.seeds.names()
    assert all(r.refused > 0 for r in results)  # refused values were tried on every network


@pytest.mark.parametrize("name", TOOLKIT.predictors.names())
def test_every_registered_predictor_passes(name):
    cls = TOOLKIT.predictors.get(name)
    result = check_predictor(name, TOOLKIT, params={k: v for k, v in FAST.items() if k in cls._get_param_names()})
    assert result.predictions.shape == (24,) and np.isfinite(result.train_r2)


# ---- broken layer types ----------------------------------------------------------------------------------
def _builtin(name):
    return next(cls for cls in LAYER_TYPES if cls.name == name)


class _CostForgetsTheBias(_builtin("conv2d")):
    name = "conv_cost_without_bias"

    def cost(self, attrs, in_shapes, out_shape):
        c = super().cost(attrs, in_shapes, out_shape)
        return type(c)(c.params - (attrs["filters"] if attrs["bias"] else 0), *c.astuple()[1:])


class _CostCountsAMacAsOneFlop(_builtin("linear")):
    name = "linear_flops_as_macs"

    def cost(self, attrs, in_shapes, out_shape):
        c = super().cost(attrs, in_shapes, out_shape)
        return type(c)(c.params, c.macs, c.macs, *c.astuple()[3:])  # the unit slip: FLOPs = MACs


class _EmitsNoShift(_builtin("batchnorm2d")):
    name = "bn_emitting_no_shift"

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        weights = {**weights, "bias": np.zeros_like(weights["bias"])}  # a bug: the shift is lost
        return super().emit_onnx(ctx, node_id, attrs, inputs, in_shapes, out_shape, weights)


def test_default_examples_fill_required_attributes():
    ((attrs, shapes),) = default_examples(TOOLKIT.layer_types.get("conv2d"))
    assert attrs == {"filters": 4} and shapes == [(4, 7, 7)]
    ((attrs, shapes),) = default_examples(TOOLKIT.layer_types.get("linear"))
    assert shapes == [(12,)]


def test_a_cost_that_disagrees_with_torch_is_named():
    with pytest.raises(
        ConformanceError,
        match=r"layer type 'conv_cost_without_bias' example 0 .*cost params 24 != the torch module's 32",
    ):
        check_layer_type(
            _CostForgetsTheBias(), TOOLKIT, examples=[({"filters": 8, "kernel": 1, "bias": True}, [(3, 5, 5)])]
        )


def test_a_cost_that_counts_a_multiply_add_as_one_flop_is_named():
    # FLOPs = MACs halves the layer's compute time in every roofline estimate; the kit used to pass it
    with pytest.raises(ConformanceError, match=r"'linear_flops_as_macs' .*cost flops 36 < 2 x macs 36"):
        check_layer_type(_CostCountsAMacAsOneFlop(), TOOLKIT, examples=[({"units": 3}, [(12,)])])


def test_an_emitter_that_drops_a_tensor_is_caught_by_onnx_runtime():
    # batch norm's shift is zero after construction: the kit redraws constant tensors so the bug shows
    with pytest.raises(ConformanceError, match=r"'bn_emitting_no_shift' .*ONNX Runtime differs from torch by"):
        check_layer_type(_EmitsNoShift(), TOOLKIT, examples=[({}, [(4, 5, 5)])])


def test_an_unregistered_name_lists_the_registered_ones():
    with pytest.raises(
        ConformanceError, match=r"layer type 'no_such_layer': is not registered; registered: \['conv2d'"
    ):
        check_layer_type("no_such_layer", TOOLKIT)


def test_a_layer_type_given_as_an_object_may_be_a_new_instance_of_the_registered_class():
    # a plugin's test builds its own instance while the toolkit holds the plugin's: that one is checked
    results = check_layer_type(_builtin("relu")(), TOOLKIT)
    assert results and all(r.onnx_max_abs_err <= 1e-4 for r in results)

    class OtherRelu(_builtin("sigmoid")):
        name = "relu"

    with pytest.raises(ConformanceError, match=r"another layer type \(\w+\) is registered under this name"):
        check_layer_type(OtherRelu(), TOOLKIT)


# ---- broken moves ------------------------------------------------------------------------------------------
class _InsertRelu(MoveType):
    name = "insert_relu_test"
    description = "a ReLU after a feature-map node"

    def params(self):
        return (ParamSpec.position("position"),)

    def mask(self, arch, param, chosen):
        return np.array([len(arch.shape(n.id)) == 3 for n in arch.nodes], dtype=bool)

    def apply(self, arch, **params):
        self.check(arch, params)
        target = arch.nodes[params["position"]]
        return edit.insert_after(arch, target.id, [Node(arch.new_id("relu"), "relu", Attrs(), (target.id,))])


class _LegacyMask(_InsertRelu):
    name = "legacy_mask"

    def mask(self, arch, param, chosen):
        m = np.zeros(128, dtype=bool)
        m[: len(arch.nodes)] = super().mask(arch, param, chosen)[:128]
        return m


class _IntMask(_InsertRelu):
    name = "int_mask"

    def mask(self, arch, param, chosen):
        return super().mask(arch, param, chosen).astype(np.int64)


class _NoCheck(_InsertRelu):
    name = "no_check"

    def apply(self, arch, **params):
        target = arch.nodes[min(params["position"], len(arch.nodes) - 1)]  # never refuses
        return edit.insert_after(arch, target.id, [Node(arch.new_id("relu"), "relu", Attrs(), (target.id,))])


class _Mutates(_InsertRelu):
    name = "mutates"

    def apply(self, arch, **params):
        new = super().apply(arch, **params)
        arch.name += "-edited"  # the bug: the input is changed
        return new


class _Dead(_InsertRelu):
    name = "dead_end"

    def params(self):
        return (ParamSpec.position("position"), ParamSpec("width", (8, 16)))

    def mask(self, arch, param, chosen):
        if param == "width":
            return np.zeros(2, dtype=bool)  # admits a position, then nothing
        return super().mask(arch, param, chosen)

    def apply(self, arch, **params):
        raise MoveError("never")


class _Grows(_InsertRelu):
    name = "changes_output"

    def mask(self, arch, param, chosen):
        m = np.zeros(len(arch.nodes), dtype=bool)
        m[-1] = True
        return m

    def apply(self, arch, **params):
        self.check(arch, params)
        last = arch.nodes[-1]
        return edit.insert_after(arch, last.id, [Node(arch.new_id("fc"), "linear", Attrs(units=3), (last.id,))])


class _Random(_InsertRelu):
    name = "draws_at_random"

    def apply(self, arch, **params):
        self.check(arch, params)
        target = arch.nodes[params["position"]]
        self.calls = getattr(self, "calls", 0) + 1  # the bug: state of its own (a random draw, say) picks the layer
        kind = ["relu", "sigmoid"][self.calls % 2]
        return edit.insert_after(arch, target.id, [Node(arch.new_id(kind), kind, Attrs(), (target.id,))])


def test_a_move_that_keeps_the_contract_passes():
    results = check_move(_InsertRelu(), TOOLKIT, seeds=["simple-cnn"])
    assert results[0].applied >= results[0].admitted_first > 0


@pytest.mark.parametrize(
    "move, message",
    [
        (
            _LegacyMask(),
            r"move 'legacy_mask' on 'simple-cnn': mask\('position', chosen=\{\}\) has shape \(128,\), expected \(11,\)",
        ),
        (
            _IntMask(),
            r"move 'int_mask' on 'simple-cnn': mask\('position', chosen=\{\}\) has dtype int64, expected bool",
        ),
        (
            _NoCheck(),
            r"move 'no_check' on 'simple-cnn': apply\(\{'position': \d+\}\) accepted position=\d+, "
            "which its mask refuses",
        ),
        # the architecture refuses the change itself now; the kit names the move and what it tried
        (_Mutates(), r"move 'mutates' on 'simple-cnn': apply\(.*\) .* Architecture is immutable: name cannot be"),
        (
            _Dead(),
            r"move 'dead_end' on 'simple-cnn': \{'position': \d+\} was admitted but no value of 'width' completes it",
        ),
        (_Grows(), r"move 'changes_output' on 'simple-cnn': apply\(.*\) changed the output shape \(10,\) -> \(3,\)"),
        # before: it passed, and check_strategy then blamed the built-in strategies for networks that do not replay
        (_Random(), r"move 'draws_at_random' on 'simple-cnn': apply\(.*\) twice made two networks .* apply must be "),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_a_broken_move_is_named_with_what_broke(move, message):
    with pytest.raises(ConformanceError, match=message):
        check_move(move, TOOLKIT, seeds=[TOOLKIT.seed("simple-cnn")])  # a network of its own: one may change


# ---- broken predictors -------------------------------------------------------------------------------------
class _StoresDerived(FEATURE_PREDICTORS[0]):
    name = "stores-derived"

    def __init__(self, n_estimators: int = 20):
        super().__init__(n_estimators=n_estimators)
        self.twice_ = 2 * n_estimators  # __init__ must store its parameters and nothing else


def test_a_predictor_that_breaks_sklearn_conventions_is_named():
    with pytest.raises(ConformanceError, match=r"predictor 'stores-derived': (get_params|__init__ must store)"):
        check_predictor(_StoresDerived, TOOLKIT)


class _Mean(Predictor):
    """A predictor that keeps the contract; the broken ones below change one thing each."""

    name = "mean-plus"
    description = "the training mean plus a little of log10(params)"

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def _fit(self, archs, y, datasets):
        self.mean_, self.std_ = float(np.mean(y)), float(np.std(y))

    def _predict(self, archs, datasets):
        return np.array([self.mean_ + 0.01 * self.alpha * np.log10(a.params) for a in archs])

    def _state_to_json(self):
        return {"mean": self.mean_, "std": self.std_}

    def _state_from_json(self, state):
        self.mean_, self.std_ = state["mean"], state["std"]


class _MeanOnly(_Mean):
    has_uncertainty = True

    def predict_with_std(self, archs):
        return self.predict(archs)  # the std forgotten


class _ScalarStd(_Mean):
    has_uncertainty = True

    def predict_with_std(self, archs):
        return self.predict(archs), self.std_  # one float, not one per network


class _NaNStd(_Mean):
    has_uncertainty = True

    def predict_with_std(self, archs):
        mean = self.predict(archs)
        return mean, np.full(len(mean), np.nan)


class _RenamedParameter(_Mean):
    def __init__(self, alpha: float = 1.0):
        self.alpha_value = alpha  # get_params reads self.alpha


class _NumpyState(_Mean):
    def _state_to_json(self):
        return {"mean": np.float32(self.mean_), "std": self.std_}  # json cannot write a numpy scalar


class _Unnamed(_Mean):
    name = ""


class _IgnoresTargets(_Mean):
    def _fit(self, archs, y, datasets):
        self.mean_, self.std_ = 0.5, 0.0  # fit() "learns" something, but not from y


class _OneShort(_Mean):
    def _predict(self, archs, datasets):
        return super()._predict(archs, datasets)[:-1]


class _FormulaOfTheNetwork(_Mean):
    def _predict(self, archs, datasets):
        return np.log10([a.params for a in archs])  # what fit learned is never used


@pytest.mark.parametrize(
    ("predictor", "message"),
    [
        (_MeanOnly, r"predict_with_std returned ndarray .*; return \(mean, std\)"),
        (_ScalarStd, r"a std of float [0-9.]+, expected arrays of shape \(5,\) \(a constant std too"),
        (_NaNStd, "predict_with_std gave a NaN or infinite std"),
        (_RenamedParameter, r"does not store its parameter\(s\) \['alpha'\] .*\(self.alpha = \.\.\.\)"),
        (_NumpyState, r"save\(\) failed: Object of type float32 .*float\(x\) for a numpy scalar"),
        (_Unnamed, "_Unnamed has no name: set the class attribute `name`"),
        (_IgnoresTargets, r"predicts the same after a fit on other targets .*\(_fit stores it, _predict uses it\)"),
        (_FormulaOfTheNetwork, "predicts the same after a fit on other targets"),
        # before: a bare ValueError from numpy's reshape, naming neither the predictor nor the fix
        (_OneShort, r"predict of 24 networks after fit raised ValueError: predictor 'mean-plus': _predict gave 23 "),
    ],
)
def test_a_broken_predictor_is_named_with_what_broke_and_what_to_do(predictor, message):
    assert check_predictor(_Mean, TOOLKIT).predictions.shape == (24,)  # the unbroken one passes
    with pytest.raises(ConformanceError, match=message):
        check_predictor(predictor, TOOLKIT)


# ---- datasets -----------------------------------------------------------------------------------------------
def _blobs(rng=None, labels=None):
    """300 8x8 images of 3 classes; `rng`: where the pixels come from (default: seeded)."""
    rng = np.random.default_rng(0) if rng is None else rng
    y = np.arange(300) % 3 if labels is None else labels
    return LabeledArrays(rng.normal(size=(300, 1, 8, 8)).astype(np.float32), y, ("a", "b", "c"))


def _ready(x_dtype=np.float32, y_dtype=np.int64):
    data = _blobs()
    x, y = data.x.astype(x_dtype), data.y.astype(y_dtype)
    return Dataset("ready", x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:], data.class_names)


@pytest.mark.parametrize("name", TOOLKIT.datasets.names())
def test_every_registered_dataset_passes(name):
    result = check_dataset(name, TOOLKIT)
    assert result.dataset.classes >= 2 and result.descriptor.to_json()


@pytest.mark.parametrize(
    ("loader", "message"),
    [
        (lambda: _blobs(np.random.default_rng()), "the loader returned other samples on a second call: draw them"),
        (lambda: _blobs(labels=np.arange(300) % 2 * 2), r"no training sample of class\(es\) \['b'\]"),
        (lambda: _ready(x_dtype=np.float64), r"x_train has dtype float64, expected float32"),
        (lambda: _ready(y_dtype=np.float32), "y_train has dtype float32, expected int64 class indices"),
        (lambda: (_blobs().x, _blobs().y), r"the loader returned tuple; return LabeledArrays\(x, y, class_names\)"),
    ],
)
def test_a_broken_dataset_is_named_with_what_broke(loader, message):
    assert check_dataset(DatasetSource("blobs", "3 classes", _blobs), TOOLKIT).dataset.classes == 3
    with pytest.raises(ConformanceError, match=f"dataset 'blobs': {message}"):
        check_dataset(DatasetSource("blobs", "3 classes", loader), TOOLKIT)


# ---- the Architecture API a move author reads (docs/plugin_hooks.md) --------------------------------------
def test_the_documented_architecture_api_exists_and_its_example_runs():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "plugin_hooks.md").read_text()
    section = text[text.index("## The Architecture a move reads") :]
    section = section[: section.index("\n## ", 1)]
    arch = TOOLKIT.seed("resnet-cifar")
    members = set(re.findall(r"`arch\.(\w+)", section))
    assert {"shape", "output", "in_shapes", "consumers", "cost", "new_id"} <= members
    assert all(hasattr(arch, m) for m in members), members - {m for m in members if hasattr(arch, m)}
    namespace: dict = {}
    exec(re.findall(r"```python\n(.*?)```", section, re.S)[0], namespace)
    mask = namespace["wide_feature_maps"](arch)
    assert mask.dtype == bool and mask.shape == (len(arch.nodes),) and mask.any()
    for i in np.flatnonzero(mask):
        node = arch.nodes[i]
        assert arch.shape(node.id)[0] >= 16 and all(arch.node(c).type == "conv2d" for c in arch.consumers[node.id])


class _PoolKeepsShape(_builtin("maxpool2d")):
    name = "pool_keeps_shape"

    def infer_shape(self, attrs, in_shapes):
        return in_shapes[0]  # the bug: its torch module halves H and W


def test_a_torch_build_that_disagrees_with_its_shape_inference_is_named_on_its_first_forward_pass():
    # before: a search ran on with every cost, estimate and budget computed on shapes the network does not have
    import torch

    from na_toolkit.errors import ArchitectureError
    from na_toolkit.ir.architecture import Architecture
    from na_toolkit.plugins import load_toolkit

    tk = load_toolkit(entry_points=False)
    tk.layer_types.add(_PoolKeepsShape())
    seed = Architecture.loads(TOOLKIT.seed("simple-cnn").dumps(), tk.layer_types)
    arch = edit.insert_after(seed, "relu_0", [Node("pool_x", "pool_keeps_shape", Attrs(), ("relu_0",))])
    assert arch.shape("pool_x") == (16, 8, 8)
    module = arch.to_torch()
    with pytest.raises(
        ArchitectureError,
        match=r"^layer type 'pool_keeps_shape' of plugin .*: node 'pool_x''s torch module gives shape \(16, 4, 4\) "
        r"\(batch dimension left out\), but the layer type's infer_shape says \(16, 8, 8\)",
    ):
        module(torch.zeros(2, 1, 8, 8))
    good = seed.to_torch()
    assert good(torch.zeros(2, 1, 8, 8)).shape == (2, 10)  # checked once, then runs as before
    assert good._shapes_checked and good(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_a_single_name_where_the_checks_take_a_list_is_named():
    """check_time_model(..., seeds="simple-cnn") iterated the string: "unknown seed network 's'"."""
    from na_toolkit.testing import check_evaluator, check_move, check_strategy, check_time_model

    calls = [
        (lambda: check_time_model("roofline", TOOLKIT, options={"device": "x86-cpu"}, seeds="simple-cnn"), "seeds"),
        (lambda: check_move("scale", TOOLKIT, seeds="simple-cnn"), "seeds"),
        (lambda: check_evaluator("synthetic", TOOLKIT, seeds="simple-cnn"), "seeds"),
        (lambda: check_strategy("random", TOOLKIT, moves="scale", across_processes=False), "moves"),
    ]
    for call, what in calls:
        with pytest.raises(TypeError, match=rf"^{what}: a list of names, got the string '[\w-]+': \['[\w-]+'\]$"):
            call()
