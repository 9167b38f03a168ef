"""Stable-Baselines3 VecEnv view of a batched environment (e.g. `BatchedMaze`), so PPO steps N mazes in numpy."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv


class BatchedVecEnv(VecEnv):
    """Adapts an object with `n`, `observation_space`, `action_space`, `reset()` and
    `step(actions) -> (obs, rewards, terminated, truncated, final_obs)` to SB3's VecEnv API.

    Finished episodes carry `terminal_observation` and `TimeLimit.truncated` in their info, as SB3 expects.
    """

    def __init__(self, env: Any):
        self.env = env
        super().__init__(env.n, env.observation_space, env.action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self.env.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape((self.num_envs,) + tuple(self.action_space.shape or ()))

    def step_wait(self):
        obs, rewards, terminated, truncated, final_obs = self.env.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = final_obs[i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [getattr(self.env, method_name)(*args, **kwargs)] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def seed(self, seed: int | None = None) -> Sequence[None]:
        return [None] * self.num_envs

    def get_images(self) -> Sequence[np.ndarray]:
        from rewardlab.envs.maze import render_grid

        return [render_grid(o) for o in self.env.observe()]
