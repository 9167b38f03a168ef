"""Stable-Baselines3's VecEnv view of rewardlab's batched environments (Gymnasium VectorEnvs with same-step
autoreset), so PPO steps N mazes or cars in numpy."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from rewardlab.envs.vector import final_observations
from rewardlab.errors import RewardLabError


class BatchedVecEnv(VecEnv):
    """Stable-Baselines3's VecEnv view of a same-step-autoreset `VectorEnv` (`rewardlab.envs.vector`), so PPO steps
    N environments in numpy. Finished episodes carry `terminal_observation` and `TimeLimit.truncated` in their
    info, as SB3 expects."""

    def __init__(self, env: VectorEnv):
        if env.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise RewardLabError("the SB3 adapter takes VectorEnvs with same-step autoreset")
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self.env.reset()[0]

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape((self.num_envs,) + tuple(self.action_space.shape or ()))

    def step_wait(self):
        obs, rewards, terminated, truncated, step_infos = self.env.step(self._actions)
        final_obs = final_observations(obs, step_infos)
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
