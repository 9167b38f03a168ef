"""Reward-replacing wrappers: train on a learned reward while keeping the true one in `info`."""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from rewardlab.rewards.nets import RewardNet


class LearnedRewardVecEnv(VecEnvWrapper):
    """Replace a VecEnv's reward by r(s, a, s', done) from a RewardNet, computed for all envs in one
    forward pass. s' is the true final observation on episode ends. The environment's own reward is
    kept in `info["true_reward"]`.

    Unlike the original `WrapWithRewardModel`, rewards are numpy floats, the device follows the net,
    and evaluation environments are never wrapped.
    """

    def __init__(self, venv: VecEnv, reward_net: RewardNet):
        super().__init__(venv)
        self.reward_net = reward_net.eval()
        self._device = reward_net.device
        self._prev: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self._prev = obs
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions
        self.venv.step_async(actions)

    def step_wait(self):
        obs, true_rewards, dones, infos = self.venv.step_wait()
        nxt = obs.copy() if dones.any() else obs
        for i in np.flatnonzero(dones):
            nxt[i] = infos[i]["terminal_observation"]
        with torch.no_grad():
            r = self.reward_net(
                torch.as_tensor(self._prev, device=self._device),
                torch.as_tensor(self._actions, device=self._device),
                torch.as_tensor(nxt, device=self._device),
                torch.as_tensor(dones, device=self._device),
            )
        for i, info in enumerate(infos):
            info["true_reward"] = float(true_rewards[i])
        self._prev = obs
        return obs, r.cpu().numpy().astype(np.float32), dones, infos
