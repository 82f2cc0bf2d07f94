"""Torch half of the neural predictor: the shared network embedding + side inputs -> MLP head."""

from __future__ import annotations

import torch
from torch import nn

from ..embedding import ArchitectureTokenizer, make_network_embedding


class EmbeddingRegressor(nn.Module):
    """forward(tokens [B, L, T], lengths [B], side [B, S]) -> standardised metrics [B, outputs]."""

    def __init__(
        self,
        tokenizer: ArchitectureTokenizer,
        token_dim: int,
        layer_dim: int,
        net_dim: int,
        n_side: int,
        hidden: int,
        n_outputs: int,
        dropout: float,
    ):
        super().__init__()
        self.embedding = make_network_embedding(tokenizer, token_dim=token_dim, layer_dim=layer_dim, net_dim=net_dim)
        self.head = nn.Sequential(
            nn.Linear(net_dim + n_side, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_outputs),
        )

    def embed(self, tokens: torch.Tensor, lengths: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        device = self.head[0].weight.device
        net_emb = self.embedding(tokens.to(device), lengths)[0]
        return torch.cat([net_emb, side.to(device)], dim=1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(tokens, lengths, side))
