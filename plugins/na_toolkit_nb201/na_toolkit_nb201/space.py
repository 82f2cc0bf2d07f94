"""The NAS-Bench-201 search space in the toolkit IR (Dong & Yang, "NAS-Bench-201", ICLR 2020).

A cell is a DAG of 4 nodes; each of its 6 edges i -> j (i < j) carries one of 5 operations, and node j is
the sum of its incoming edges. The cell string lists the edges into node 1, 2 and 3:
`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`. Edge numbers 0..5 follow that order:
(0->1), (0->2), (1->2), (0->3), (1->3), (2->3).

The macro network (the one NB201 trained, and the one its latencies were measured on): a 3x3 conv stem with
16 channels + BN; three stages of 5 cells at 16/32/64 channels, joined by residual reduction blocks (the
ResNet basic block with stride 2: ReLU-conv3x3-BN, ReLU-conv3x3-BN, shortcut 2x2 average pool + 1x1 conv);
a final BN-ReLU, global average pooling and a linear classifier.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from na_toolkit.caches import lru_dict, memo_dict, register_cache
from na_toolkit.errors import ArchitectureError, DataError
from na_toolkit.ir.architecture import INPUT, Architecture, Attrs, Node

if TYPE_CHECKING:
    from na_toolkit.ir.layers import LayerTypeRegistry

#: the 5 NB201 operations, in the order the benchmark lists them
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (source node, target node) of edges 0..5, in cell-string order
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
N_EDGES = len(EDGES)
#: the name prefix that carries the cell string in the IR (`Architecture.name`)
NAME_PREFIX = "nb201:"
#: the macro skeleton of NB201 (fixed by the benchmark)
STEM_CHANNELS = 16
CELLS_PER_STAGE = 5
STAGE_CHANNELS = (16, 32, 64)
#: the ResNet cell of the NB201 paper (node 3 = skip(node 0) + skip(conv3x3(conv3x3(node 0)))): the default
#: seed, arch_index 11472 (93.91 % CIFAR-10 test accuracy)
RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
#: input shape and classes of each NB201 dataset
DATASETS: dict[str, tuple[tuple[int, int, int], int]] = {
    "c10": ((3, 32, 32), 10),
    "c100": ((3, 32, 32), 100),
    "in16": ((3, 16, 16), 120),
}


def parse_cell(arch_str: str) -> tuple[str, ...]:
    """The 6 edge operations of a cell string, in edge order. DataError when the string is malformed."""
    if not isinstance(arch_str, str):
        raise DataError(f"an NB201 cell string must be a str, got {type(arch_str).__name__}")
    ops = _parse_cell(arch_str.strip())
    return ops


_OP_RE = "(" + "|".join(OPS) + ")"
#: the canonical cell string (fast path; anything else goes through the parser that explains what is wrong)
_CELL_RE = re.compile(rf"\|{_OP_RE}~0\|\+\|{_OP_RE}~0\|{_OP_RE}~1\|\+\|{_OP_RE}~0\|{_OP_RE}~1\|{_OP_RE}~2\|")


@lru_cache(maxsize=32768)  # registered with na_toolkit.caches below
def _parse_cell(text: str) -> tuple[str, ...]:
    m = _CELL_RE.fullmatch(text)
    if m is not None:
        return m.groups()
    hint = "expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2| with op in " + ", ".join(OPS)
    parts = text.split("+")
    if len(parts) != 3:
        raise DataError(f"malformed NB201 cell string {text!r}: {hint}")
    ops: list[str] = []
    for j, part in enumerate(parts, start=1):
        if not (part.startswith("|") and part.endswith("|")) or len(part) < 2:
            raise DataError(f"malformed NB201 cell string {text!r}: node {j} is {part!r}; {hint}")
        edges = part[1:-1].split("|")
        if len(edges) != j:
            raise DataError(
                f"malformed NB201 cell string {text!r}: node {j} needs {j} edge(s), got {len(edges)}; {hint}"
            )
        for i, edge in enumerate(edges):
            op, sep, src = edge.partition("~")
            if not sep or op not in OPS or src != str(i):
                raise DataError(f"malformed NB201 cell string {text!r}: edge {edge!r} into node {j}; {hint}")
            ops.append(op)
    return tuple(ops)


register_cache("nb201.parse_cell", _parse_cell.cache_clear)


def cell_string(ops: Sequence[str]) -> str:
    """The cell string of 6 edge operations (inverse of `parse_cell`)."""
    ops = tuple(ops)
    if len(ops) != N_EDGES or any(op not in OPS for op in ops):
        raise DataError(f"an NB201 cell has {N_EDGES} edges, each one of {', '.join(OPS)}; got {list(ops)}")
    nodes = []
    for j in (1, 2, 3):
        edges = [f"{ops[e]}~{src}" for e, (src, dst) in enumerate(EDGES) if dst == j]
        nodes.append("|" + "|".join(edges) + "|")
    return "+".join(nodes)


def canonical_cell(arch_str: str) -> str:
    """The cell string normalised (whitespace stripped; validated)."""
    if isinstance(arch_str, str):
        text = arch_str.strip()
        if _CELL_RE.fullmatch(text):
            return text
    return cell_string(parse_cell(arch_str))


#: (id, type, inputs, attributes) -> Node: every node an NB201 network can hold (a few thousand)
_NODES = memo_dict("nb201.nodes", 65536)
#: (cell prefix, edge, op, input id, channels) -> (the edge's nodes, its output id): a few hundred per size
_EDGES = memo_dict("nb201.edges", 65536)


class _Graph:
    """Collects IR nodes with explicit ids (the ids spell out where each node sits in the macro network)."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def add(self, id_: str, type_: str, inputs: Sequence[str], **attrs) -> str:
        # the same node (id, type, inputs, attributes) recurs in most of the cells a search builds: one
        # shared immutable Node, whose attribute key and shape records are then already memoised
        key = (id_, type_, tuple(inputs), tuple(attrs.items()))
        node = _NODES.get(key)
        if node is None:
            node = _NODES[key] = Node(id_, type_, Attrs(attrs), tuple(inputs))
        self.nodes.append(node)
        return id_

    def relu_conv_bn(self, prefix: str, x: str, filters: int, kernel: int, stride: int = 1) -> str:
        # NB201's ReLUConvBN: conv without bias (BN follows), padding keeps the size at stride 1
        r = self.add(f"{prefix}.relu", "relu", [x])
        c = self.add(
            f"{prefix}.conv",
            "conv2d",
            [r],
            filters=filters,
            kernel=kernel,
            stride=stride,
            padding=(kernel - 1) // 2,
            bias=False,
        )
        return self.add(f"{prefix}.bn", "batchnorm2d", [c])

    def edge(self, prefix: str, op: str, x: str, channels: int) -> str:
        if op == "none":
            return self.add(f"{prefix}.zero", "zero", [x])
        if op == "skip_connect":
            return self.add(f"{prefix}.skip", "identity", [x])
        if op == "nor_conv_1x1":
            return self.relu_conv_bn(prefix, x, channels, 1)
        if op == "nor_conv_3x3":
            return self.relu_conv_bn(prefix, x, channels, 3)
        if op == "avg_pool_3x3":
            return self.add(
                f"{prefix}.avgpool", "avgpool2d", [x], kernel=3, stride=1, padding=1, count_include_pad=False
            )
        raise DataError(f"unknown NB201 operation {op!r}; known: {', '.join(OPS)}")

    def cell(self, prefix: str, ops: tuple[str, ...], x: str, channels: int) -> str:
        node_out = {0: x}
        for j in (1, 2, 3):
            terms = [
                self.cell_edge(prefix, e, ops[e], node_out[src], channels)
                for e, (src, dst) in enumerate(EDGES)
                if dst == j
            ]
            node_out[j] = terms[0] if len(terms) == 1 else self.add(f"{prefix}.n{j}", "add", terms)
        return node_out[3]

    def cell_edge(self, prefix: str, e: int, op: str, x: str, channels: int) -> str:
        # an edge's nodes are a function of where it sits, its op, its input and the width: the few hundred
        # such edges of the space, memoised whole (a new cell is mostly edges built before)
        key = (prefix, e, op, x, channels)
        hit = _EDGES.get(key)
        if hit is None:
            start = len(self.nodes)
            out = self.edge(f"{prefix}.e{e}", op, x, channels)
            _EDGES[key] = (tuple(self.nodes[start:]), out)
            return out
        self.nodes.extend(hit[0])
        return hit[1]  # type: ignore[no-any-return]

    def reduction(self, prefix: str, x: str, filters: int) -> str:
        a = self.relu_conv_bn(f"{prefix}.a", x, filters, 3, stride=2)
        b = self.relu_conv_bn(f"{prefix}.b", a, filters, 3)
        pool = self.add(f"{prefix}.short.pool", "avgpool2d", [x], kernel=2, stride=2, padding=0)
        short = self.add(f"{prefix}.short.conv", "conv2d", [pool], filters=filters, kernel=1, padding=0, bias=False)
        return self.add(f"{prefix}.add", "add", [b, short])


def builtin_layer_types() -> LayerTypeRegistry:
    """The built-in layer types (all an NB201 network uses), one registry for the process."""
    global _BUILTIN_LAYER_TYPES
    if _BUILTIN_LAYER_TYPES is None:
        from na_toolkit.builtin.layers import builtin_layer_types as make

        _BUILTIN_LAYER_TYPES = make()
    return _BUILTIN_LAYER_TYPES


_BUILTIN_LAYER_TYPES: LayerTypeRegistry | None = None


def nb201_architecture(
    arch_str: str,
    classes: int = 10,
    input_shape: tuple[int, int, int] = (3, 32, 32),
    layer_types: LayerTypeRegistry | None = None,
) -> Architecture:
    """The NB201 network of `arch_str` as an IR Architecture named `nb201:<cell string>`.

    Defaults give the CIFAR-10 network (the one the table's latencies and `c10_*` columns describe); use
    `classes=100` for CIFAR-100 and `classes=120, input_shape=(3, 16, 16)` for ImageNet16-120
    (or `nb201_architecture_for(arch_str, dataset)`). `layer_types`: the registry the network is built
    with (a toolkit's `layer_types`, as a search passes it); default the built-in layer types, the only
    ones an NB201 network uses."""
    ops = parse_cell(arch_str)
    key = (ops, classes, tuple(input_shape))
    if layer_types is None:
        layer_types = builtin_layer_types()
    hit = _BUILT.get(key)
    if hit is not None and hit.layer_types is layer_types:
        return hit  # type: ignore[no-any-return]
    arch = _build(ops, classes, input_shape, layer_types)
    # a network this builder made is an NB201 network: recognising it later is a lookup, not a rebuild
    _CELL_CACHE[arch.hash] = cell_string(ops)
    _BUILT[key] = arch
    return arch


#: the networks built last (Architecture is immutable, so one object can serve every caller): the
#: set_edge_op move and the table models ask for the same cells again and again during a search
_BUILT = lru_dict("nb201.networks", 4096)


def _build(
    ops: tuple[str, ...], classes: int, input_shape: tuple[int, int, int], layer_types: LayerTypeRegistry
) -> Architecture:
    g = _Graph()
    x = g.add("stem.conv", "conv2d", [INPUT], filters=STEM_CHANNELS, kernel=3, padding=1, bias=False)
    x = g.add("stem.bn", "batchnorm2d", [x])
    for stage, channels in enumerate(STAGE_CHANNELS):
        if stage > 0:
            x = g.reduction(f"red{stage}", x, channels)
        for c in range(CELLS_PER_STAGE):
            x = g.cell(f"s{stage}.c{c}", ops, x, channels)
    x = g.add("head.bn", "batchnorm2d", [x])
    x = g.add("head.relu", "relu", [x])
    x = g.add("head.pool", "global_avg_pool", [x])
    x = g.add("head.flatten", "flatten", [x])
    x = g.add("head.linear", "linear", [x], units=classes)
    return Architecture(input_shape, g.nodes, output=x, name=NAME_PREFIX + cell_string(ops), layer_types=layer_types)


def nb201_architecture_for(
    arch_str: str, dataset: str = "c10", layer_types: LayerTypeRegistry | None = None
) -> Architecture:
    """The NB201 network of `arch_str` sized for one of the benchmark's datasets (c10, c100, in16)."""
    if dataset not in DATASETS:
        raise DataError(f"unknown NB201 dataset {dataset!r}; known: {', '.join(DATASETS)}")
    shape, classes = DATASETS[dataset]
    return nb201_architecture(arch_str, classes=classes, input_shape=shape, layer_types=layer_types)


def parse_spec(spec: str, layer_types: LayerTypeRegistry, table: str | None = None) -> Architecture | None:
    """The NB201 network a spec names (the `nb201` seed family's `parse`): `INDEX` (an arch_index of the
    table, `table` or the shipped one) or a cell string `|op~0|+...` (DataError when malformed); None
    when `spec` is neither."""
    text = spec.strip()
    if text.isdigit():
        from .table import load_table

        return nb201_architecture(load_table(table).str_of(int(text)), layer_types=layer_types)
    if text.startswith("|"):
        return nb201_architecture(text, layer_types=layer_types)
    return None


# arch hash -> cell string (or None: not an NB201 network). Networks built by `nb201_architecture` are
# entered when built; any other network is recognised once by a rebuild + hash compare (the move's masks
# ask for every candidate).
_CELL_CACHE = lru_dict("nb201.cells", 100_000)


def nb201_cell_of(arch: Architecture, default=...) -> str:
    """The cell string of an NB201 network built by `nb201_architecture` (any dataset's size).

    The cell is read from the name (`nb201:<cell>`) and checked by rebuilding the network and comparing the
    content hash, so an NB201 network edited by another move (same name, other structure) is refused.
    ArchitectureError when `arch` is not an NB201 network, unless `default` is given (returned instead)."""
    key = arch.hash
    if key not in _CELL_CACHE:
        _CELL_CACHE[key] = _recognise(arch)
    cell = _CELL_CACHE.get(key)
    if cell is None:
        if default is not ...:
            return default
        raise ArchitectureError(
            f"architecture {arch.name or arch.hash!r} is not an NB201 network (build it with "
            f"nb201_architecture(arch_str); NB201 networks edited by other moves leave the space)"
        )
    return cell


def is_nb201(arch: Architecture) -> bool:
    return nb201_cell_of(arch, default=None) is not None


def _recognise(arch: Architecture) -> str | None:
    if not arch.name.startswith(NAME_PREFIX):
        return None
    try:
        ops = parse_cell(arch.name[len(NAME_PREFIX) :])
        if len(arch.input_shape) != 3 or len(arch.output_shape) != 1:
            return None
        rebuilt = nb201_architecture(
            cell_string(ops),
            classes=arch.output_shape[0],
            input_shape=arch.input_shape,  # type: ignore[arg-type]
            layer_types=arch.layer_types,
        )
    except (DataError, ArchitectureError):
        return None
    return rebuilt.name[len(NAME_PREFIX) :] if rebuilt.hash == arch.hash else None
