"""Torch half of the network embedding (tokens: `tokenizer.py`): one lookup table per attribute kind → a
layer LSTM over a layer's attribute embeddings → a network LSTM over the layers."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:  # pragma: no cover
    from ..ir.architecture import Architecture
    from .tokenizer import ArchitectureTokenizer


def _module_key(key: str) -> str:
    """A table's key as a submodule name (torch forbids dots in them): `conv2d.kernel` -> `conv2d:kernel`."""
    return key.replace(".", ":")


def _keyed_seed(*parts: object) -> int:
    """A generator seed from `parts` (stable across processes and Python's hash seed)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _keyed_rows(base: int, key: str, rows: int, dim: int, labels: Sequence[str] | None) -> torch.Tensor:
    """A table's [rows, dim] N(0, 1) start: from a generator of (base, key), or, with `labels` (one per row),
    each row from a generator of (base, key, its label)."""
    if labels is None:
        return torch.randn(rows, dim, generator=torch.Generator().manual_seed(_keyed_seed(base, key)))
    if len(labels) != rows:
        raise ValueError(f"table {key!r}: {len(labels)} row labels for {rows} rows")
    return torch.stack(
        [torch.randn(dim, generator=torch.Generator().manual_seed(_keyed_seed(base, key, lab))) for lab in labels]
    )


class NetworkEmbedding(nn.Module):
    """forward(tokens [B, L, T], lengths [B]) -> (network embedding [B, net_dim], layer embeddings
    [B, L, layer_dim] (zeros past each network's length), network-LSTM outputs [B, L, net_dim]).

    `table_sizes`: (key, rows) of each attribute kind's lookup table in token-id order (the tokenizer's
    `table_sizes`); each is an `nn.Embedding` of its own (`tables[key]`, dots written as colons), and token
    id 0 (padding) is a fixed zero vector before them.

    The tables start N(0, 1), as `nn.Embedding`'s, but each table's rows are drawn from a generator of its
    own, seeded by one number drawn from torch's global generator and the table's key; `row_labels` names
    the rows of the tables whose rows are names (the layer-type table), each row then drawn from its name.
    So what a seeded search's embedding starts from does not depend on which other layer types are
    installed: a plugin's new layer type adds its own rows and tables and changes no other, and the modules
    made after the embedding draw the same numbers."""

    def __init__(
        self,
        table_sizes: Sequence[tuple[str, int]],
        token_dim: int = 16,
        layer_dim: int = 32,
        net_dim: int = 64,
        row_labels: Mapping[str, Sequence[str]] | None = None,
    ):
        super().__init__()
        self.table_keys = [key for key, _ in table_sizes]
        base = int(torch.randint(0, 2**62, ()).item())  # the one draw from the global generator
        self.tables = nn.ModuleDict(
            {
                _module_key(key): nn.Embedding.from_pretrained(
                    _keyed_rows(base, key, rows, token_dim, (row_labels or {}).get(key)), freeze=False
                )
                for key, rows in table_sizes
            }
        )
        if len(self.tables) != len(self.table_keys):
            raise ValueError(f"table keys collide once dots become colons: {self.table_keys}")
        self.layer_lstm = nn.LSTM(token_dim, layer_dim, batch_first=True)
        self.network_lstm = nn.LSTM(layer_dim, net_dim, batch_first=True)
        self.token_dim, self.layer_dim, self.net_dim = token_dim, layer_dim, net_dim

    def check_tokenizer(self, tokenizer: ArchitectureTokenizer) -> None:
        """ConfigError unless `tokenizer`'s vocabulary is the one these tables were made for (its tokens would
        index other rows, or none)."""
        from ..errors import ConfigError

        sizes = [(key, cast(nn.Embedding, t).num_embeddings) for key, t in zip(self.table_keys, self.tables.values())]
        if sizes != tokenizer.table_sizes:
            raise ConfigError(
                "the embedding's lookup tables do not fit the tokenizer's vocabulary (it was made for another "
                "tokenizer): build it with make_network_embedding(tokenizer) of the tokenizer you embed with"
            )

    def table(self, key: str) -> nn.Embedding:
        """The lookup table of the attribute kind `key` (e.g. `channels`, `conv2d.kernel`)."""
        return cast(nn.Embedding, self.tables[_module_key(key)])

    def token_weight(self) -> torch.Tensor:
        """Every table's rows in token-id order after the padding row: [vocabulary, token_dim]. The tables
        stay separate parameters; concatenating them makes the lookup of a whole batch one gather."""
        weights = [cast(nn.Embedding, t).weight for t in self.tables.values()]
        return torch.cat([weights[0].new_zeros(1, self.token_dim), *weights])

    def layer_embeddings(self, rows: torch.Tensor) -> torch.Tensor:
        """The layer LSTM over token rows [R, T] (each a layer's attribute tokens, padding last) -> [R, layer_dim]."""
        emb = F.embedding(rows, self.token_weight())
        # the LSTM runs on the padded rows (padding sits at the end, so the outputs before it are exact) and
        # each row's last real step is read: packing would cost more than the few padded steps
        out, _ = self.layer_lstm(emb)
        return _last_step(out, (rows != 0).sum(dim=1).clamp(min=1))

    def network(
        self, layer_emb: torch.Tensor, lengths: torch.Tensor, grad_steps: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network LSTM over layer embeddings [B, L, layer_dim] (zeros past each length) -> (state after
        each network's last layer [B, net_dim], outputs [B, L, net_dim], zeros past each length).

        `grad_steps` = K truncates back-propagation to each network's last K layers: the earlier steps run
        without a graph, and the state after them starts the last K with grad (outputs before them carry no
        gradient into the embedding). The split is k steps before the batch's shortest network's end, so a
        network longer than that back-propagates through a few more. None (or K >= the shortest length)
        back-propagates through every step."""
        if grad_steps is not None and (
            isinstance(grad_steps, bool) or not isinstance(grad_steps, int) or grad_steps < 1
        ):
            from ..errors import ConfigError

            raise ConfigError(f"grad_steps must be an int >= 1 or None (every layer), got {grad_steps!r}")
        lengths = lengths.to(layer_emb.device)
        b, n_layers, _ = layer_emb.shape
        valid = torch.arange(n_layers, device=layer_emb.device)[None, :] < lengths[:, None]
        # One split for the whole batch, K steps before the shortest network's end: every network has all
        # the steps before it, so the state the LSTM returns there is each one's own (no packing)
        split = int(lengths.min()) - grad_steps if grad_steps is not None and b and torch.is_grad_enabled() else 0
        if split <= 0:
            # the padded batch, not packed sequences: on CPU packing makes the backward pass quadratic in
            # the sequence length (each step's gradient is scattered into the whole packed tensor)
            out, _ = self.network_lstm(layer_emb)
        else:
            with torch.no_grad():
                head, state = self.network_lstm(layer_emb[:, :split].detach())
            tail, _ = self.network_lstm(layer_emb[:, split:], state)
            out = torch.cat([head, tail], dim=1)
        out = out * valid[..., None]
        return _last_step(out, lengths.clamp(min=1)), out

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n_layers, n_tok = tokens.shape
        # A layer's embedding depends only on its token row, and networks repeat rows a lot (every relu of
        # a stage, every cell of a repeated-cell network): run the layer LSTM on distinct rows only.
        rows, inverse = torch.unique(tokens.reshape(b * n_layers, n_tok), dim=0, return_inverse=True)
        index = inverse.reshape(b, n_layers)
        return self.forward_rows(rows, index, lengths)

    def forward_rows(
        self, rows: torch.Tensor, index: torch.Tensor, lengths: torch.Tensor, grad_steps: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`forward` on a batch given as its distinct token rows [R, T] and, per network and layer, the index
        of its row [B, L] (anything past a network's length is ignored): `ArchitectureTokenizer.batch_rows`."""
        device = next(self.layer_lstm.parameters()).device
        rows, index, lengths = rows.to(device), index.to(device), lengths.to(device)
        n_layers = index.shape[1]
        valid = torch.arange(n_layers, device=device)[None, :] < lengths[:, None]
        per_row = self.layer_embeddings(rows)
        layer_emb = per_row[index.clamp(min=0)] * valid[..., None]
        h, out = self.network(layer_emb, lengths, grad_steps)
        return h, layer_emb, out

    def embed(self, tokenizer: ArchitectureTokenizer, archs: Sequence[Architecture]) -> torch.Tensor:
        """The network embeddings [len(archs), net_dim] of `archs` (a list: [0, net_dim] for none)."""
        self.check_tokenizer(tokenizer)
        rows, index, lengths = tokenizer.batch_rows(archs)
        if len(lengths) == 0:
            return self.network_lstm.weight_hh_l0.new_zeros(0, self.net_dim)
        return self.forward_rows(torch.from_numpy(rows), torch.from_numpy(index), torch.from_numpy(lengths))[0]


def _last_step(out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """out [N, T, D], lengths [N] (>= 1) -> out[n, lengths[n] - 1]: the LSTM state after the last real step."""
    index = (lengths - 1).to(out.device)[:, None, None].expand(-1, 1, out.shape[-1])
    return out.gather(1, index).squeeze(1)
