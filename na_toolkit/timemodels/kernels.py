"""Kernels: the units a network's latency is predicted from, in the manner of nn-Meter (Zhang et al.,
"nn-Meter: towards accurate latency prediction of deep-learning model inference on diverse edge devices",
MobiSys 2021). A kernel is what an inference runtime executes as one operator after its graph fusions:

- `conv`: a conv2d with the batch norm that follows it (folded into the weights by ONNX Runtime and by
  every deployment toolchain) and a following ReLU / ReLU6 / sigmoid (fused as the conv's activation);
- `linear`: a linear layer (+ fused activation); `bn`: a batch norm that follows no conv (+ activation);
- `add`: an elementwise add (+ a following activation: nn-Meter's add-relu); `concat`;
- `pool`, `gap` (global average pool), `act` (an activation on its own), `elementwise` (zero);
- `free`: layers that cost nothing at inference (flatten as a view, dropout, identity);
- `other`: a plugin's layer type (measured on its own like the rest).

`kernels_of(arch)` splits an architecture; `kernel_architecture(kernel)` builds the small standalone network
that measures one kernel (the profiler's "layer configurations"). Each kernel carries numeric features for
the regressors of the learned time model, and a `key` identifying its configuration (two kernels with the
same key have the same latency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..caches import lru_dict
from ..ir.architecture import INPUT, Architecture, Node
from ..ir.layers import Shape

#: activations an `act` kernel is: those of na_toolkit.builtin.layers and of layers_activations (silu and
#: hardsigmoid, of layers_mobile, are `other` kernels, as profiles recorded before these were made them)
ACTIVATIONS = ("relu", "relu6", "sigmoid", "hardswish", "gelu", "leaky_relu", "elu", "tanh", "softplus", "mish")
#: activations a conv/linear kernel absorbs (ONNX Runtime's ConvActivationFusion: Relu, Clip, Sigmoid, ...)
FUSED_ACTIVATIONS = ("relu", "relu6", "sigmoid")
FREE_TYPES = ("flatten", "dropout", "identity")
#: the `act` feature (codes are never renumbered: a saved learned time model reads them)
ACT_CODE = {None: 0, "relu": 1, "relu6": 2, "sigmoid": 3, "hardswish": 4, "gelu": 5}
ACT_CODE.update({"leaky_relu": 7, "elu": 8, "tanh": 9, "softplus": 10, "mish": 11})  # 6: not an activation
KINDS = ("conv", "linear", "bn", "add", "concat", "pool", "gap", "act", "elementwise", "other", "free")

#: numeric feature names per kind (all kinds also get the cost features in COST_FEATURES)
KIND_FEATURES: dict[str, tuple[str, ...]] = {
    "conv": ("cin", "cout", "h", "w", "ho", "wo", "kernel", "stride", "dilation", "groups", "depthwise", "bn", "act"),
    "linear": ("cin", "cout", "act"),
    "bn": ("cin", "h", "w", "act"),
    "add": ("cin", "h", "w", "inputs", "act"),
    "concat": ("cin", "cout", "h", "w", "inputs"),
    "pool": ("cin", "h", "w", "ho", "wo", "kernel", "stride", "max"),
    "gap": ("cin", "h", "w"),
    "act": ("cin", "h", "w", "act"),
    "elementwise": ("cin", "h", "w"),
    "other": ("cin", "cout", "h", "w", "ho", "wo"),
    "free": (),
}
COST_FEATURES = ("flops", "in_bytes", "out_bytes", "weight_bytes")


@dataclass(frozen=True, eq=False)
class KernelConfig:
    """What determines a kernel's latency: layer types + attributes, input shape and count. Shared by
    every kernel of that configuration (configurations are memoised: networks share most of theirs)."""

    kind: str
    #: per layer: (type, normalised attrs as a sorted tuple)
    layers: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    in_shape: Shape
    n_inputs: int
    features: dict[str, float]
    key: str = ""
    vector: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        parts = [f"{t}{dict(a)}" for t, a in self.layers]
        key = f"{self.kind}|{'x'.join(map(str, self.in_shape))}|{self.n_inputs}|" + ">".join(parts)
        object.__setattr__(self, "key", key)
        names = KIND_FEATURES[self.kind] + COST_FEATURES
        object.__setattr__(self, "vector", tuple(float(self.features[n]) for n in names))


@dataclass(frozen=True)
class Kernel:
    """One kernel of one network: its configuration and the IR nodes it covers."""

    config: KernelConfig
    #: IR node ids, in execution order; the first node's input is the kernel's input
    nodes: tuple[str, ...]
    #: an add whose input comes from a conv kernel without activation that feeds nothing else: runtimes
    #: fold such an add into the conv (ONNX Runtime's NCHWc Sum fusion, TensorRT's conv+add), so inside a
    #: network it costs less than measured alone; the learned model calibrates these adds separately
    fusable: bool = False

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def layers(self) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
        return self.config.layers

    @property
    def in_shape(self) -> Shape:
        return self.config.in_shape

    @property
    def n_inputs(self) -> int:
        return self.config.n_inputs

    @property
    def key(self) -> str:
        """The configuration: layer types + attributes + input shape + input count (ids do not matter)."""
        return self.config.key

    def feature(self, name: str) -> float:
        return self.config.features[name]

    def vector(self) -> list[float]:
        return list(self.config.vector)


#: kernel configurations by (layers + attributes, input shapes, layer-type registry): networks of one search
#: share most of theirs, and building one costs more than looking it up (bounded LRU, `clear_caches()`)
_CONFIGS = lru_dict("timemodels.kernels.configs", 200_000)


def _sole_consumer(arch: Architecture, node_id: str, consumers: dict[str, tuple[str, ...]]) -> Node | None:
    users = consumers.get(node_id, ())
    if len(users) != 1 or node_id == arch.output:
        return None
    return arch.node(users[0])


def _hw(shape: Shape) -> tuple[int, int, int]:
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    return (shape[0] if shape else 1), 1, 1


def _features(arch: Architecture, kind: str, nodes: list[Node]) -> dict[str, float]:
    first, last = nodes[0], nodes[-1]
    in_shapes = arch.in_shapes(first.id)
    c, h, w = _hw(in_shapes[0])
    co, ho, wo = _hw(arch.shape(last.id))
    act_node = next((n for n in nodes if n.type in ACTIVATIONS), None)
    f: dict[str, float] = {
        "cin": c,
        "cout": co,
        "h": h,
        "w": w,
        "ho": ho,
        "wo": wo,
        "act": ACT_CODE.get(act_node.type if act_node else None, 6),
        "inputs": len(first.inputs),
        "bn": float(any(n.type == "batchnorm2d" for n in nodes)),
        "max": float(first.type == "maxpool2d"),
    }
    a = arch.attrs(first.id)
    if kind in ("conv", "pool"):
        f["kernel"] = a.get("kernel", 1)
        f["stride"] = a.get("stride", 1)
        f["dilation"] = a.get("dilation", 1)
        f["groups"] = a.get("groups", 1)
        f["depthwise"] = float(a.get("groups", 1) > 1 and a.get("groups", 1) == c)
    cost = [arch.cost.per_node[n.id] for n in nodes]
    f["flops"] = sum(x.flops for x in cost)
    f["in_bytes"] = cost[0].input_bytes
    f["out_bytes"] = cost[-1].output_bytes
    f["weight_bytes"] = sum(x.weight_bytes for x in cost)
    return f


def _kind_of(node: Node) -> str:
    t = node.type
    if t == "conv2d":
        return "conv"
    if t == "linear":
        return "linear"
    if t == "batchnorm2d":
        return "bn"
    if t == "add":
        return "add"
    if t == "concat":
        return "concat"
    if t in ("maxpool2d", "avgpool2d"):
        return "pool"
    if t == "global_avg_pool":
        return "gap"
    if t in ACTIVATIONS:
        return "act"
    if t == "zero":
        return "elementwise"
    if t in FREE_TYPES:
        return "free"
    return "other"


def kernels_of(arch: Architecture) -> list[Kernel]:
    """Split `arch` into kernels (see the module docstring), in execution order."""
    consumers = arch.consumers
    taken: set[str] = set()
    out: list[Kernel] = []
    kernel_of: dict[str, Kernel] = {}
    for node in arch.nodes:
        if node.id in taken:
            continue
        kind = _kind_of(node)
        group = [node]
        if kind == "conv":
            nxt = _sole_consumer(arch, node.id, consumers)
            if nxt is not None and nxt.type == "batchnorm2d":
                group.append(nxt)
                nxt = _sole_consumer(arch, nxt.id, consumers)
            if nxt is not None and nxt.type in FUSED_ACTIVATIONS:
                group.append(nxt)
        elif kind in ("linear", "bn", "add"):
            nxt = _sole_consumer(arch, node.id, consumers)
            if nxt is not None and nxt.type in FUSED_ACTIVATIONS:
                group.append(nxt)
        taken.update(n.id for n in group)
        in_shapes = tuple(arch.in_shapes(node.id))
        # plain tuples: comparing Attrs objects costs more than building these (attribute order only
        # matters for the memo's hit rate, never for correctness)
        signature = (tuple((n.type, tuple(n.attrs.to_dict().items())) for n in group), in_shapes, id(arch.layer_types))
        config = _CONFIGS.get(signature)
        if config is None:
            config = KernelConfig(
                kind=kind,
                layers=tuple((n.type, tuple(sorted(arch.attrs(n.id).items()))) for n in group),
                in_shape=tuple(in_shapes[0]),
                n_inputs=len(node.inputs),
                features=_features(arch, kind, group),
            )
            _CONFIGS[signature] = config
        fusable = kind == "add" and any(_folds_into_conv(src, kernel_of, consumers) for src in node.inputs)
        kernel = Kernel(config, tuple(n.id for n in group), fusable)
        out.append(kernel)
        for n in group:
            kernel_of[n.id] = kernel
    return out


def _folds_into_conv(src: str, kernel_of: dict[str, Kernel], consumers: dict[str, tuple[str, ...]]) -> bool:
    producer = kernel_of.get(src)
    return (
        producer is not None
        and producer.kind == "conv"
        and producer.nodes[-1] == src
        and not producer.feature("act")
        and len(consumers.get(src, ())) == 1
    )


def kernel_architecture(kernel: Kernel, layer_types: Any = None) -> Architecture:
    """A standalone network computing `kernel` on an input of its input shape. A kernel with several inputs
    (add, concat) reads the network input for each of them: of equal shape, as a real add's are; a concat of
    inputs with different channel counts is measured with equal ones of the same total width."""
    nodes: list[Node] = []
    prev = INPUT
    in_shape = kernel.in_shape
    for i, (type_, attrs) in enumerate(kernel.layers):
        nid = f"k{i}"
        if i == 0:
            inputs: tuple[str, ...] = (INPUT,) * kernel.n_inputs
            if type_ == "concat" and len(in_shape) >= 1:
                total = int(kernel.feature("cout"))
                per = max(1, total // kernel.n_inputs)
                in_shape = (per, *in_shape[1:])
        else:
            inputs = (prev,)
        nodes.append(Node(nid, type_, dict(attrs), inputs))
        prev = nid
    return Architecture(in_shape, nodes, name=f"kernel-{kernel.kind}", layer_types=layer_types)


def measurable(kernel: Kernel) -> bool:
    return kernel.kind != "free"


def log_features(values: Any) -> list[float]:
    return [math.log1p(max(v, 0.0)) for v in values]


_CHANNEL_FACTORS = (0.5, 0.75, 1.25, 1.5, 2.0)


def _round_channels(c: float) -> int:
    return max(1, int(round(c / 8.0)) * 8) if c >= 8 else max(1, int(round(c)))


def neighbour_kernel_architectures(
    kernel: Kernel, rng: Any, count: int, layer_types: Any = None, tries: int = 40
) -> list[Architecture]:
    """Up to `count` standalone kernel networks near `kernel`'s configuration: input channels, output
    channels, spatial size, kernel size or stride perturbed (nn-Meter's adaptive sampling explores around
    configurations the model predicts badly). Invalid combinations are skipped."""
    from ..errors import ArchitectureError

    base = kernel_architecture(kernel, layer_types=layer_types)
    out: list[Architecture] = []
    seen = {kernel.key}
    for _ in range(tries):
        if len(out) >= count:
            break
        shape = list(base.input_shape)
        nodes = [dict(n.attrs.to_dict()) for n in base.nodes]
        first_type = base.nodes[0].type
        what = rng.choice(["cin", "cout", "hw", "kernel", "stride"])
        if what == "cin" or (what == "cout" and first_type != "conv2d" and first_type != "linear"):
            shape[0] = _round_channels(shape[0] * float(rng.choice(_CHANNEL_FACTORS)))
        elif what == "cout" and first_type in ("conv2d", "linear"):
            key = "filters" if first_type == "conv2d" else "units"
            nodes[0][key] = _round_channels(nodes[0].get(key, 8) * float(rng.choice(_CHANNEL_FACTORS)))
        elif what == "hw" and len(shape) == 3:
            # grow up to 64 px (cheap to measure) or the kernel's own size, whichever is larger: a kernel of an
            # ImageNet-sized seed (112 px) is explored at 56 px, never collapsed onto 64 px
            f = float(rng.choice((0.5, 2.0)))
            shape[1] = max(1, min(max(64, shape[1]), int(shape[1] * f)))
            shape[2] = max(1, min(max(64, shape[2]), int(shape[2] * f)))
        elif what == "kernel" and "kernel" in nodes[0]:
            nodes[0]["kernel"] = int(rng.choice((1, 3, 5, 7)))
        elif what == "stride" and "stride" in nodes[0]:
            nodes[0]["stride"] = int(rng.choice((1, 2)))
        else:
            continue
        if first_type == "conv2d":
            g = base.attrs(base.nodes[0].id).get("groups", 1)
            if g > 1 and g == base.input_shape[0]:  # keep a depthwise conv depthwise
                nodes[0]["groups"] = shape[0]
                nodes[0]["filters"] = shape[0] * max(1, base.attrs(base.nodes[0].id)["filters"] // g)
        try:
            arch = Architecture(
                tuple(shape),
                [Node(n.id, n.type, attrs, n.inputs) for n, attrs in zip(base.nodes, nodes)],
                name=base.name,
                layer_types=layer_types or base.layer_types,
            )
        except ArchitectureError:
            continue
        k2 = kernels_of(arch)[0]
        if k2.key in seen:
            continue
        seen.add(k2.key)
        out.append(arch)
    return out
