"""The network embedding's tokenizer (no torch): an architecture becomes one row of discrete tokens per layer.

Every token belongs to one attribute kind, and every attribute kind has a lookup table of its own
(`network.NetworkEmbedding`): the generic kinds every layer has (`GENERIC`: its layer type, output channels,
height, width, number of inputs, and the distance to each input, in layers: tables `generic.NAME`), then
the attributes each layer type declares (`LayerType.embedded_attrs()`: a categorical, exact-integer or
float-grid vocabulary each, in tables `TYPE.ATTR` of that type's own). Values are exact within the declared
range, with an explicit out-of-vocabulary token per table (no hashing, no buckets), so every value a move
can set is a token of its own.

Token ids are global: 0 is padding, then each table's rows in turn, its out-of-vocabulary row first. A
layer's row is [type, channels, height, width, inputs, its type's attributes in declared order, the
distances of its first `input_distances` inputs], padded with 0 to `max_tokens`.

The vocabulary is fixed at construction (from a layer-type registry: `for_registry`) and saved whole by
`to_json`, so a saved predictor reloads it exactly, whatever plugins are installed when it is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from cachetools import LRUCache

from ..caches import MemoDict
from ..errors import ArchitectureError, ConfigError, DataError, NAToolkitError
from ..ir.architecture import Architecture, architectures
from ..ir.layers import (
    EmbeddedAttr,
    EmbeddedCategorical,
    EmbeddedInt,
    LayerTypeRegistry,
    embedded_attr_from_json,
)

if TYPE_CHECKING:  # pragma: no cover
    from .network import NetworkEmbedding

PAD = 0
#: the type table comes first: its out-of-vocabulary row (a layer type the vocabulary does not know)
UNKNOWN_TYPE = 1
#: distinct layers whose tokens are remembered (a few hundred bytes each)
LAYER_MEMO_SIZE = 100_000
#: the format of `to_json` (1 was the hashed-feature tokenizer: not readable any more)
VOCABULARY_VERSION = 2
#: the generic attribute kinds, in row order after the type; their tables are `generic.NAME`
GENERIC = ("channels", "height", "width", "inputs")
GENERIC_PREFIX = "generic"


class ArchitectureTokenizer:
    """Architecture → int array [layers, max_tokens], row i for layer i (topological order).

    `layer_types` maps each layer type's name to its embedded attributes (`LayerType.embedded_attrs()`); the
    generic ranges are exact up to their maxima (height and width 0: a vector): output channels
    1..max_channels, sizes 0..max_spatial, inputs 0..max_inputs, distances 1..max_distance (a layer reading
    the network input is at distance position + 1), each with an out-of-vocabulary token beyond."""

    def __init__(
        self,
        layer_types: Mapping[str, Sequence[EmbeddedAttr]],
        max_channels: int = 4096,
        max_spatial: int = 1024,
        max_inputs: int = 64,
        max_distance: int = 1024,
        input_distances: int = 6,
        cache_size: int = 50_000,
    ):
        if not isinstance(layer_types, Mapping):
            raise ConfigError(
                f"a tokenizer takes each layer type's embedded attributes by name (a mapping), got "
                f"{type(layer_types).__name__}: ArchitectureTokenizer.for_registry(toolkit.layer_types) builds it"
            )
        self.declarations: dict[str, tuple[EmbeddedAttr, ...]] = {
            name: tuple(layer_types[name]) for name in sorted(layer_types)
        }
        self.layer_types = list(self.declarations)
        self.limits = {
            "max_channels": max_channels,
            "max_spatial": max_spatial,
            "max_inputs": max_inputs,
            "max_distance": max_distance,
            "input_distances": input_distances,
        }
        self.input_distances = input_distances
        generic_attrs = (
            EmbeddedCategorical("type", tuple(self.layer_types)),
            EmbeddedInt("channels", 1, max_channels),
            EmbeddedInt("height", 0, max_spatial),
            EmbeddedInt("width", 0, max_spatial),
            EmbeddedInt("inputs", 0, max_inputs),
            EmbeddedInt("distance", 1, max_distance),
        )
        generic: list[tuple[str, EmbeddedAttr]] = [(f"{GENERIC_PREFIX}.{a.name}", a) for a in generic_attrs]
        own: list[tuple[str, EmbeddedAttr]] = []
        for name, attrs in self.declarations.items():
            seen: set[str] = set()
            for a in attrs:
                if a.name in seen:
                    raise ArchitectureError(
                        f"layer type {name!r} declares the embedded attribute {a.name!r} twice; give each its own name"
                    )
                seen.add(a.name)
                own.append((f"{name}.{a.name}", a))
        #: (table key, vocabulary) of every attribute kind, in token-id order
        self.tables: list[tuple[str, EmbeddedAttr]] = generic + own
        keys = [k for k, _ in self.tables]
        if len(set(keys)) != len(keys):
            raise ArchitectureError(
                f"two embedding tables share a name among {keys}; rename the layer type or the attribute"
            )
        self.offsets: dict[str, int] = {}
        first = 1  # 0: padding
        for key, vocab in self.tables:
            self.offsets[key] = first  # the table's out-of-vocabulary row
            first += vocab.size + 1
        self.vocab_size = first
        self._generic = {v.name: (v, self.offsets[k]) for k, v in generic}
        self._own = {
            name: tuple((a, self.offsets[f"{name}.{a.name}"]) for a in attrs)
            for name, attrs in self.declarations.items()
        }
        self.max_tokens = 1 + len(GENERIC) + max((len(a) for a in self.declarations.values()), default=0)
        self.max_tokens += input_distances
        #: architectures whose row ids are kept (8 bytes a layer); 0 keeps none
        self.cache_size = cache_size
        self._cache: LRUCache[str, np.ndarray] = LRUCache(maxsize=max(cache_size, 1))
        # a layer's tokens depend only on its type, attributes, shapes and input distances, which repeat
        # across the cells of a network and across the networks a search visits
        self._layer_memo = MemoDict(LAYER_MEMO_SIZE)  # (inference record, inputs, distances) -> row id
        # every distinct token row seen gets an id, its row of `_table` (the first `_n_rows` are filled): a
        # network is stored as its row ids, and the embedding runs its layer LSTM once per distinct row
        self._row_ids: dict[tuple[int, ...], int] = {}
        self._table = np.zeros((256, self.max_tokens), dtype=np.int64)
        self._n_rows = 0

    @classmethod
    def for_registry(cls, layer_types: LayerTypeRegistry, **kw: Any) -> ArchitectureTokenizer:
        """A tokenizer whose vocabulary is every layer type of `layer_types` (a plugin's too) with the
        attributes each declares."""
        if not isinstance(layer_types, LayerTypeRegistry):
            raise ConfigError(
                f"for_registry takes a layer-type registry (toolkit.layer_types), got {type(layer_types).__name__}"
            )
        return cls({name: layer_types.get(name).embedded_attrs() for name in layer_types.names()}, **kw)

    def __getstate__(self) -> dict[str, Any]:
        # a pickled tokenizer (inside a pickled predictor) leaves its memos behind: they are keyed by the
        # IR's inference records of this process, and refill as architectures are encoded again
        state = dict(self.__dict__)
        state["_layer_memo"] = None
        state["_cache"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._layer_memo = MemoDict(LAYER_MEMO_SIZE)
        self._cache = LRUCache(maxsize=max(self.cache_size, 1))

    def clear_cache(self) -> None:
        """Forget the tokens of every architecture (benchmarks that time the cold path call it). The
        per-layer memo stays: a new architecture of a search still meets layers seen before."""
        self._cache.clear()

    @property
    def table_sizes(self) -> list[tuple[str, int]]:
        """(key, rows) of each lookup table in token-id order, its out-of-vocabulary row included."""
        return [(key, vocab.size + 1) for key, vocab in self.tables]

    @property
    def row_labels(self) -> dict[str, list[str]]:
        """A label per row of each categorical table (the layer-type table: its out-of-vocabulary row, then
        each type's name; a type's categorical attribute: each value), by table key; the other tables' rows
        are the values of a range, known by their index."""
        return {
            key: ["<out of vocabulary>", *map(repr, vocab.values)]
            for key, vocab in self.tables
            if isinstance(vocab, EmbeddedCategorical)
        }

    @staticmethod
    def _token(vocab: EmbeddedAttr, offset: int, value: Any) -> int:
        i = vocab.index(value)
        return offset if i is None else offset + 1 + i

    def _new_row(self, arch: Architecture, i: int, dists: tuple[int, ...]) -> int:
        """The id of layer i's token row, computed (the memo missed)."""
        node = arch.nodes[i]
        shape = arch.shape(node.id)
        g = self._generic
        dims = shape[1:]
        tokens = [
            self._token(*g["type"], node.type),
            self._token(*g["channels"], shape[0]),
            self._token(*g["height"], dims[0] if len(dims) >= 1 else 0),
            self._token(*g["width"], dims[1] if len(dims) >= 2 else 0),
            self._token(*g["inputs"], len(node.inputs)),
        ]
        own = self._own.get(node.type)
        if own:
            values = arch.layer_type(node.id).embedded_values(arch.attrs(node.id), arch.in_shapes(node.id), shape)
            tokens.extend(self._token(vocab, offset, values.get(vocab.name)) for vocab, offset in own)
        tokens.extend(self._token(*g["distance"], d) for d in dists)
        row = tuple(tokens) + (PAD,) * (self.max_tokens - len(tokens))
        rid = self._row_ids.get(row)
        if rid is None:
            rid = self._row_ids[row] = self._n_rows
            if rid == len(self._table):
                self._table = np.concatenate([self._table, np.zeros_like(self._table)])
            self._table[rid] = row
            self._n_rows += 1
        return rid

    def _compute_row_ids(self, arch: Architecture) -> np.ndarray:
        index = arch._index  # topological positions
        memo, k = self._layer_memo, self.input_distances
        ids = np.empty(len(arch.nodes), dtype=np.int64)
        # a layer's row is a function of its inference record (shared by every node of one layer type,
        # attributes and input shapes, across the networks of a search: hashed by identity) and of the
        # distances to its inputs
        for i, (node, rec) in enumerate(zip(arch.nodes, arch.node_records())):
            dists = tuple(i - index[s] if s in index else i + 1 for s in node.inputs[:k])
            key = (rec, len(node.inputs), dists)
            rid = memo.get(key)
            if rid is None:
                rid = memo[key] = self._new_row(arch, i, dists)
            ids[i] = rid
        return ids

    def row_ids(self, arch: Architecture) -> np.ndarray:
        """The id of each layer's token row (int64 [layers]); equal ids, equal rows (`rows`)."""
        if not isinstance(arch, Architecture):
            architectures([arch], "the tokenizer's network")  # a DataError naming what was passed
        cached = self._cache.get(arch.hash)
        if cached is not None:
            return cached
        ids = self._compute_row_ids(arch)
        if self.cache_size > 0:
            self._cache[arch.hash] = ids
        return ids

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The token rows of row ids: int64 [len(ids), max_tokens]."""
        return self._table[np.asarray(ids, dtype=np.int64)]

    def encode(self, arch: Architecture) -> np.ndarray:
        """The token rows of `arch`: int64 [layers, max_tokens]."""
        return self.rows(self.row_ids(arch))

    def batch(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """Padded tokens [B, max layers, max_tokens] and the layer counts [B] (B may be 0)."""
        encoded = [self.encode(a) for a in architectures(archs)]
        if not encoded:
            return np.zeros((0, 0, self.max_tokens), dtype=np.int64), np.zeros(0, dtype=np.int64)
        lengths = np.array([e.shape[0] for e in encoded], dtype=np.int64)
        out = np.zeros((len(encoded), int(lengths.max()), self.max_tokens), dtype=np.int64)
        for b, e in enumerate(encoded):
            out[b, : e.shape[0]] = e
        return out, lengths

    def batch_rows(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The batch as distinct rows: (rows [R, max_tokens], index [B, max layers] into rows (-1: past a
        network's end), lengths [B]); what the embedding needs, without deduplicating B x L rows again."""
        ids = [self.row_ids(a) for a in architectures(archs)]
        if not ids:
            return self.rows(np.zeros(0, dtype=np.int64)), np.zeros((0, 0), dtype=np.int64), np.zeros(0, dtype=np.int64)
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        flat = np.concatenate(ids)
        distinct, inverse = np.unique(flat, return_inverse=True)
        # rows in the order of their tokens, not of their ids (the order this tokenizer happened to meet
        # them in): the embedding's floating-point results must not depend on the tokenizer's history
        order = np.lexsort(self._table[distinct].T[::-1])
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        distinct, inverse = distinct[order], rank[inverse]
        index = np.full((len(ids), int(lengths.max())), -1, dtype=np.int64)
        start = 0
        for b, n in enumerate(lengths):
            index[b, :n] = inverse[start : start + n]
            start += n
        return self.rows(distinct), index, lengths

    def to_json(self) -> dict[str, Any]:
        """The whole vocabulary (what `from_json` rebuilds exactly, token for token)."""
        return {
            "version": VOCABULARY_VERSION,
            **self.limits,
            "layer_types": {name: [a.to_json() for a in attrs] for name, attrs in self.declarations.items()},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ArchitectureTokenizer:
        if not isinstance(doc, dict) or doc.get("version") != VOCABULARY_VERSION:
            version = doc.get("version", 1) if isinstance(doc, dict) else None
            raise DataError(
                f"the saved embedding vocabulary has version {version!r}, this na_toolkit reads version "
                f"{VOCABULARY_VERSION} (one table per declared attribute); fit the predictor again"
            )
        try:
            layer_types = {
                name: [embedded_attr_from_json(a) for a in attrs] for name, attrs in doc["layer_types"].items()
            }
            limits = {key: int(doc[key]) for key in ("max_channels", "max_spatial", "max_inputs", "max_distance")}
            return cls(layer_types, input_distances=int(doc["input_distances"]), **limits)
        except (KeyError, TypeError, ValueError, AttributeError, NAToolkitError) as e:
            raise DataError(f"the saved embedding vocabulary is malformed ({e!r}); fit the predictor again") from None


def make_network_embedding(
    tokenizer: ArchitectureTokenizer, token_dim: int = 16, layer_dim: int = 32, net_dim: int = 64
) -> NetworkEmbedding:
    """A `NetworkEmbedding` module with one lookup table per attribute kind of `tokenizer` (imports torch
    lazily)."""
    from .network import NetworkEmbedding

    return NetworkEmbedding(tokenizer.table_sizes, token_dim, layer_dim, net_dim, tokenizer.row_labels)
