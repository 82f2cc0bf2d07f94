"""Torch half of the network embedding (tokens: `tokenizer.py`): lookup tables → layer LSTM → network LSTM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from ..ir.architecture import Architecture
    from .tokenizer import ArchitectureTokenizer


class NetworkEmbedding(nn.Module):
    """forward(tokens [B, L, T], lengths [B]) -> (network embedding [B, net_dim], layer embeddings
    [B, L, layer_dim] (zeros past each network's length), network-LSTM outputs [B, L, net_dim])."""

    def __init__(
        self, n_types: int, feature_table_size: int, token_dim: int = 16, layer_dim: int = 32, net_dim: int = 64
    ):
        super().__init__()
        self.type_table = nn.Embedding(n_types, token_dim, padding_idx=0)
        self.feature_table = nn.Embedding(feature_table_size, token_dim, padding_idx=0)
        self.layer_lstm = nn.LSTM(token_dim, layer_dim, batch_first=True)
        self.network_lstm = nn.LSTM(layer_dim, net_dim, batch_first=True)
        self.layer_dim, self.net_dim = layer_dim, net_dim

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n_layers, n_tok = tokens.shape
        flat = tokens.reshape(b * n_layers, n_tok)
        # A layer's embedding depends only on its token row, and networks repeat rows a lot (every
        # relu of a stage, every cell of a repeated-cell network): run the layer LSTM on distinct rows only.
        rows, inverse = torch.unique(flat, dim=0, return_inverse=True)
        emb = torch.cat([self.type_table(rows[:, :1]), self.feature_table(rows[:, 1:])], dim=1)
        tok_len = (rows != 0).sum(dim=1).clamp(min=1)
        # Both LSTMs run on the padded batch (padding sits at the end, so the outputs before it are exact)
        # and read each sequence's last real step: on CPU, packed sequences make the backward pass
        # quadratic in the sequence length (each step's gradient is scattered into the whole packed tensor),
        # 20x slower on 200-layer networks.
        out, _ = self.layer_lstm(emb)
        layer_emb = _last_step(out, tok_len)[inverse].reshape(b, n_layers, self.layer_dim)
        lengths = lengths.to(tokens.device)
        valid = torch.arange(n_layers, device=tokens.device)[None, :] < lengths[:, None]
        layer_emb = layer_emb * valid[..., None]
        out, _ = self.network_lstm(layer_emb)
        out = out * valid[..., None]
        return _last_step(out, lengths.clamp(min=1)), layer_emb, out

    def embed(self, tokenizer: ArchitectureTokenizer, archs: Sequence[Architecture]) -> torch.Tensor:
        tokens, lengths = tokenizer.batch(archs)
        device = self.type_table.weight.device
        return self(torch.from_numpy(tokens).to(device), torch.from_numpy(lengths))[0]


def _last_step(out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """out [N, T, D], lengths [N] (>= 1) -> out[n, lengths[n] - 1]: the LSTM state after the last real step."""
    index = (lengths - 1).to(out.device)[:, None, None].expand(-1, 1, out.shape[-1])
    return out.gather(1, index).squeeze(1)
