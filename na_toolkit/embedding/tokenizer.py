"""The network embedding's tokenizer (no torch): an architecture becomes one row of discrete tokens per layer.

Each layer becomes a short sequence of tokens (its type, output channels, spatial size, number of inputs,
distance to its inputs, and the layer type's own `features()`); `network.NetworkEmbedding` embeds them
(lookup tables -> layer LSTM -> network LSTM).

The type vocabulary comes from a layer-type registry: every registered layer type (a plugin's included) owns
a row of the type table. Feature tokens `key=value` go through a fixed-size table indexed by a stable hash
(crc32), so a plugin's new features need no code here; values are bucketed (log2 for sizes) so the table
stays small.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from cachetools import LRUCache

if TYPE_CHECKING:  # pragma: no cover
    from ..ir.architecture import Architecture
    from ..ir.layers import LayerTypeRegistry
    from .network import NetworkEmbedding

PAD = 0
UNKNOWN_TYPE = 1
#: distinct layers whose tokens are remembered (a few hundred bytes each)
LAYER_MEMO_SIZE = 100_000


def _log2_bucket(value: int, cap: int = 15) -> int:
    return min(cap, int(math.log2(value)) + 1) if value > 0 else 0


class ArchitectureTokenizer:
    """Architecture → int array [layers, tokens]. Row i is layer i (topological order); column 0 is the
    type id, the rest hashed feature tokens (0 = padding)."""

    def __init__(
        self, layer_types: Sequence[str], feature_table_size: int = 1024, max_tokens: int = 12, cache_size: int = 50_000
    ):
        self.layer_types = sorted(layer_types)
        self.type_ids = {name: i + 2 for i, name in enumerate(self.layer_types)}  # 0 pad, 1 unknown
        self.feature_table_size = feature_table_size
        self.max_tokens = max_tokens
        #: architectures whose tokens are kept (a large network's tokens take ~20 KB each); 0 keeps none
        self.cache_size = cache_size
        self._cache: LRUCache[str, np.ndarray] = LRUCache(maxsize=max(cache_size, 1))
        # (key, value) -> token id: the same few hundred feature tokens recur in every network (bounded by
        # the distinct features of the registered layer types, so a plain dict)
        self._token_ids: dict[tuple[str, int], int] = {}
        # a layer's tokens depend only on its type, attributes, shapes and input distances, which repeat
        # across the cells of a network and across the networks a search visits
        self._layer_memo: LRUCache[tuple[Any, ...], list[int]] = LRUCache(maxsize=LAYER_MEMO_SIZE)

    @classmethod
    def for_registry(cls, layer_types: LayerTypeRegistry, **kw: Any) -> ArchitectureTokenizer:
        """A tokenizer whose type vocabulary is every layer type of `layer_types`."""
        return cls(layer_types.names(), **kw)

    def clear_cache(self) -> None:
        """Forget the tokens of every architecture (benchmarks that time the cold path call it). The
        per-layer memo stays: a new architecture of a search still meets layers seen before."""
        self._cache.clear()

    @property
    def n_types(self) -> int:
        return len(self.layer_types) + 2

    def _token(self, key: str, value: int) -> int:
        # ids 1.. in the feature table; 0 is padding
        tid = self._token_ids.get((key, value))
        if tid is None:
            tid = self._token_ids[(key, value)] = 1 + zlib.crc32(f"{key}={value}".encode()) % (
                self.feature_table_size - 1
            )
        return tid

    def layer_tokens(self, arch: Architecture, i: int) -> list[int]:
        node = arch.nodes[i]
        shape = arch.shape(node.id)
        index = arch._index  # topological positions
        tokens = [self.type_ids.get(node.type, UNKNOWN_TYPE)]
        feats: list[tuple[str, int]] = [
            ("ch", _log2_bucket(shape[0])),
            ("hw", _log2_bucket(shape[1]) if len(shape) == 3 else 0),
            ("nin", min(len(node.inputs), 4)),
        ]
        for s in node.inputs[:3]:
            dist = i - index[s] if s in index else i + 1
            feats.append(("dist", min(dist, 16)))
        in_shapes = arch.in_shapes(node.id)
        memo_key = (node.type, node.attrs, shape, tuple(in_shapes), tuple(feats))
        hit = self._layer_memo.get(memo_key)
        if hit is not None:
            return hit
        lt = arch.layer_type(node.id)
        for k, v in sorted(lt.features(arch.attrs(node.id), in_shapes, shape).items()):
            feats.append((f"{node.type}.{k}", int(v)))
        out = (tokens + [self._token(k, v) for k, v in feats])[: self.max_tokens]
        self._layer_memo[memo_key] = out
        return out

    def encode(self, arch: Architecture) -> np.ndarray:
        cached = self._cache.get(arch.hash)
        if cached is not None:
            return cached
        rows = np.zeros((len(arch.nodes), self.max_tokens), dtype=np.int64)
        for i in range(len(arch.nodes)):
            toks = self.layer_tokens(arch, i)
            rows[i, : len(toks)] = toks
        if self.cache_size > 0:
            self._cache[arch.hash] = rows
        return rows

    def batch(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """Padded tokens [B, max layers, max_tokens] and the layer counts [B]."""
        encoded = [self.encode(a) for a in archs]
        lengths = np.array([e.shape[0] for e in encoded], dtype=np.int64)
        out = np.zeros((len(encoded), int(lengths.max()), self.max_tokens), dtype=np.int64)
        for b, e in enumerate(encoded):
            out[b, : e.shape[0]] = e
        return out, lengths

    def to_json(self) -> dict[str, Any]:
        return {
            "layer_types": self.layer_types,
            "feature_table_size": self.feature_table_size,
            "max_tokens": self.max_tokens,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ArchitectureTokenizer:
        return cls(doc["layer_types"], doc["feature_table_size"], doc["max_tokens"])


def make_network_embedding(
    tokenizer: ArchitectureTokenizer, token_dim: int = 16, layer_dim: int = 32, net_dim: int = 64
) -> NetworkEmbedding:
    """A `NetworkEmbedding` module sized for `tokenizer` (imports torch lazily)."""
    from .network import NetworkEmbedding

    return NetworkEmbedding(tokenizer.n_types, tokenizer.feature_table_size, token_dim, layer_dim, net_dim)
