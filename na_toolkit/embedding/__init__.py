"""The network embedding of Neural Architect, shared by the neural predictor and the controller.

A layer of its own, below both (`docs/architecture.md`): `ArchitectureTokenizer` (`tokenizer.py`, numpy
only) turns an architecture into one row of discrete tokens per layer, each token from the vocabulary of
one attribute kind (the generic ones, and those each layer type declares: `LayerType.embedded_attrs()`);
`NetworkEmbedding` (`network.py`, torch) embeds them with one lookup table per attribute kind, a layer LSTM
and a network LSTM. Importing this package does not import torch; `make_network_embedding` and `network` do.
"""

from __future__ import annotations

from .tokenizer import PAD, UNKNOWN_TYPE, ArchitectureTokenizer, make_network_embedding

__all__ = ["PAD", "UNKNOWN_TYPE", "ArchitectureTokenizer", "make_network_embedding"]
