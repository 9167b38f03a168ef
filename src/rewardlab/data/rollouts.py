"""Rollouts of a policy in a batched environment: episodes for evaluation, transitions for datasets."""

from __future__ import annotations

from typing import Callable

import numpy as np

from rewardlab.data.transitions import Transitions
from rewardlab.envs.vector import final_observations
from rewardlab.errors import RewardLabError

ActFn = Callable[[np.ndarray], np.ndarray]


def run_episodes(env, act: ActFn, n_episodes: int) -> dict[str, np.ndarray]:
    """Run each of `env.n` environments until `n_episodes` episodes have finished (the first ones
    to finish in each environment, in order); returns per-episode returns, lengths and successes.

    `env` is a same-step-autoreset VectorEnv (`rewardlab.envs.vector`). Success means the episode ended by
    termination.
    """
    obs, _ = env.reset()
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
    """Collect exactly `n` transitions (s, a, s', r, done) from `env` under `act`; on episode ends s' is
    the final observation (not the next episode's first)."""
    obs, _ = env.reset()
    parts: list[Transitions] = []
    total = 0
    while total < n:
        actions = np.asarray(act(obs))
        nxt, rewards, terminated, truncated, infos = env.step(actions)
        final_obs = final_observations(nxt, infos)
        parts.append(Transitions(obs, actions.copy(), final_obs, rewards.astype(np.float32), terminated.copy()))
        total += env.n
        obs = nxt
    return Transitions.concat(parts).take(slice(0, n))


def collect_trajectories(
    env,
    act: ActFn,
    n: int,
    random_prob: float = 0.0,
    seed: int = 0,
    infos: dict[str, np.ndarray] | None = None,
) -> tuple[Transitions, np.ndarray]:
    """Collect exactly `n` transitions as time-ordered trajectories, with epsilon-random actions.

    At each step each of `env.n` environments (BatchedMaze API) independently takes a uniformly random
    action with probability `random_prob` (drawn from `np.random.default_rng(seed)`), else the action
    of `act(obs)` (not called at all when `random_prob` is 1). `ceil(n / env.n)` steps are run; the
    transitions are laid out environment by environment (each environment's stream in time order)
    and the last stream's tail is dropped to leave exactly `n`. Episodes are thus contiguous; the
    ones cut by the end of collection are prefixes. Returns the transitions (s' is the final
    observation on episode ends, `dones` are the env's `terminated` flags) and int64 episode ids
    0, 1, 2, ... in order, so that i and i + 1 are consecutive steps of one trajectory exactly when
    `episode[i] == episode[i + 1]`. With `infos`, a dict whose keys name per-environment entries of the env's
    step infos (e.g. `level_seed`), each key's value is replaced by that entry per transition, in the same order.
    """
    if n < 1:
        raise RewardLabError(f"collect_trajectories needs n >= 1 transitions, got {n}")
    if not 0.0 <= random_prob <= 1.0:
        raise RewardLabError(f"random_prob must be a probability in [0, 1], got {random_prob}")
    rng = np.random.default_rng(seed)
    m = env.n
    n_actions = int(env.single_action_space.n)
    steps = -(-n // m)
    obs, _ = env.reset()
    cols: dict[str, list[np.ndarray]] = {"obs": [], "acts": [], "next_obs": [], "rewards": [], "dones": [], "ends": []}
    keys = list(infos or ())
    cols.update({f"info.{k}": [] for k in keys})
    for _ in range(steps):
        explore = rng.random(m) < random_prob
        random_actions = rng.integers(0, n_actions, size=m)
        if random_prob >= 1.0:
            actions = random_actions
        else:
            actions = np.where(explore, random_actions, np.asarray(act(obs)).reshape(m))
        nxt, rewards, terminated, truncated, step_infos = env.step(actions)
        final_obs = final_observations(nxt, step_infos)
        for k, v in (
            ("obs", obs),
            ("acts", actions),
            ("next_obs", final_obs),
            ("rewards", rewards.astype(np.float32)),
            ("dones", terminated),
            ("ends", terminated | truncated),
        ):
            cols[k].append(np.array(v, copy=True))
        for k in keys:
            if k not in step_infos:
                raise RewardLabError(f"the environment's step infos have no '{k}'")
            cols[f"info.{k}"].append(np.array(step_infos[k], copy=True))
        obs = nxt
    # (steps, m, ...) -> environment-major (m * steps, ...), each stream in time order
    flat = {k: np.swapaxes(np.stack(v), 0, 1).reshape((m * steps,) + v[0].shape[1:]) for k, v in cols.items()}
    starts = np.zeros(m * steps, dtype=bool)
    starts[::steps] = True
    starts[1:] |= flat["ends"][:-1]
    episode = (np.cumsum(starts) - 1).astype(np.int64)
    t = Transitions(flat["obs"], flat["acts"], flat["next_obs"], flat["rewards"], flat["dones"].astype(bool))
    for k in keys:
        infos[k] = flat[f"info.{k}"][:n]
    return t.take(slice(0, n)), episode[:n]
