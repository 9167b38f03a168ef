"""The one batched-environment protocol: Gymnasium's `VectorEnv` with same-step autoreset (an episode's final
observation in `infos["final_obs"]`, the next episode's first in the returned observations). `rewardlab.envs.vec`
gives such an environment to Stable-Baselines3."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rewardlab.errors import RewardLabError


def spawn_seeds(seeds: int | Sequence[int] | None, n: int, what: str) -> list[int]:
    """One seed per environment: the given list, or n seeds spawned from one (or from fresh entropy)."""
    if seeds is None or isinstance(seeds, (int, np.integer)):
        base = np.random.SeedSequence(seeds)
        return [int(s.generate_state(1)[0]) for s in base.spawn(n)]
    seeds = [int(s) for s in seeds]
    if len(seeds) != n:
        raise RewardLabError(f"{what} got {len(seeds)} seeds for {n} environments")
    return seeds


class SameStepVectorEnv(VectorEnv):
    """A batched environment as Gymnasium's `VectorEnv` with `AutoresetMode.SAME_STEP`.

    A subclass sets its spaces with `_set_spaces`, and implements `_seed(seeds)`, `_reset_all() -> obs` and
    `_step(actions) -> (obs, rewards, terminated, truncated, final_obs)` over all environments at once (numpy), with
    `obs` already holding the reset observation where an episode ended and `final_obs` the last observation of every
    environment before any reset. `step` returns Gymnasium's 5-tuple, the final observations in `infos`.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["rgb_array"]}

    def _set_spaces(self, n: int, observation: spaces.Space, action: spaces.Space) -> None:
        self.num_envs = n
        self.single_observation_space = observation
        self.single_action_space = action
        self.observation_space = batch_space(observation, n)
        self.action_space = batch_space(action, n)

    @property
    def n(self) -> int:
        """The number of environments (`num_envs`)."""
        return self.num_envs

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None):
        """Reset every environment (re-seeding them first when `seed` is given); returns (obs, infos)."""
        if seed is not None:
            self._seed(seed)
        return self._reset_all(), {}

    def step(self, actions: np.ndarray):
        """Step every environment; returns (obs, rewards, terminations, truncations, infos)."""
        obs, rewards, terminated, truncated, final_obs = self._step(actions)
        done = terminated | truncated
        infos: dict[str, Any] = {}
        if done.any():
            final = np.empty(self.num_envs, dtype=object)
            info = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(done):
                final[i], info[i] = final_obs[i], {}
            infos = {"final_obs": final, "_final_obs": done, "final_info": info, "_final_info": done}
        return obs, rewards, terminated, truncated, infos


class BatchOfOne(gym.Env):
    """A single Gymnasium Env that is a batched `SameStepVectorEnv` with N = 1 (so the dynamics live once): an
    episode's end hands back its final observation and waits for `reset`; `info` holds the batch's `info_keys`."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}
    info_keys: tuple[str, ...] = ()

    def __init__(self, batch: SameStepVectorEnv, render_mode: str | None = None):
        self.batch = batch
        self.observation_space = batch.single_observation_space
        self.action_space = batch.single_action_space
        self.render_mode = render_mode
        self._pending_reset = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, _ = self.batch.reset(seed=[int(self.np_random.integers(0, 2**31 - 1))] if seed is not None else None)
        self._pending_reset = False
        return obs[0], {}

    def step(self, action: Any):
        if self._pending_reset:
            raise RewardLabError("the episode has ended: call reset() before step()")
        obs, rewards, term, trunc, infos = self.batch.step(np.asarray([int(action)]))
        info = {k: infos[k][0].item() for k in self.info_keys}
        if term[0] or trunc[0]:  # the batch has started the next episode: hand back the last observation
            obs = infos["final_obs"][0][None]
            self._pending_reset = True
        return obs[0], float(rewards[0]), bool(term[0]), bool(trunc[0]), info

    def render(self) -> np.ndarray:
        return self.batch.render()[0]

    def close(self) -> None:
        self.batch.close()


def final_observations(obs: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
    """Every environment's observation at the end of the step: the final one where an episode ended (from
    `infos`), else the returned one."""
    if "_final_obs" not in infos:
        return obs
    out = obs.copy()
    done = infos["_final_obs"]
    out[done] = np.stack(list(infos["final_obs"][done]))
    return out
