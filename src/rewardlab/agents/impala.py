"""The IMPALA CNN (Espeholt et al. 2018) as the Procgen paper (Cobbe et al. 2020) uses it for PPO: three stacks of
(conv 3x3, max-pool 3x3 stride 2, two residual blocks) with 16, 32 and 32 channels, then ReLU, a 256-unit linear
layer and ReLU. A Stable-Baselines3 features extractor, so PPO's `CnnPolicy` runs on it (`policy=ImpalaCnnPolicy`
in `PPOConfig`); SB3 divides image inputs by 255 before it."""

from __future__ import annotations

from typing import Sequence

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class _Stack(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res0, self.res1 = _Residual(c_out), _Residual(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res1(self.res0(self.pool(self.conv(x))))


class ImpalaCNN(BaseFeaturesExtractor):
    """IMPALA CNN features (B, features_dim) of channel-first images (B, C, H, W)."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 256, depths: Sequence[int] = (16, 32, 32)):
        super().__init__(observation_space, features_dim)
        c, h, w = observation_space.shape
        layers: list[nn.Module] = []
        for d in depths:
            layers.append(_Stack(c, int(d)))
            c, h, w = int(d), (h + 1) // 2, (w + 1) // 2
        self.stacks = nn.Sequential(*layers)
        self.head = nn.Linear(c * h * w, features_dim)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = self.stacks(observations)
        return torch.relu(self.head(torch.relu(torch.flatten(x, 1))))
