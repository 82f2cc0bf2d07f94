"""The neural predictor of Neural Architect, the paper's performance simulation network: the network embedding
(`na_toolkit.embedding`: lookup tables -> layer LSTM -> network LSTM, the module the controller is built on)
with an ensemble of small MLP heads, trained end to end with an L1 loss on standardised targets (plus a
pairwise ranking term: the search ranks candidates, so their order matters more than their values).

`fit(archs, y)` with a 1-D `y` trains one output; a 2-D `y` [samples, metrics] (e.g. accuracy and training
time columns) one output per column on the shared embedding, and `predict` returns [n, metrics]. Inputs
next to the embedding (options): three cost scalars of the IR (log parameters, FLOPs, activation bytes),
which the embedding would otherwise have to learn to count; the IR features of the feature predictors
(`features.py`); the dataset descriptor. Uncertainty: the spread of the heads (one head: MC dropout).

Three ways to use it (docs/predictors.md):

- on its own, refit from scratch on each call of `fit` (the default);
- `share_embedding = true`: its `NetworkEmbedding` module is created once and handed to the search's
  controller (`shared_embedding`), which trains it on the predicted reward while each refit trains it on the
  evaluated networks with the L1 loss, starting from where it is (the heads are refit fresh on it);
- `pretrained = "FILE.json"` (saved by `na-toolkit predict fit`): the saved weights, frozen
  (`fine_tune = false`: `fit` changes nothing) or fine-tuned from there on each `fit`.

Persistence: the tokenizer vocabulary and every weight as arrays in the JSON document, no pickle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from .. import validation
from ..errors import DataError
from . import pretrained as pretrained_units
from .base import Predictor, decode_array, encode_array
from .features import FeatureMatrix, _dataset_rows, dataset_matrix, feature_range
from .targets import Target

if TYPE_CHECKING:  # pragma: no cover
    from ..embedding import ArchitectureTokenizer
    from ..ir.layers import LayerTypeRegistry


def _cost_scalars(archs: list) -> np.ndarray:
    out = np.empty((len(archs), 3))
    for i, a in enumerate(archs):
        c = a.cost
        out[i] = (np.log10(1.0 + c.params), np.log10(1.0 + c.flops), np.log10(1.0 + c.activation_bytes))
    return out


def _scale(values: np.ndarray) -> np.ndarray:
    std = values.std(axis=0)
    return np.where(std > 1e-12, std, 1.0)


@dataclass
class SharedEmbedding:
    """A neural predictor's embedding, handed to a controller to be built on (joint training): the
    tokenizer whose vocabulary sized it, the `NetworkEmbedding` module (the very parameters the predictor
    trains), its widths, and `listeners`: callables run after each refit changed the weights (a controller
    drops the embeddings it cached)."""

    tokenizer: ArchitectureTokenizer
    module: Any
    token_dim: int
    layer_dim: int
    net_dim: int
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def controller_options(self) -> dict[str, Any]:
        """The keyword arguments of `Controller` that build it on this embedding."""
        widths = {"token_dim": self.token_dim, "layer_dim": self.layer_dim, "net_dim": self.net_dim}
        return {"tokenizer": self.tokenizer, "embedding": self.module, **widths}


#: options that fix the shape of the model: a pretrained file's values replace the configured ones
_STRUCTURE = ("token_dim", "layer_dim", "net_dim", "hidden", "heads", "dropout", "cost_inputs", "feature_inputs")
_STRUCTURE += ("log_target",)


class NeuralPredictor(Predictor):
    name = "neural"
    description = (
        "Neural Architect's performance network: the controller's LSTM network embedding + MLP heads, "
        "L1 + ranking loss; std = head spread"
    )

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        token_dim: int = Field(16, ge=1, description="width of a token's embedding")
        layer_dim: int = Field(32, ge=1, description="width of the layer LSTM")
        net_dim: int = Field(64, ge=1, description="width of the network embedding")
        hidden: int = Field(64, ge=1, description="width of the MLP heads")
        heads: int = Field(4, ge=1, le=64, description="MLP heads on the one embedding, averaged (an ensemble)")
        dropout: float = Field(0.1, ge=0, lt=1, description="dropout in the heads")
        epochs: int = Field(80, ge=1)
        batch_size: int = Field(32, ge=1)
        lr: float = Field(3e-3, gt=0, description="AdamW peak learning rate (one-cycle schedule)")
        weight_decay: float = Field(1e-4, ge=0)
        rank_weight: float = Field(1.0, ge=0, description="weight of the pairwise ranking loss next to L1")
        cost_inputs: bool = Field(True, description="feed the network's cost (params, FLOPs) to the heads")
        feature_inputs: bool = Field(True, description="feed the IR features of the feature predictors to the heads")
        log_target: bool = Field(False, description="fit the log of the target (positive targets: times, latencies)")
        mc_samples: int = Field(20, ge=1, description="dropout samples behind the uncertainty of a single head")
        share_embedding: bool = Field(
            False,
            description="hand the embedding to the search's controller and keep training it at every refit "
            "(joint training; refits start from the current weights)",
        )
        pretrained: str | None = Field(
            None,
            min_length=1,
            description="a saved neural predictor (JSON, `na-toolkit predict fit`) to start from; in a search "
            "config, relative to the config file",
        )
        fine_tune: bool = Field(
            True, description="with pretrained: refits train from the saved weights (false: frozen)"
        )
        device: str = Field("auto", description='"cpu", "cuda", "cuda:N" or "auto"')
        threads: int | None = Field(1, ge=1, description="torch CPU threads while it runs (none: torch's setting)")
        random_state: int | None = Field(
            0, description="model seed (none: the search's random_seed, or predict fit's --seed)"
        )

        @model_validator(mode="after")
        def _frozen_not_shared(self) -> NeuralPredictor.Options:
            if self.share_embedding and self.pretrained is not None and not self.fine_tune:
                raise ValueError(
                    "share_embedding = true would let the controller train a frozen pretrained embedding "
                    "(fine_tune = false): set fine_tune = true, or share_embedding = false"
                )
            return self

    has_uncertainty = True
    multi_output = True
    min_samples = 4

    def __init__(
        self,
        token_dim: int = 16,
        layer_dim: int = 32,
        net_dim: int = 64,
        hidden: int = 64,
        heads: int = 4,
        dropout: float = 0.1,
        epochs: int = 80,
        batch_size: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        rank_weight: float = 1.0,
        cost_inputs: bool = True,
        feature_inputs: bool = True,
        log_target: bool = False,
        mc_samples: int = 20,
        share_embedding: bool = False,
        pretrained: str | None = None,
        fine_tune: bool = True,
        device: str = "auto",
        threads: int | None = 1,
        random_state: int = 0,
    ):
        self.token_dim = token_dim
        self.layer_dim = layer_dim
        self.net_dim = net_dim
        self.hidden = hidden
        self.heads = heads
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.rank_weight = rank_weight
        self.cost_inputs = cost_inputs
        self.feature_inputs = feature_inputs
        self.log_target = log_target
        self.mc_samples = mc_samples
        self.share_embedding = share_embedding
        self.pretrained = pretrained
        self.fine_tune = fine_tune
        self.device = device
        self.threads = threads
        self.random_state = random_state

    # Two attributes set later (scikit-learn's __init__ stores the parameters only), without a trailing "_"
    # because they are not fitted state (`is_fitted` looks for that): `_shared`, the embedding handed to a
    # controller and kept across refits (joint training), and `_pretrained_loaded`.
    _shared: SharedEmbedding | None = None
    _pretrained_loaded: bool = False
    #: a pretrained file that names no unit, serving a target with a valid range: its first predictions are
    #: checked to lie in that range (predictors/pretrained.py), described as `_probe_networks`
    _unchecked_unit: bool = False
    _probe_networks: str = ""

    def _threads(self):
        """Context: torch intra-op threads while this predictor runs. The LSTM steps are tiny matrix products
        for which thread synchronisation costs more than it saves (3x slower with 2 threads on a busy
        2-core machine), so the default is 1; None leaves torch's setting alone."""
        from ..torchutil import torch_threads

        return torch_threads(self.threads)

    # ---- modules -----------------------------------------------------------------------------------------
    def torch_device(self):
        """The torch device it trains on: a ConfigError naming `device` when that is no device name or CUDA
        it asks for is absent (a search checks it before it starts)."""
        import torch

        from ..torchutil import resolve_device

        if self.share_embedding:  # the controller that shares the embedding runs on the CPU
            return torch.device("cpu")
        return resolve_device(self.device)

    def _build(self, tokenizer, n_side: int, n_outputs: int, embedding: Any = None):
        from .neural_torch import EmbeddingRegressor

        return EmbeddingRegressor(
            tokenizer,
            self.token_dim,
            self.layer_dim,
            self.net_dim,
            n_side,
            self.hidden,
            n_outputs,
            self.dropout,
            heads=self.heads,
            embedding=embedding,
        )

    def shared_embedding(self, layer_types: LayerTypeRegistry) -> SharedEmbedding:
        """The embedding this predictor trains at every fit, for a controller to be built on (the same
        module, so the same parameter tensors). Made now if no fit made it yet: its vocabulary is every
        layer type of `layer_types` (the search's registry), its weights drawn from `random_state`."""
        import torch

        from ..embedding import ArchitectureTokenizer, make_network_embedding

        if not self.share_embedding:
            raise DataError("this neural predictor does not share its embedding: set share_embedding = true")
        self._load_pretrained()
        if self._shared is None:
            if hasattr(self, "model_"):  # fitted (or loaded) before it was asked for
                tokenizer, module = self.tokenizer_, self.model_.embedding
            else:
                tokenizer = ArchitectureTokenizer.for_registry(layer_types)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.random_state)
                    module = make_network_embedding(
                        tokenizer, token_dim=self.token_dim, layer_dim=self.layer_dim, net_dim=self.net_dim
                    )
            self._shared = SharedEmbedding(tokenizer, module, self.token_dim, self.layer_dim, self.net_dim)
        return self._shared

    def adopt_embedding(self, shared: SharedEmbedding) -> None:
        """Train `shared` (another neural predictor's embedding, e.g. the accuracy predictor's for the
        training-time one) instead of an embedding of its own: one performance network for every target."""
        if not self.share_embedding or self.pretrained is not None:
            raise DataError("only a neural predictor with share_embedding = true and no pretrained file adopts one")
        dims = (shared.token_dim, shared.layer_dim, shared.net_dim)
        if dims != (self.token_dim, self.layer_dim, self.net_dim):
            raise DataError(
                f"the shared embedding has widths (token_dim, layer_dim, net_dim) = {dims}; "
                "give this predictor the same"
            )
        self._shared = shared

    @property
    def keeps_state(self) -> bool:
        """Does `fit` start from this predictor's current state (joint training, pretrained)? A search then
        keeps this one instance across its refits instead of fitting a fresh one each round."""
        return self.share_embedding or self.pretrained is not None

    def restore_pretrained(self, probe: list | None = None, networks: str = "") -> None:
        """Read the `pretrained` file now (once; `fit` would otherwise read it first): a DataError naming the
        file when it is missing or not a saved neural predictor, a ConfigError when it predicts in a unit its
        target's cannot be converted from. A file that names no unit is checked on `probe` now (`networks`
        says what they are, e.g. "the seed network"), else on the first networks it is fit on or predicts."""
        self._load_pretrained()
        if probe and self._unchecked_unit:
            self._probe_networks = networks
            self.predict(probe)

    def _side(self, archs: list, datasets: Any) -> np.ndarray:
        """Standardised side inputs (cost scalars, IR features, dataset descriptor) next to the embedding."""
        return (self._raw_side(archs, datasets) - self.side_mean_) / self.side_scale_

    def _raw_side(self, archs: list, datasets: Any) -> np.ndarray:
        parts = []
        if self.cost_inputs:
            parts.append(_cost_scalars(archs))
        if self.features_ is not None:
            parts.append(self.features_.transform(archs))
        if self.dataset_dim_:
            parts.append(dataset_matrix(datasets, len(archs), self.dataset_dim_))
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(archs), 0))

    # ---- fit / predict -------------------------------------------------------------------------------------
    def _targets(self, y: np.ndarray) -> np.ndarray:
        y2 = y.reshape(len(y), -1)
        if self.log_target:
            if np.any(y2 <= 0):
                raise DataError("log_target=True needs positive targets")
            y2 = np.log(y2)
        return y2

    def _fit(self, archs: list, y: np.ndarray, datasets: Any) -> None:
        import torch

        from ..embedding import ArchitectureTokenizer

        self._load_pretrained()
        y2 = self._targets(y)
        if self.pretrained is not None:
            if self._unchecked_unit:  # a file that names no unit: checked on what it is fit on
                self._predict(archs, datasets)
            if y2.shape[1] != self.n_outputs_:
                raise DataError(f"the pretrained predictor has {self.n_outputs_} outputs, the targets {y2.shape[1]}")
            if not self.fine_tune:
                return  # frozen: the saved weights and scalers, whatever the new data says
            # fine-tuned in the saved model's own output and input scales, from its weights
            z = (y2 - self.y_mean_) / self.y_scale_
            self._train(self.model_, archs, self._side(archs, datasets), z)
            self._refitted()
            return
        self.single_output_ = y.ndim == 1
        self.y_mean_ = y2.mean(axis=0)
        self.y_scale_ = _scale(y2)
        self.dataset_dim_ = 0 if datasets is None else _dataset_rows(datasets, len(archs)).shape[1]
        self.features_ = FeatureMatrix.fit(archs) if self.feature_inputs else None
        self.feature_range_ = None if self.features_ is None else feature_range(self.features_.transform(archs))
        raw_side = self._raw_side(archs, datasets)
        self.side_mean_ = raw_side.mean(axis=0)
        self.side_scale_ = _scale(raw_side)
        side = (raw_side - self.side_mean_) / self.side_scale_
        z = (y2 - self.y_mean_) / self.y_scale_
        shared = self.shared_embedding(archs[0].layer_types) if self.share_embedding else None
        # the vocabulary: every layer type of the registry the training networks were built with
        tokenizer = shared.tokenizer if shared else ArchitectureTokenizer.for_registry(archs[0].layer_types)
        device = self.torch_device()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.random_state)
            # joint training: the heads are new at each refit, the embedding goes on from where it is
            model = self._build(tokenizer, side.shape[1], z.shape[1], shared.module if shared else None)
        self.tokenizer_ = tokenizer
        self.n_outputs_ = z.shape[1]
        self._train(model, archs, side, z)
        self.model_ = model
        self._refitted()

    def _train(self, model: Any, archs: list, side: np.ndarray, z: np.ndarray) -> None:
        import torch

        from .neural_torch import TrainSettings, train

        tokens, lengths = self.tokenizer_.batch(archs)
        device = self.torch_device()
        settings = TrainSettings(
            self.epochs, self.batch_size, self.lr, self.weight_decay, self.rank_weight, self.random_state
        )
        with self._threads(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.random_state)
            model.to(device)
            try:
                train(model, tokens, lengths, side, z, settings, device)
            finally:
                model.cpu()

    def _refitted(self) -> None:
        if self._shared is not None:
            for listener in self._shared.listeners:
                listener()

    def _forward(self, archs: list, datasets: Any, mc: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Standardised predictions [n, outputs] and their spread (heads, or MC dropout of one head; zeros
        when mc == 0)."""
        import torch

        side = torch.from_numpy(self._side(archs, datasets)).float()
        means, stds = [], []
        batch = 256
        model = self.model_
        with torch.no_grad(), self._threads():
            model.eval()
            for start in range(0, len(archs), batch):
                tokens, lengths = self.tokenizer_.batch(archs[start : start + batch])
                emb = model.embed(torch.from_numpy(tokens), torch.from_numpy(lengths), side[start : start + batch])
                outs = model.head_outputs(emb)  # [heads, B, outputs]
                means.append(outs.mean(dim=0).numpy())
                if not mc:
                    stds.append(np.zeros_like(means[-1]))
                elif len(model.heads) > 1:
                    stds.append(outs.std(dim=0).numpy())
                else:
                    model.heads.train()  # dropout on: samples of the head
                    draws = torch.stack([model.heads[0](emb) for _ in range(mc)])
                    model.heads.eval()
                    stds.append(draws.std(dim=0).numpy())
        return np.concatenate(means), np.concatenate(stds)

    def _unscale(self, z: np.ndarray, zs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = z * self.y_scale_ + self.y_mean_
        std = zs * self.y_scale_
        if self.log_target:
            mean = np.exp(mean)
            std = mean * std
        if self._unchecked_unit and self.single_output_ and self.target is not None:
            networks = self._probe_networks or f"the {len(mean)} network(s) it was first given (the median)"
            pretrained_units.check_in_range(mean[:, 0], self.target, str(self.pretrained), networks)
            self._unchecked_unit = False
        if self.single_output_:
            return mean[:, 0], std[:, 0]
        return mean, std

    def _predict(self, archs: list, datasets: Any) -> np.ndarray:
        return self._unscale(*self._forward(archs, datasets))[0]

    def _raw_predict_with_std(self, archs: Any, datasets: Any) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        archs = self._check_archs(archs)
        if not archs:
            return np.zeros(0), np.zeros(0)
        datasets = self._datasets(datasets)
        return self._to_target_scale(
            *self._unscale(*self._forward(archs, datasets, mc=max(2, self.mc_samples))), datasets
        )

    # ---- pretrained ----------------------------------------------------------------------------------------
    def _load_pretrained(self) -> None:
        """Take the weights, scalers and shape of the saved predictor at `pretrained`, once, in the unit of the
        target it was given (`for_target`; none: it predicts what the file learned, pretrained.py)."""
        if self.pretrained is None or self._pretrained_loaded:
            return
        saved = pretrained_units.load_pretrained(self.pretrained)
        for key in _STRUCTURE:
            setattr(self, key, getattr(saved, key))
        self._state_from_json(saved._state_to_json())
        self.n_train_ = getattr(saved, "n_train_", 0)
        wanted, self.target = self.target, saved.target  # the file's: clipped into that target's range
        if wanted is not None:
            pretrained_units.serve(self, wanted)

    def for_target(self, target: Target | None) -> NeuralPredictor:
        """`Predictor.for_target`; with a `pretrained` file, its output is brought into `target`'s unit when
        the file is read (now, when it was read already): a ConfigError for a unit it cannot be converted to
        (predictors/pretrained.py)."""
        if self.pretrained is None or not self._pretrained_loaded or target is None:
            super().for_target(target)
        else:
            pretrained_units.serve(self, target)
        return self

    # ---- persistence: weights as arrays ----------------------------------------------------------------------
    def _state_to_json(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer_.to_json(),
            "weights": {k: encode_array(v.detach().cpu().numpy()) for k, v in self.model_.state_dict().items()},
            "y_mean": encode_array(self.y_mean_),
            "y_scale": encode_array(self.y_scale_),
            "side_mean": encode_array(self.side_mean_),
            "side_scale": encode_array(self.side_scale_),
            "features": None if self.features_ is None else self.features_.to_json(),
            "feature_range": None if self.feature_range_ is None else encode_array(self.feature_range_),
            "dataset_dim": self.dataset_dim_,
            "n_outputs": self.n_outputs_,
            "single_output": self.single_output_,
        }

    def _state_from_json(self, state: dict[str, Any]) -> None:
        import torch

        from ..embedding import ArchitectureTokenizer
        from .saved_state import saved_feature_range, saved_features

        self.tokenizer_ = ArchitectureTokenizer.from_json(state["tokenizer"])
        self.y_mean_ = decode_array(state["y_mean"])
        self.y_scale_ = decode_array(state["y_scale"])
        self.side_mean_ = decode_array(state["side_mean"])
        self.side_scale_ = decode_array(state["side_scale"])
        features = state.get("features")
        self.features_ = None if features is None else saved_features(features)
        # absent in files saved before the domain's ranges were: then only unseen features are warned about
        self.feature_range_ = saved_feature_range(state.get("feature_range"), self.features_)
        self.dataset_dim_ = int(state["dataset_dim"])
        self.n_outputs_ = int(state["n_outputs"])
        self.single_output_ = bool(state["single_output"])
        model = self._build(self.tokenizer_, len(self.side_mean_), self.n_outputs_)
        weights = {k: torch.from_numpy(decode_array(v)) for k, v in state["weights"].items()}
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            why = " ".join(line.strip() for line in str(exc).splitlines()[1:])[:300]  # line 1 names torch's class
            raise DataError(
                f"saved neural predictor's weights do not fit its parameters ({why}): the file was edited or "
                "damaged; fit it again"
            ) from None
        self.model_ = model.eval()
        self._pretrained_loaded = True  # a pretrained predictor saved after fitting holds its weights already
