"""Reward networks: imitation's RewardNet protocol r(s, a, s', done), its wrapper base, and the nets built on it.

As in imitation (`imitation.rewards.reward_nets`): a net knows its observation and action spaces; `forward`,
`predict_th` (a tensor) and `predict` (numpy) all take (state, action, next_state, done) in that order; a
`RewardNetWrapper` holds a `base` net and shares its spaces. Nets are saved and loaded with the one module
checkpoint format (`rewardlab.core.modules.save_module` / `load_module`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rewardlab.core.modules import register_legacy_format, register_module
from rewardlab.errors import RewardLabError


class RewardNet(nn.Module):
    """A reward model r(state, action, next_state, done) -> (B,) float tensor (the imitation protocol).

    Subclasses are registered with `@register_module`, which records their constructor arguments, and tell the
    base their observation and action spaces.
    """

    def __init__(self, observation_space: spaces.Space | None, action_space: spaces.Space | None):
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space

    @property
    def device(self) -> torch.device:
        """The device of the first parameter, else of the first buffer, else cpu (parameterless nets)."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def forward(
        self, state: torch.Tensor, action: torch.Tensor | None, next_state: torch.Tensor, done: torch.Tensor | None
    ) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def predict_th(self, state: Any, action: Any, next_state: Any, done: Any) -> torch.Tensor:
        """Rewards (a tensor) for numpy or tensor inputs, without gradients, on the net's device; an input that is
        None stays None (nets that do not use it)."""
        dev = self.device
        s, a, s2, d = (None if x is None else torch.as_tensor(x, device=dev) for x in (state, action, next_state, done))
        return self(s, a, s2, d)

    def predict(self, state: Any, action: Any, next_state: Any, done: Any) -> np.ndarray:
        """Rewards as a numpy array (imitation's `predict`)."""
        return self.predict_th(state, action, next_state, done).cpu().numpy()


class RewardNetWrapper(RewardNet):
    """A reward net built on a `base` net (shaping, normalisation), with the base's spaces (imitation's wrapper)."""

    def __init__(self, base: RewardNet):
        super().__init__(base.observation_space, base.action_space)
        self.base = base


@register_module("reward.maze_mlp")
class MazeRewardMLP(RewardNet):
    """R(s, s'): the MazeRewardModel of Michaud et al. (2020): flatten (s, s') as raw grid codes,
    then Linear-Tanh layers and a bias-free Linear to one output (242-64-64-1 by default). With `use_action`,
    R(s, a, s'): the one-hot action joins the input."""

    def __init__(
        self, obs_shape: tuple[int, ...] = (11, 11), hidden: tuple[int, ...] = (64, 64), use_action: bool = False
    ):
        from rewardlab.envs.maze import GOAL

        self.obs_shape = tuple(int(x) for x in obs_shape)
        super().__init__(spaces.Box(0, GOAL, self.obs_shape, dtype=np.uint8), spaces.Discrete(4))
        self.use_action = bool(use_action)
        n_in = 2 * int(torch.tensor(self.obs_shape).prod()) + (self.action_space.n if self.use_action else 0)
        layers: list[nn.Module] = [nn.Flatten()]
        for h in hidden:
            layers += [nn.Linear(n_in, int(h)), nn.Tanh()]
            n_in = int(h)
        layers.append(nn.Linear(n_in, 1, bias=False))
        self.net = nn.Sequential(*layers)

    def pair_reward(self, pair: torch.Tensor) -> torch.Tensor:
        """Rewards (B,) for stacked (s, s') pairs of shape (B, 2, *obs_shape) (used for saliency)."""
        return self.net(pair.float()).squeeze(-1)

    def forward(self, state, action, next_state, done):
        if state.shape[1:] != self.obs_shape or next_state.shape != state.shape:
            raise RewardLabError(
                f"MazeRewardMLP expects states of shape (B, {self.obs_shape}), got "
                f"{tuple(state.shape)} and {tuple(next_state.shape)}"
            )
        pair = torch.stack([state, next_state], dim=1)
        if not self.use_action:
            return self.pair_reward(pair)
        if action is None:
            raise RewardLabError("this reward model is R(s, a, s'): it needs the actions (a dataset that has them)")
        one_hot = nn.functional.one_hot(torch.as_tensor(action).long().reshape(-1), self.action_space.n)
        return self.net(torch.cat([pair.flatten(1).float(), one_hot.float()], dim=1)).squeeze(-1)


@register_module("reward.atari_cnn")
class AtariRewardCNN(RewardNet):
    """R(s') on stacked 84x84 frames: the AtariRewardModel of Michaud et al. (2020), the NatureCNN feature extractor
    (input / 255; conv 32@8/4, 64@4/2, 64@3/1, ReLU; FC 512, ReLU) then Linear(512, 1). With `use_state`, R(s, s'):
    both stacks enter as channels."""

    def __init__(self, frames: int = 4, size: int = 84, n_actions: int = 4, use_state: bool = False):
        self.frames, self.size, self.use_state = int(frames), int(size), bool(use_state)
        super().__init__(
            spaces.Box(0, 255, (self.frames, self.size, self.size), dtype=np.uint8), spaces.Discrete(int(n_actions))
        )
        channels = self.frames * (2 if self.use_state else 1)
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, channels, self.size, self.size)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n_flat, 512), nn.ReLU())
        self.head = nn.Linear(512, 1)

    def frame_reward(self, x: torch.Tensor) -> torch.Tensor:
        """Rewards (B,) for the net's input channels (B, C, size, size), uint8 or float in [0, 255]."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.cnn[0].in_channels, self.size, self.size):
            raise RewardLabError(
                f"AtariRewardCNN expects frames of shape (B, {self.cnn[0].in_channels}, {self.size}, {self.size}), "
                f"got {tuple(x.shape)}"
            )
        return self.head(self.fc(self.cnn(x.float() / 255.0))).squeeze(-1)

    def forward(self, state, action, next_state, done):
        if self.use_state:
            if state is None:
                raise RewardLabError("this reward model is R(s, s'): it needs the states before each step")
            return self.frame_reward(torch.cat([torch.as_tensor(state), torch.as_tensor(next_state)], dim=1))
        return self.frame_reward(torch.as_tensor(next_state))


# Files written before the one module format: {"kind": "rewardlab.reward_net", "spec": {"name": ..., ...}}.
_LEGACY_NETS = {
    "maze_mlp": "reward.maze_mlp",
    "tabular": "reward.tabular",
    "shaped": "reward.shaped",
    "mountain_car": "reward.mountain_car",
}
_LEGACY_POTENTIALS = {"tabular": "potential.tabular", "linear": "potential.linear", "mlp": "potential.mlp"}


def _legacy_spec(spec: dict[str, Any], names: dict[str, str]) -> tuple[str, dict[str, Any]]:
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in names:
        raise RewardLabError(f"an older checkpoint names an unknown net '{name}'")
    if name == "shaped" and names is _LEGACY_NETS:
        base, pot = _legacy_spec(spec["base"], _LEGACY_NETS), _legacy_spec(spec["potential"], _LEGACY_POTENTIALS)
        spec["base"], spec["potential"] = ({"kind": k, "config": c} for k, c in (base, pot))
    return names[name], spec


register_legacy_format("rewardlab.reward_net", lambda ckpt: _legacy_spec(ckpt.get("spec", {}), _LEGACY_NETS))
