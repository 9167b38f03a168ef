"""CoinRun (Procgen) on envpool, as a Gymnasium VectorEnv with same-step autoreset, and a registered single env.

The Procgen protocol of Cobbe et al. (2020) as envpool implements it: 64x64 RGB frames (channel-first here, uint8),
15 actions, +10 when the agent reaches the coin (then the episode ends), a 1,000-step cap, levels drawn from
`num_levels` levels starting at `start_level` (0 levels: unbounded), the easy or hard distribution. `infos` adds
`level_seed` (the level of the step, before any reset), `success` (the episode ended at the coin) and `elapsed`.

envpool's Procgen needs the system Qt5 runtime (Debian: `apt-get install -y libqt5gui5`); without it,
`check_procgen` and `make_coinrun` stop with one line naming that command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rewardlab.envs.vector import BatchOfOne, SameStepVectorEnv, spawn_seeds
from rewardlab.errors import RewardLabError

DISTRIBUTIONS = ("easy", "hard")
SIZE = 64
N_ACTIONS = 15
COIN_REWARD = 10.0
MAX_EPISODE_STEPS = 1000
QT_INSTALL = "apt-get install -y libqt5gui5"


@dataclass(frozen=True)
class CoinRunSpec:
    """Which levels: the distribution (easy, hard), how many (0: unbounded) and the first."""

    distribution: str = "easy"
    num_levels: int = 200
    start_level: int = 0


def check_procgen() -> None:
    """One line naming the fix when envpool or its Procgen (the Qt5 runtime) is missing."""
    try:
        import envpool  # noqa: F401
    except ImportError:
        raise RewardLabError("CoinRun needs envpool: run `pip install envpool`") from None
    try:
        import envpool.procgen  # noqa: F401
    except ImportError:
        raise RewardLabError(f"CoinRun (envpool's Procgen) needs the system Qt5 runtime: run `{QT_INSTALL}`") from None


class CoinRunVectorEnv(SameStepVectorEnv):
    """N CoinRun games stepped together (envpool), observations (N, 3, 64, 64) uint8, actions Discrete(15)."""

    render_mode = "rgb_array"

    def __init__(self, spec: CoinRunSpec, num_envs: int, seed: int | Sequence[int] | None = 0):
        if spec.distribution not in DISTRIBUTIONS:
            raise RewardLabError(f"unknown CoinRun distribution '{spec.distribution}'; choose easy or hard")
        if spec.num_levels < 0 or spec.start_level < 0:
            raise RewardLabError("CoinRun num_levels and start_level must be >= 0")
        if num_envs < 1:
            raise RewardLabError(f"make_coinrun needs at least one environment, got num_envs={num_envs}")
        check_procgen()
        self.spec_ = spec
        self.num_envs = num_envs
        self._pool: Any = None
        self._seed(seed)
        self._set_spaces(num_envs, spaces.Box(0, 255, (3, SIZE, SIZE), dtype=np.uint8), spaces.Discrete(N_ACTIONS))
        self._obs = np.zeros((num_envs, 3, SIZE, SIZE), dtype=np.uint8)
        self._started = False
        self._extra: dict[str, np.ndarray] = {}

    def _seed(self, seed: int | Sequence[int] | None) -> None:
        import envpool

        self.seeds = [s & 0x7FFFFFFF for s in spawn_seeds(seed, self.num_envs, "make_coinrun")]
        if self._pool is not None:
            self._pool.close()
        name = "CoinrunEasy-v0" if self.spec_.distribution == "easy" else "CoinrunHard-v0"
        # envpool seeds its environments from one seed (env i gets seed + i); the first spawned seed stands for all
        self._pool = envpool.make(
            name,
            env_type="gymnasium",
            num_envs=self.num_envs,
            seed=int(self.seeds[0]),
            num_levels=self.spec_.num_levels,
            start_level=self.spec_.start_level,
            max_episode_steps=MAX_EPISODE_STEPS,
        )
        self._started = False

    @staticmethod
    def _ordered(ids: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        order = np.argsort(ids)
        return tuple(np.asarray(a)[order] for a in arrays)

    def _reset_all(self) -> np.ndarray:
        obs, info = self._pool.reset()
        (self._obs[...],) = self._ordered(info["env_id"], obs)
        self._started = True
        return self._obs.copy()

    def _step(self, actions: np.ndarray):
        if not self._started:
            raise RewardLabError("call reset() on a CoinRun environment before its first step()")
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or (actions.size and (actions.min() < 0 or actions.max() >= N_ACTIONS)):
            raise RewardLabError(f"CoinRun.step expects {self.num_envs} actions in 0..{N_ACTIONS - 1}")
        obs, rew, term, trunc, info = self._pool.step(actions.astype(np.int32), np.arange(self.num_envs))
        obs, rew, term, trunc, level, elapsed = self._ordered(
            info["env_id"], obs, rew, term, trunc, info["level_seed"], info["elapsed_step"]
        )
        term, trunc = term.astype(bool), trunc.astype(bool) & ~term.astype(bool)
        self._obs[...] = obs
        final = self._obs.copy()
        done = np.flatnonzero(term | trunc)
        if done.size:
            new, new_info = self._pool.reset(done)
            (new,) = self._ordered(new_info["env_id"], new)
            self._obs[done] = new
        self._extra = {
            "level_seed": level.astype(np.int64),
            "success": term & (rew > 0),
            "elapsed": elapsed.astype(np.int64),
        }
        return self._obs.copy(), rew.astype(np.float32), term, trunc, final

    def step(self, actions: np.ndarray):
        """Step every game; `infos` add `level_seed`, `success` and `elapsed` to the final observations."""
        obs, rewards, terminated, truncated, infos = super().step(actions)
        infos.update(self._extra)
        return obs, rewards, terminated, truncated, infos

    def render(self) -> np.ndarray:
        """The last frames (N, 64, 64, 3) uint8."""
        return np.ascontiguousarray(self._obs.transpose(0, 2, 3, 1))

    def close_extras(self, **kwargs: Any) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def make_coinrun(spec: CoinRunSpec, num_envs: int, seed: int | Sequence[int] | None = 0) -> CoinRunVectorEnv:
    """`num_envs` CoinRun games of `spec`, seeded from `seed`."""
    return CoinRunVectorEnv(spec, num_envs, seed)


class CoinRunEnv(BatchOfOne):
    """One CoinRun game as a Gymnasium Env (`rewardlab/CoinRun-v0`, `rewardlab/CoinRunHard-v0`): the batched
    environment with N = 1. `info` holds `level_seed`, `success` and `elapsed`."""

    info_keys = ("level_seed", "success", "elapsed")

    def __init__(
        self, distribution: str = "easy", num_levels: int = 200, start_level: int = 0, render_mode: str | None = None
    ):
        super().__init__(make_coinrun(CoinRunSpec(distribution, num_levels, start_level), 1, seed=None), render_mode)


def register() -> None:
    """Register `rewardlab/CoinRun-v0` (easy) and `rewardlab/CoinRunHard-v0` (envpool is imported when made)."""
    for name, dist in (("rewardlab/CoinRun-v0", "easy"), ("rewardlab/CoinRunHard-v0", "hard")):
        if name not in gym.registry:
            gym.register(name, entry_point="rewardlab.envs.coinrun:CoinRunEnv", kwargs={"distribution": dist})
