"""Import a torch `nn.Module` into the IR through `torch.export`: `from_torch(module, example_input,
layer_types) -> Architecture` (also `na_toolkit.ir.from_torch`).

The module is exported (`torch.export.export`, in eval mode: an inference graph, as an ONNX import reads)
to an ATen graph. Each ATen op is lowered to the ONNX op(s) it computes (`conv2d` -> Conv, `batch_norm` ->
BatchNormalization, `silu` -> Sigmoid * x, ...; the table is `LOWERINGS`), parameters and buffers
becoming initializers, and the resulting in-memory ONNX graph goes through `from_onnx`: the ops are turned
into IR nodes by the layer types' own ONNX importers, the same ones `arch import` uses, so a plugin's layer
type with an ONNX importer (its multi-op patterns included) imports from torch with no code here.

An ATen op outside the table, or one the layer types cannot import in the form the module uses, is a
`TorchImportError` naming the op, the module path and the line of the module's code that calls it. Ops
that compute nothing at inference (clone, contiguous, an nn.Identity, a view to the shape a tensor has, an
expand that a product's broadcast does anyway) leave no node: an IR `identity`
layer does not survive a round trip through torch.
"""

from __future__ import annotations

import contextlib
import operator
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import OnnxImportError, TorchImportError, TorchImportWarning
from .layers import require_layer_types
from .onnx_export import INPUT_NAME, OPSET, OUTPUT_NAME
from .onnx_import import unsupported_op_todo
from .torch_lowerings import LOWERINGS, supported_ops

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .layers import LayerTypeRegistry

__all__ = ["LOWERINGS", "from_torch"]

#: the ATen ops of a softmax (`aten.softmax.int`, `aten._log_softmax.default`, ...), leading `_` dropped
_SOFTMAX_ATEN = frozenset({"softmax", "log_softmax"})
# the prefix `OnnxImportContext.error` writes: the ONNX node (named after the torch node it lowers)
_ONNX_NODE = re.compile(r"^ONNX node '(?P<name>[^']*)' \([A-Za-z]+\): ")


#: what to do about an ATen op with no lowering: a layer type imports ONNX ops, so a plugin's cannot take it
#: here, but it can take the ONNX op torch's own exporter writes for it
NO_LOWERING_TODO = (
    "from_torch has no lowering of it to ONNX, so no layer type can import it here: replace it in the model "
    "with supported ops, or export the module with torch.onnx.export(..., dynamo=False) and import that file "
    "(from_onnx, na-toolkit arch import), where a layer type that imports the ONNX op torch writes for it (a "
    "plugin's import_onnx; docs/plugin_hooks.md, ONNX import) takes it"
)


def from_torch(
    module: torch.nn.Module,
    example_input: torch.Tensor,
    layer_types: LayerTypeRegistry,
    return_weights: bool = False,
    check: bool = True,
) -> Any:
    """The Architecture computed by `module` on inputs shaped like `example_input` (a float tensor
    (N, C, H, W) or (N, F); N is any batch size), its nodes imported by `layer_types` (`toolkit.layer_types`;
    `builtin_layer_types()` for the built-in ones). With `return_weights=True`, `(arch, state_dict)`:
    `arch.to_torch().load_state_dict(state_dict)` computes what `module` does (in eval mode). With `check`
    (the default) that is checked on `example_input` (a forward pass of each): an import whose outputs differ
    from the module's is a TorchImportError, never a silently different network."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise TorchImportError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() not in (2, 4):
        got = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else type(example_input).__name__
        raise TorchImportError(
            f"from_torch needs an example input tensor (N, C, H, W) or (N, F), got {got}; pass one batch of input"
        )
    require_layer_types(layer_types)
    if example_input.dtype != torch.float32:
        raise TorchImportError(f"the example input must be float32 (the IR is fp32), got {example_input.dtype}")
    program = _export(module, example_input)
    lowering = _Lowering(program, tuple(example_input.shape), type(module).__name__)
    model = lowering.model()
    _warn_unused(module, lowering.live_parameters)
    from .onnx_import import from_onnx

    try:
        arch, state = from_onnx(model, layer_types, return_weights=True)
    except OnnxImportError as exc:
        raise lowering.explain(exc) from None
    if lowering.dropped:
        warnings.warn(
            f"from_torch: {', '.join(lowering.dropped)} imported as no layer, as torch.onnx.export writes it (it "
            "does nothing at inference): the toolkit's dropout layer drops elements, not channels, so training the "
            "imported network has no such dropout (a search's dropout move can add element dropout)",
            TorchImportWarning,
            stacklevel=2,
        )
    if check:
        check_parity(module, arch, state, example_input)
    return (arch, state) if return_weights else arch


def _warn_unused(module: torch.nn.Module, live: set[str]) -> None:
    """A TorchImportWarning naming the submodules (or parameters) of `module` whose parameters the imported
    network does not read (`live`: the dotted names of those it reads): an unused head is left out, and
    the imported architecture counts fewer parameters than the module, which the user must be told."""
    params = dict(module.named_parameters())
    every_name = dict(module.named_parameters(remove_duplicate=False))  # a shared one under each of its names
    live_tensors = {id(every_name[name]) for name in live if name in every_name}
    unused = {name for name, p in params.items() if name not in live and id(p) not in live_tensors}
    if not unused:
        return
    named: list[str] = []
    for path, sub in module.named_modules():
        inside = [f"{path}.{n}" for n, _ in sub.named_parameters()]
        if path and inside and set(inside) <= unused and not any(path.startswith(f"{n}.") for n in named):
            named.append(path)
    named += sorted(n for n in unused if not any(n.startswith(f"{m}.") for m in named))
    count, total = sum(params[n].numel() for n in unused), sum(p.numel() for p in params.values())
    warnings.warn(
        f"from_torch: {type(module).__name__}'s {', '.join(map(repr, named))} ({count:,} of its {total:,} "
        "parameters) do not contribute to forward's output on the example input, so the imported architecture "
        "leaves them out; delete them from the module if that is intended, or use them in forward",
        TorchImportWarning,
        stacklevel=3,
    )


#: how far the imported network's outputs may be from the module's, relative to the largest output (at
#: least 1): float32 sums in another order, as the layer types' ONNX emitters are held to (1e-4)
PARITY_TOLERANCE = 1e-4


def check_parity(module: torch.nn.Module, arch: Any, state: dict[str, Any], example_input: torch.Tensor) -> None:
    """Raise TorchImportError unless the imported network (`arch` with `state`) computes what `module` does
    in eval mode on `example_input`: a lowering or an importer that got an op wrong must not hand a search
    another network than the one the user gave."""
    import torch

    rebuilt = arch.to_torch().to(example_input.device).eval()
    rebuilt.load_state_dict(state)
    with _eval_mode(module), torch.no_grad():
        want = module(example_input)
        got = rebuilt(example_input)
    if not isinstance(want, torch.Tensor) or tuple(want.shape) != tuple(got.shape):
        shape = tuple(want.shape) if isinstance(want, torch.Tensor) else type(want).__name__
        raise TorchImportError(f"the imported network outputs {tuple(got.shape)} where {arch.name} outputs {shape}")
    scale = max(1.0, float(want.abs().max()))
    diff = float((got - want).abs().max())
    if not diff <= PARITY_TOLERANCE * scale:  # NaN included
        raise TorchImportError(
            f"the imported network does not compute what {arch.name} does: on the example input its outputs differ "
            f"by up to {diff:.3g} (tolerance {PARITY_TOLERANCE * scale:.3g}); an op was lowered or imported "
            "wrongly: report it with the module, and replace the op that differs (compare the outputs of "
            "arch.to_torch() with the state dict of from_torch(..., return_weights=True) layer by layer)"
        )


@contextlib.contextmanager
def _eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """The module in eval mode; each submodule's training flag restored afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _export(module: torch.nn.Module, example_input: torch.Tensor) -> Any:
    """`torch.export.export` in eval mode (each submodule's training flag is restored afterwards)."""
    import torch

    try:
        with _eval_mode(module), torch.no_grad():
            return torch.export.export(module, (example_input,), strict=False)
    except Exception as exc:  # torch raises many kinds (UserError, data-dependent control flow, ...)
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise TorchImportError(
            f"torch.export could not export {type(module).__name__}: {type(exc).__name__}: {first[:300]}"
        ) from None


def source_location(node: Any) -> str:
    """Where the module's code calls `node`'s op: the module path (from torch.export's nn_module_stack) and
    the innermost frame of the stack trace outside torch itself, `file:line` and its code."""
    where = []
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path, cls = list(stack.values())[-1]
        cls_name = cls.rsplit(".", 1)[-1] if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
        where.append(f"in module {path or '(root)'!r} ({cls_name})")
    frames = re.findall(r'File "([^"]+)", line (\d+), in \S+\n\s*(.*)', node.meta.get("stack_trace") or "")
    user = [f for f in frames if "/torch/" not in f[0].replace("\\", "/")]
    if user:
        file, line, code = user[-1]
        where.append(f"at {file}:{line} `{code.strip()}`")
    return ", ".join(where) or "(no source location recorded)"


# ---- lowering ATen ops to ONNX ------------------------------------------------------------------------------
class _Lowering:
    """An in-memory ONNX model of an exported program: one or more ONNX nodes per ATen op, each named after
    the torch node it comes from (so an import error can name the op and its source)."""

    def __init__(self, program: Any, input_shape: tuple[int, ...], name: str):
        self.program, self.name = program, name
        self.input_shape = input_shape
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.names: dict[Any, Any] = {}  # torch node -> ONNX tensor name (a tuple of names for tuple outputs)
        self.origin: dict[str, Any] = {}  # ONNX node name -> torch node
        self._constant_tensors: dict[str, Any] = {}  # placeholder name -> tensor (parameters, buffers, constants)
        self._used: set[str] = set()
        #: placeholder name -> the module's parameter it is (its dotted name); `live_parameters` reads it
        self.parameters: dict[str, str] = {}
        self.live_parameters: set[str] = set()  # the dotted names of those the imported graph reads
        #: a Reshape's output -> (the tensor it reshapes, that tensor's shape): a chain of shape ops (squeeze
        #: twice, view then unsqueeze) becomes one Reshape of the first one's input
        self.reshaped: dict[str, tuple[str, tuple[int, ...]]] = {}
        #: the channel dropouts imported as no layer ("aten.feature_dropout.default (p=0.2)"), for one warning
        self.dropped: list[str] = []
        self.current: Any = None

    # ---- what a lowering calls --------------------------------------------------------------------------
    def error(self, message: str, node: Any = None) -> TorchImportError:
        node = node if node is not None else self.current
        return TorchImportError(f"torch op {node.target} (node {node.name!r}, {source_location(node)}): {message}")

    def tensor(self, arg: Any) -> str:
        """The ONNX tensor name of a torch node argument: a computed tensor, a parameter or buffer (an
        initializer, added on first use), or a Python number (a scalar initializer)."""
        from onnx import numpy_helper

        if isinstance(arg, (int, float)) and not isinstance(arg, bool):
            return self.constant(np.array(arg, dtype=np.float32), "scalar")
        name = getattr(arg, "name", None)
        if name in self._constant_tensors:
            if name not in self._used:
                self._used.add(name)
                array = self._constant_tensors[name].detach().cpu().numpy()
                self.initializers.append(numpy_helper.from_array(array.astype(np.float32, copy=False), name))
            return str(name)
        if arg in self.names and isinstance(self.names[arg], str):
            return str(self.names[arg])
        raise self.error(f"an input ({arg!r}) is neither a computed tensor nor a parameter of the module")

    def constant(self, array: np.ndarray, base: str) -> str:
        from onnx import numpy_helper

        name, i = f"{self.current.name}.{base}", 1
        while name in self._used:  # one op may take several numbers: each its own initializer
            name, i = f"{self.current.name}.{base}{i}", i + 1
        self._used.add(name)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], suffix: str = "", **attrs: Any) -> str:
        """Add an ONNX node for the current torch node; its output is named after it (+ `suffix`)."""
        from onnx import helper

        out = self.current.name + suffix
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        self.origin[out] = self.current
        return out

    # ---- the walk ---------------------------------------------------------------------------------------
    def model(self) -> Any:
        from onnx import TensorProto, helper
        from torch.export.graph_signature import InputKind

        program = self.program
        state = {**program.state_dict, **program.constants}
        user_inputs = []
        for spec in program.graph_signature.input_specs:
            if spec.kind == InputKind.USER_INPUT:
                user_inputs.append(spec.arg.name)
            elif spec.target in state:
                self._constant_tensors[spec.arg.name] = state[spec.target]
                if spec.kind == InputKind.PARAMETER:
                    self.parameters[spec.arg.name] = spec.target
        if len(user_inputs) != 1:
            raise TorchImportError(f"the module takes {len(user_inputs)} tensor inputs; from_torch imports one")
        output: Any = None
        for node in program.graph.nodes:
            self.current = node
            if node.op == "placeholder":
                if node.name == user_inputs[0]:
                    self.names[node] = INPUT_NAME
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                outs = [o for o in node.args[0] if o is not None]
                if len(outs) != 1:
                    raise TorchImportError(f"the module returns {len(outs)} tensors; from_torch imports one output")
                output = outs[0]
        self.current = None
        if not isinstance(self.names.get(output), str) or self.names[output] == INPUT_NAME:
            raise TorchImportError("the module's output is not computed from its input by any op")
        self.nodes = _live(self.nodes, self.names[output])
        read = {name for node in self.nodes for name in node.input}
        self.live_parameters = {target for name, target in self.parameters.items() if name in read}
        self.nodes.append(helper.make_node("Identity", [self.names[output]], [OUTPUT_NAME], name="output_identity"))
        batch, *shape = self.input_shape
        graph = helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [batch, *shape])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, list(output.meta["val"].shape))],
            initializer=self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="na_toolkit")
        model.ir_version = 8
        return model

    def _call(self, node: Any) -> None:
        if node.target is operator.getitem:  # an element of a tuple-returning op (batch norm, pooling)
            source, index = node.args
            parts = self.names.get(source)
            if isinstance(parts, tuple) and parts[index] is None and not node.users:
                self.names[node] = None  # the indices of a max pooling, taken and never read
                return
            if not isinstance(parts, tuple) or parts[index] is None:
                raise self.error(f"element {index} of {source.target} is not supported (only its first output)")
            self.names[node] = parts[index]
            return
        lower = LOWERINGS.get(str(node.target))
        if lower is None:
            final_softmax = str(node.target).split(".")[1].lstrip("_") in _SOFTMAX_ATEN and any(
                user.op == "output" for user in node.users
            )
            todo = unsupported_op_todo(final_softmax) if final_softmax else NO_LOWERING_TODO
            raise self.error(f"unsupported op; {todo}; from_torch imports {supported_ops()}")
        self.names[node] = lower(self, *node.args, **node.kwargs)

    def explain(self, exc: OnnxImportError) -> TorchImportError:
        """An import error of the lowered graph, told as the torch op it comes from and where it is called."""
        message = str(exc)
        match = _ONNX_NODE.match(message)
        node = self.origin.get(match.group("name")) if match else None
        if node is None:
            return TorchImportError(f"the exported module cannot be imported: {message}")
        why = message[match.end() :].split("; supported:")[0] if match else message
        if why.startswith("unsupported ONNX op"):  # lowered, but to an op no layer type declares
            return self.error(f"no layer type imports the ONNX op it is lowered to ({why})", node)
        return self.error(f"supported, but the layer types cannot import it in this form ({why})", node)


def _live(nodes: list[Any], output: str) -> list[Any]:
    """The ONNX nodes the output reads, in order: an op whose result nothing uses (the intermediate shape of
    a chain of shape ops, a value the module computes and drops) is not imported."""
    needed, kept = {output}, []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1]
