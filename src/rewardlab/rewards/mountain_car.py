"""The exact (parameter-free) reward of the shaped MountainCar as a RewardNet."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from rewardlab.core.modules import register_module
from rewardlab.envs.mountain_car import GAMMA, OBS_HIGH, OBS_LOW, check_shaping, mc_reward, potential_params
from rewardlab.errors import RewardLabError
from rewardlab.rewards.nets import RewardNet


@register_module("reward.mountain_car")
class MountainCarRewardNet(RewardNet):
    """r(s, a, s') = [pos(s) >= 0.5] - 1 + gamma Phi(s') - Phi(s): the reward of `ShapedMountainCarEnv`.

    Computed in float64 from the (float32) observations with the env's own `mc_reward` and returned as
    float32, so it equals the env's reward (up to float64 ulp differences between torch's and numpy's
    sin, which in practice never survive the float32 cast). `action` and `done` are ignored: the env
    never terminates (absorb after done), so no potential is zeroed at episode ends. The net has no
    trainable parameters; a non-persistent float64 buffer holding the potential's parameters tells
    its device.
    """

    def __init__(self, shaping: str = "unshaped", gamma: float = GAMMA, seed: int = 0):
        super().__init__(spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32), spaces.Discrete(3))
        self.shaping = check_shaping(shaping)
        self.gamma = float(gamma)
        self.seed = int(seed)
        self.params = potential_params(shaping, self.seed)
        self.register_buffer("potential_params", torch.tensor(self.params, dtype=torch.float64), persistent=False)

    def forward(self, state, action, next_state, done):
        if state.ndim != 2 or state.shape[1] != 2 or next_state.shape != state.shape:
            raise RewardLabError(
                f"MountainCarRewardNet expects states of shape (B, 2), got "
                f"{tuple(state.shape)} and {tuple(next_state.shape)}"
            )
        return mc_reward(self.shaping, state, next_state, self.params, self.gamma).float()
