"""The neural predictor of Neural Architect: the shared LSTM network embedding (per-feature lookup tables ->
layer LSTM -> network LSTM, `na_toolkit.embedding`) with a small MLP head per metric, trained end to end
with an L1 loss on standardised targets.

`fit(archs, y)` with a 1-D `y` trains one head; a 2-D `y` [samples, metrics] (e.g. accuracy and training time
columns) trains one head per column on the shared embedding, and `predict` returns [n, metrics]. Optional
inputs next to the embedding: three cost scalars of the IR (log parameters, FLOPs, activation bytes), which
the embedding would otherwise have to learn to count, and the dataset descriptor.

Uncertainty: Monte-Carlo dropout in the head (Gal & Ghahramani 2016), `mc_samples` passes on the same
embedding. Persistence: the tokenizer vocabulary and every weight as arrays in the JSON document, no pickle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ConfigDict, Field

from .. import validation
from ..errors import DataError
from .base import Predictor, decode_array, encode_array
from .features import _dataset_rows, dataset_matrix


def _cost_scalars(archs: list) -> np.ndarray:
    out = np.empty((len(archs), 3))
    for i, a in enumerate(archs):
        c = a.cost
        out[i] = (np.log10(1.0 + c.params), np.log10(1.0 + c.flops), np.log10(1.0 + c.activation_bytes))
    return out


class NeuralPredictor(Predictor):
    name = "neural"
    description = "Neural Architect's predictor: LSTM network embedding + MLP heads, L1 loss; std = MC dropout"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        token_dim: int = Field(16, ge=1, description="width of a layer's token embedding")
        layer_dim: int = Field(32, ge=1, description="width of the layer LSTM")
        net_dim: int = Field(64, ge=1, description="width of the network embedding")
        hidden: int = Field(64, ge=1, description="width of the MLP heads")
        dropout: float = Field(0.1, ge=0, lt=1, description="dropout (also the MC-dropout uncertainty)")
        epochs: int = Field(60, ge=1)
        batch_size: int = Field(32, ge=1)
        lr: float = Field(3e-3, gt=0, description="Adam learning rate")
        weight_decay: float = Field(1e-5, ge=0)
        cost_inputs: bool = Field(True, description="feed the network's cost (params, FLOPs) to the heads")
        log_target: bool = Field(False, description="fit the log of the target (positive targets: times, latencies)")
        mc_samples: int = Field(20, ge=1, description="dropout samples behind the uncertainty")
        device: str = Field("auto", description='"cpu", "cuda", "cuda:N" or "auto"')
        threads: int | None = Field(1, ge=1, description="torch CPU threads while it runs (none: torch's setting)")
        random_state: int | None = Field(0, description="model seed (none: the search's random_seed)")

    has_uncertainty = True
    multi_output = True
    min_samples = 4

    def __init__(
        self,
        token_dim: int = 16,
        layer_dim: int = 32,
        net_dim: int = 64,
        hidden: int = 64,
        dropout: float = 0.1,
        epochs: int = 60,
        batch_size: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 1e-5,
        cost_inputs: bool = True,
        log_target: bool = False,
        mc_samples: int = 20,
        device: str = "auto",
        threads: int | None = 1,
        random_state: int = 0,
    ):
        self.token_dim = token_dim
        self.layer_dim = layer_dim
        self.net_dim = net_dim
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.cost_inputs = cost_inputs
        self.log_target = log_target
        self.mc_samples = mc_samples
        self.device = device
        self.threads = threads
        self.random_state = random_state

    def _threads(self):
        """Context: torch intra-op threads while this predictor runs. The LSTM steps are tiny matrix products
        for which thread synchronisation costs more than it saves (3x slower with 2 threads on a busy
        2-core machine), so the default is 1; None leaves torch's setting alone."""
        from ..torchutil import torch_threads

        return torch_threads(self.threads)

    # ---- modules -----------------------------------------------------------------------------------------
    def _torch_device(self):
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _build(self, tokenizer, n_side: int, n_outputs: int):
        from .neural_torch import EmbeddingRegressor

        return EmbeddingRegressor(
            tokenizer, self.token_dim, self.layer_dim, self.net_dim, n_side, self.hidden, n_outputs, self.dropout
        )

    def _side(self, archs: list, datasets: Any) -> np.ndarray:
        """Standardised side inputs (cost scalars, dataset descriptor) next to the embedding."""
        return (self._raw_side(archs, datasets) - self.side_mean_) / self.side_scale_

    def _raw_side(self, archs: list, datasets: Any) -> np.ndarray:
        parts = []
        if self.cost_inputs:
            parts.append(_cost_scalars(archs))
        if self.dataset_dim_:
            parts.append(dataset_matrix(datasets, len(archs), self.dataset_dim_))
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(archs), 0))

    # ---- fit / predict -------------------------------------------------------------------------------------
    def _fit(self, archs: list, y: np.ndarray, datasets: Any) -> None:
        import torch

        from ..embedding import ArchitectureTokenizer

        y2 = y.reshape(len(y), -1)
        if self.log_target:
            if np.any(y2 <= 0):
                raise DataError("log_target=True needs positive targets")
            y2 = np.log(y2)
        self.single_output_ = y.ndim == 1
        self.y_mean_ = y2.mean(axis=0)
        self.y_scale_ = np.where(y2.std(axis=0) > 0, y2.std(axis=0), 1.0)
        self.dataset_dim_ = 0 if datasets is None else _dataset_rows(datasets, len(archs)).shape[1]
        raw_side = self._raw_side(archs, datasets)
        self.side_mean_ = raw_side.mean(axis=0)
        self.side_scale_ = np.where(raw_side.std(axis=0) > 1e-12, raw_side.std(axis=0), 1.0)
        side = (raw_side - self.side_mean_) / self.side_scale_
        z = (y2 - self.y_mean_) / self.y_scale_

        # the vocabulary: every layer type of the registry the training networks were built with
        tokenizer = ArchitectureTokenizer.for_registry(archs[0].layer_types)
        tokens, lengths = tokenizer.batch(archs)
        device = self._torch_device()
        with self._threads(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.random_state)
            model = self._build(tokenizer, side.shape[1], z.shape[1]).to(device)
            self._train(model, tokens, lengths, side, z, device)
        self.tokenizer_ = tokenizer
        self.model_ = model.cpu().eval() if device.type != "cpu" else model.eval()
        self.n_outputs_ = z.shape[1]

    def _train(self, model, tokens, lengths, side, z, device) -> None:
        import torch

        t_tok = torch.from_numpy(tokens)
        t_len = torch.from_numpy(lengths)
        t_side = torch.from_numpy(side).float()
        t_z = torch.from_numpy(z).float()
        n = len(z)
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps_per_epoch = max(1, -(-n // self.batch_size))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=self.epochs * steps_per_epoch)
        gen = torch.Generator().manual_seed(self.random_state)
        model.train()
        for _epoch in range(self.epochs):
            order = torch.randperm(n, generator=gen)
            for k in range(steps_per_epoch):
                idx = order[k * self.batch_size : (k + 1) * self.batch_size]
                if len(idx) == 0:
                    continue
                longest = int(t_len[idx].max())
                pred = model(t_tok[idx, :longest].to(device), t_len[idx], t_side[idx].to(device))
                loss = (pred - t_z[idx].to(device)).abs().mean()  # L1, as in the paper
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                sched.step()

    def _forward(self, archs: list, datasets: Any, mc: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Standardised predictions [n, outputs] and their MC-dropout std (zeros when mc == 0)."""
        import torch

        side = torch.from_numpy(self._side(archs, datasets)).float()
        means, stds = [], []
        batch = 256
        with torch.no_grad(), self._threads():
            for start in range(0, len(archs), batch):
                chunk = archs[start : start + batch]
                tokens, lengths = self.tokenizer_.batch(chunk)
                emb = self.model_.embed(
                    torch.from_numpy(tokens), torch.from_numpy(lengths), side[start : start + batch]
                )
                self.model_.eval()
                means.append(self.model_.head(emb).numpy())
                if mc:
                    self.model_.head.train()  # dropout on: samples of the head
                    draws = torch.stack([self.model_.head(emb) for _ in range(mc)])
                    self.model_.head.eval()
                    stds.append(draws.std(dim=0).numpy())
                else:
                    stds.append(np.zeros_like(means[-1]))
        return np.concatenate(means), np.concatenate(stds)

    def _unscale(self, z: np.ndarray, zs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = z * self.y_scale_ + self.y_mean_
        std = zs * self.y_scale_
        if self.log_target:
            mean = np.exp(mean)
            std = mean * std
        if self.single_output_:
            return mean[:, 0], std[:, 0]
        return mean, std

    def _predict(self, archs: list, datasets: Any) -> np.ndarray:
        return self._unscale(*self._forward(archs, datasets))[0]

    def predict_with_std(self, archs: Any, datasets: Any = None) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        archs = self._check_archs(archs)
        if not archs:
            return np.zeros(0), np.zeros(0)
        return self._unscale(*self._forward(archs, datasets, mc=max(2, self.mc_samples)))

    # ---- persistence: weights as arrays ----------------------------------------------------------------------
    def _state_to_json(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer_.to_json(),
            "weights": {k: encode_array(v.detach().cpu().numpy()) for k, v in self.model_.state_dict().items()},
            "y_mean": encode_array(self.y_mean_),
            "y_scale": encode_array(self.y_scale_),
            "side_mean": encode_array(self.side_mean_),
            "side_scale": encode_array(self.side_scale_),
            "dataset_dim": self.dataset_dim_,
            "n_outputs": self.n_outputs_,
            "single_output": self.single_output_,
        }

    def _state_from_json(self, state: dict[str, Any]) -> None:
        import torch

        from ..embedding import ArchitectureTokenizer

        self.tokenizer_ = ArchitectureTokenizer.from_json(state["tokenizer"])
        self.y_mean_ = decode_array(state["y_mean"])
        self.y_scale_ = decode_array(state["y_scale"])
        self.side_mean_ = decode_array(state["side_mean"])
        self.side_scale_ = decode_array(state["side_scale"])
        self.dataset_dim_ = int(state["dataset_dim"])
        self.n_outputs_ = int(state["n_outputs"])
        self.single_output_ = bool(state["single_output"])
        model = self._build(self.tokenizer_, len(self.side_mean_), self.n_outputs_)
        weights = {k: torch.from_numpy(decode_array(v)) for k, v in state["weights"].items()}
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise DataError(
                f"saved neural predictor's weights do not fit its parameters: {str(exc).splitlines()[0]}"
            ) from None
        self.model_ = model.eval()
