"""Rollouts of a policy in a batched environment: episodes for evaluation, transitions for datasets."""

from __future__ import annotations

from typing import Callable

import numpy as np

from rewardlab.data.transitions import Transitions

ActFn = Callable[[np.ndarray], np.ndarray]


def run_episodes(env, act: ActFn, n_episodes: int) -> dict[str, np.ndarray]:
    """Run each of `env.n` environments until `n_episodes` episodes have finished (the first ones
    to finish in each environment, in order); returns per-episode returns, lengths and successes.

    `env` follows the BatchedMaze API. Success means the episode ended by termination.
    """
    obs = env.reset()
    n = env.n
    ret = np.zeros(n)
    length = np.zeros(n, dtype=np.int64)
    returns, lengths, successes = [], [], []
    per_env_quota = np.full(n, n_episodes // n)
    per_env_quota[: n_episodes % n] += 1
    finished = np.zeros(n, dtype=np.int64)
    while len(returns) < n_episodes:
        obs, rewards, terminated, truncated, _ = env.step(act(obs))
        ret += rewards
        length += 1
        for i in np.flatnonzero(terminated | truncated):
            if finished[i] < per_env_quota[i]:
                returns.append(ret[i])
                lengths.append(length[i])
                successes.append(bool(terminated[i]))
                finished[i] += 1
            ret[i] = 0.0
            length[i] = 0
    return {"returns": np.asarray(returns), "lengths": np.asarray(lengths), "successes": np.asarray(successes)}


def collect_transitions(env, act: ActFn, n: int) -> Transitions:
    """Collect exactly `n` transitions (s, s', r, done) from `env` under `act`; on episode ends s' is
    the final observation (not the next episode's first)."""
    obs = env.reset()
    parts: list[Transitions] = []
    total = 0
    while total < n:
        nxt, rewards, terminated, truncated, final_obs = env.step(act(obs))
        parts.append(Transitions(obs, final_obs, rewards.astype(np.float32), terminated.copy()))
        total += env.n
        obs = nxt
    return Transitions.concat(parts).take(slice(0, n))
