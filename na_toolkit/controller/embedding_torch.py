"""Torch half of the network embedding (see embedding.py): lookup tables → layer LSTM → network LSTM."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class NetworkEmbedding(nn.Module):
    """forward(tokens [B, L, T], lengths [B]) -> (network embedding [B, net_dim], layer embeddings
    [B, L, layer_dim] (zeros past each network's length), network-LSTM outputs [B, L, net_dim])."""

    def __init__(self, n_types: int, feature_table_size: int, token_dim: int = 16, layer_dim: int = 32, net_dim: int = 64):
        super().__init__()
        self.type_table = nn.Embedding(n_types, token_dim, padding_idx=0)
        self.feature_table = nn.Embedding(feature_table_size, token_dim, padding_idx=0)
        self.layer_lstm = nn.LSTM(token_dim, layer_dim, batch_first=True)
        self.network_lstm = nn.LSTM(layer_dim, net_dim, batch_first=True)
        self.layer_dim, self.net_dim = layer_dim, net_dim

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor):
        b, n_layers, n_tok = tokens.shape
        flat = tokens.reshape(b * n_layers, n_tok)
        emb = torch.cat([self.type_table(flat[:, :1]), self.feature_table(flat[:, 1:])], dim=1)
        tok_len = (flat != 0).sum(dim=1).clamp(min=1)
        packed = pack_padded_sequence(emb, tok_len.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.layer_lstm(packed)
        layer_emb = h[-1].reshape(b, n_layers, self.layer_dim)
        valid = torch.arange(n_layers, device=tokens.device)[None, :] < lengths.to(tokens.device)[:, None]
        layer_emb = layer_emb * valid[..., None]
        packed = pack_padded_sequence(layer_emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, _) = self.network_lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=n_layers)
        return h[-1], layer_emb, out

    def embed(self, tokenizer, archs) -> torch.Tensor:
        tokens, lengths = tokenizer.batch(archs)
        device = self.type_table.weight.device
        return self(torch.from_numpy(tokens).to(device), torch.from_numpy(lengths))[0]
