"""Torch half of the neural predictor: the network embedding + side inputs -> an ensemble of MLP heads, and
its training loop (L1 on standardised targets, as in the paper, plus a pairwise ranking term)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..embedding import ArchitectureTokenizer, make_network_embedding


class EmbeddingRegressor(nn.Module):
    """forward(tokens [B, L, T], lengths [B], side [B, S]) -> standardised metrics [heads, B, outputs].

    `embedding` is a `NetworkEmbedding` built elsewhere (the one a controller is built on, when the two
    share it), or None for a new one sized for `tokenizer`."""

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
        heads: int = 1,
        embedding: nn.Module | None = None,
    ):
        super().__init__()
        if embedding is None:
            embedding = make_network_embedding(tokenizer, token_dim=token_dim, layer_dim=layer_dim, net_dim=net_dim)
        self.embedding = embedding
        self.heads = nn.ModuleList(_head(net_dim + n_side, hidden, n_outputs, dropout) for _ in range(heads))

    def embed(self, tokens: torch.Tensor, lengths: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        device = self.heads[0][0].weight.device
        net_emb = self.embedding(tokens.to(device), lengths)[0]
        return torch.cat([net_emb, side.to(device)], dim=1)

    def head_outputs(self, emb: torch.Tensor) -> torch.Tensor:
        """[heads, B, outputs] from the embedding and side inputs [B, net_dim + side]."""
        return torch.stack([h(emb) for h in self.heads])

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return self.head_outputs(self.embed(tokens, lengths, side))


def _head(n_in: int, hidden: int, n_outputs: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_outputs),
    )


@dataclass(frozen=True)
class TrainSettings:
    """How `train` runs: epochs of mini-batches under AdamW with a one-cycle learning rate; the loss is the
    L1 error of every head plus `rank_weight` times a pairwise logistic ranking loss on the batch's pairs."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    rank_weight: float
    seed: int


def pairwise_rank_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss log(1 + exp(-s_ij (p_i - p_j))) over the ordered pairs of a batch whose targets
    differ (s_ij: the sign of t_i - t_j), per head and output. pred [H, B, O], target [B, O]."""
    dt = target[:, None, :] - target[None, :, :]  # [B, B, O]
    sign = torch.sign(dt)
    valid = sign != 0
    if not bool(valid.any()):
        return pred.sum() * 0.0
    dp = pred[:, :, None, :] - pred[:, None, :, :]  # [H, B, B, O]
    loss = nn.functional.softplus(-sign * dp)
    return loss[:, valid].mean()


def train(
    model: EmbeddingRegressor,
    tokens: np.ndarray,
    lengths: np.ndarray,
    side: np.ndarray,
    z: np.ndarray,
    settings: TrainSettings,
    device: torch.device,
) -> None:
    """Fit `model` (in place) to the standardised targets z [n, outputs]."""
    t_tok = torch.from_numpy(tokens)
    t_len = torch.from_numpy(lengths)
    t_side = torch.from_numpy(side).float()
    t_z = torch.from_numpy(z).float()
    n = len(z)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = max(1, -(-n // settings.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(settings.seed)
    model.train()
    for _epoch in range(settings.epochs):
        order = torch.randperm(n, generator=gen)
        for k in range(steps_per_epoch):
            idx = order[k * settings.batch_size : (k + 1) * settings.batch_size]
            if len(idx) == 0:
                continue
            longest = int(t_len[idx].max())
            pred = model(t_tok[idx, :longest].to(device), t_len[idx], t_side[idx].to(device))
            target = t_z[idx].to(device)
            loss = (pred - target[None]).abs().mean()  # L1, as in the paper
            if settings.rank_weight > 0 and len(idx) > 1:
                loss = loss + settings.rank_weight * pairwise_rank_loss(pred, target)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
    model.eval()
