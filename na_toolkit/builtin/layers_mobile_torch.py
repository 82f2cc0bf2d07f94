"""The torch module of `squeeze_excitation` (its own module: torch is imported only when a network is built)."""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    """x * gate(fc2(activation(fc1(mean_hw(x))))), fc1 / fc2 1x1 convolutions with bias (as torchvision's
    `SqueezeExcitation`, so state_dict names and the exported graph agree with the ONNX emitter's)."""

    def __init__(self, channels: int, squeeze_channels: int, activation: str, gate: str):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.activation = nn.ReLU() if activation == "relu" else nn.SiLU()
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = nn.Sigmoid() if gate == "sigmoid" else nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.activation(self.fc1(scale))))
