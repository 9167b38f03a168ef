"""Potential shaping as a RewardNet wrapper: r'(s,a,s') = (r(s,a,s') - c) + gamma * Phi(s') * (1 - done) - Phi(s)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rewardlab.core.modules import register_module
from rewardlab.rewards.nets import (
    RewardNet,
    RewardNetWrapper,
    build_cnn,
    build_mlp,
    flat_dim,
    preprocess_input,
    space_from_config,
)


@register_module("potential.tabular")
class TabularPotential(nn.Module):
    """Phi(s) = phi[s] for integer states, zero-initialised."""

    def __init__(self, n_states: int):
        super().__init__()
        self.phi = nn.Parameter(torch.zeros(int(n_states)))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.phi[state.long()]


@register_module("potential.linear")
class LinearPotential(nn.Module):
    """Phi(s) = w . s + b on flattened observations."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(int(obs_dim), 1))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state.float()).squeeze(-1)


@register_module("potential.mlp")
class MLPPotential(nn.Module):
    """Phi(s): an MLP with ReLU hidden layers (the paper's config: 4 x 128)."""

    def __init__(self, obs_dim: int, hidden: int = 128, layers: int = 4):
        super().__init__()
        mods: list[nn.Module] = [nn.Flatten()]
        d = int(obs_dim)
        for _ in range(int(layers)):
            mods += [nn.Linear(d, int(hidden)), nn.ReLU()]
            d = int(hidden)
        mods.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state.float()).squeeze(-1)


@register_module("potential.cnn")
class CnnPotential(nn.Module):
    """Phi(s) on images (C, H, W) in [0, 255]: imitation's `BasicPotentialCNN` (its `build_cnn`: 3x3 convs with ReLU,
    global average pooling, a linear output) on s / 255; with `hwc_format` images are (H, W, C), transposed first."""

    def __init__(
        self,
        obs_shape: tuple[int, ...] = (3, 64, 64),
        hid_channels: tuple[int, ...] = (32, 32),
        hwc_format: bool = False,
    ):
        super().__init__()
        self.obs_shape, self.hwc_format = tuple(int(x) for x in obs_shape), bool(hwc_format)
        self.net = build_cnn(self.obs_shape[-1 if self.hwc_format else 0], tuple(int(c) for c in hid_channels))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        state = torch.as_tensor(state)
        return self.net((state.permute(0, 3, 1, 2) if self.hwc_format else state).float() / 255.0)


@register_module("potential.basic_mlp")
class BasicPotentialMLP(nn.Module):
    """Phi(s): imitation's `BasicPotentialMLP`, an MLP (`build_mlp`, flattened input) on the observation
    preprocessed as imitation does (Discrete one-hot, images / 255); the space is a `space_config` record."""

    def __init__(
        self,
        observation_space: dict[str, Any],
        hid_sizes: tuple[int, ...] = (32, 32),
        activation: str = "relu",
        dropout: float = 0.0,
        normalize_input: bool = False,
        normalize_images: bool = True,
    ):
        super().__init__()
        self.observation_space = space_from_config(observation_space)
        self.normalize_images = bool(normalize_images)
        size = flat_dim(self.observation_space)
        self.mlp = build_mlp(size, tuple(hid_sizes), 1, activation, dropout, True, normalize_input)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.mlp(preprocess_input(state, self.observation_space, self.normalize_images))


@register_module("reward.shaped")
class ShapedRewardNet(RewardNetWrapper):
    """A frozen base reward, shifted by a learned constant c and shaped by a learned potential Phi."""

    def __init__(self, base: RewardNet, potential: nn.Module, gamma: float, learn_shift: bool = True):
        super().__init__(base)
        self.potential = potential
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.gamma = float(gamma)
        self.shift = nn.Parameter(torch.zeros(()), requires_grad=learn_shift)

    def forward(self, state, action, next_state, done):
        with torch.no_grad():
            r = self.base(state, action, next_state, done)
        not_done = 1.0 if done is None else 1.0 - torch.as_tensor(done, device=r.device).float()
        return (r - self.shift) + self.gamma * self.potential(next_state) * not_done - self.potential(state)
