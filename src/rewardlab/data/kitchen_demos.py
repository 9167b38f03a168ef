"""A scripted, noisy demonstrator for the mini-kitchen: task-agnostic subtask sequences, like D4RL's "mixed" data.

Every episode draws `subtasks_per_episode` distinct objects in random order, never exactly the target set (so, as in
kitchen-mixed, no demonstration completes the downstream task), and performs them one after another with a
proportional controller: reach the object's handle, then push it along its path until it is open past a random
stop point in [stop_low, 1]. Gaussian noise is added to every action. All episodes run at once (vectorised).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewardlab.data.offline import OfflineDataset
from rewardlab.envs.mini_kitchen import ACT_DIM, N_OBJ, BatchedMiniKitchen, KitchenSpec, handles
from rewardlab.errors import RewardLabError


@dataclass
class DemoConfig:
    episodes: int = 500
    subtasks_per_episode: int = 4
    action_noise: float = 0.2  # std of the Gaussian noise on each action component
    gain: float = 2.0  # proportional gain (in units of a full-speed step)
    stop_low: float = 0.85  # each push stops at a q drawn from U[stop_low, 1]
    seed: int = 0

    def validate(self, spec: KitchenSpec) -> None:
        if self.episodes < 1:
            raise RewardLabError(f"episodes must be >= 1, got {self.episodes}")
        if not 1 <= self.subtasks_per_episode <= N_OBJ:
            raise RewardLabError(f"subtasks_per_episode must be in [1, {N_OBJ}], got {self.subtasks_per_episode}")
        if self.subtasks_per_episode == N_OBJ and len(spec.tasks) == N_OBJ:
            raise RewardLabError("with every object a target, no demonstration can avoid the target set")
        if not 1.0 - spec.threshold < self.stop_low <= 1.0:
            raise RewardLabError(f"stop_low must be in ({1.0 - spec.threshold}, 1] so pushes complete subtasks")


def _plans(rng: np.random.Generator, n: int, k: int, targets: np.ndarray) -> np.ndarray:
    """(n, k) distinct objects per episode, in random order, never exactly the target set."""
    plans = np.argsort(rng.random((n, N_OBJ)), axis=1)[:, :k]
    tset = np.zeros(N_OBJ, dtype=bool)
    tset[targets] = True
    while True:
        chosen = np.zeros((n, N_OBJ), dtype=bool)
        np.put_along_axis(chosen, plans, True, axis=1)
        bad = (chosen == tset).all(axis=1)
        if not bad.any():
            return plans
        plans[bad] = np.argsort(rng.random((int(bad.sum()), N_OBJ)), axis=1)[:, :k]


def scripted_demos(cfg: DemoConfig, spec: KitchenSpec | None = None) -> OfflineDataset:
    """Roll the demonstrator for `cfg.episodes` episodes; returns them back to back in the D4RL layout."""
    spec = spec or KitchenSpec()
    cfg.validate(spec)
    rng = np.random.default_rng(cfg.seed)
    n, k = cfg.episodes, cfg.subtasks_per_episode
    env = BatchedMiniKitchen(n, spec, seed=int(rng.integers(2**31)))
    plans = _plans(rng, n, k, spec.task_index)
    stage = np.zeros(n, dtype=np.int64)
    stop = rng.uniform(cfg.stop_low, 1.0, n)
    alive = np.ones(n, dtype=bool)
    rows = np.arange(n)
    obs = env.obs()
    rec: dict[str, list[np.ndarray]] = {k_: [] for k_ in ("obs", "act", "rew", "term", "trunc", "alive")}
    for _ in range(spec.max_steps):
        j = plans[rows, np.minimum(stage, k - 1)]
        qj = env.q[rows, j]
        h, _ = handles(env.q)
        here = h[rows, j]
        ahead_q = env.q.copy()
        ahead_q[rows, j] = np.minimum(qj + 0.3, 1.0)
        ahead = handles(ahead_q)[0][rows, j]
        touching = np.linalg.norm(here - env.pos, axis=1) < 0.6 * spec.contact_radius
        target = np.where(touching[:, None], ahead, here)
        act = np.clip(cfg.gain * (target - env.pos) / spec.speed, -1.0, 1.0)
        act = np.clip(act + rng.normal(0.0, cfg.action_noise, act.shape), -1.0, 1.0)
        nxt, rew, term, trunc = env.step(act, active=alive)
        # a subtask is done once its object passes the stop point; the episode ends after its last subtask
        finished = alive & (env.q[rows, j] >= stop)
        stage = stage + finished
        stop = np.where(finished, rng.uniform(cfg.stop_low, 1.0, n), stop)
        plan_done = stage >= k
        rec["obs"].append(obs)
        rec["act"].append(act.astype(np.float32))
        rec["rew"].append(rew)
        rec["term"].append(term)
        rec["trunc"].append((trunc | plan_done) & ~term)
        rec["alive"].append(alive.copy())
        alive = alive & ~(term | trunc | plan_done)
        obs = nxt
        if not alive.any():
            break
    # (T, n, ...) -> episode after episode, keeping each episode's live steps
    live = np.stack(rec["alive"]).T  # (n, T)
    take = lambda key: np.swapaxes(np.stack(rec[key]), 0, 1)[live]  # noqa: E731
    trunc = take("trunc")
    term = take("term")
    # the last live step of every episode ends it (a plan cut by the step cap is a timeout)
    last = np.cumsum(live.sum(axis=1)) - 1
    trunc[last] |= ~term[last]
    # an accidental push can complete the whole target set; like kitchen-mixed, keep no episode that does
    ep_of_step = np.repeat(np.arange(n), live.sum(axis=1))
    solved = np.zeros(n, dtype=bool)
    solved[ep_of_step[term]] = True
    keep = ~solved[ep_of_step]
    return OfflineDataset(
        take("obs")[keep],
        take("act")[keep],
        take("rew")[keep],
        term[keep],
        trunc[keep],
        meta={
            "dropped_episodes_solving_the_task": int(solved.sum()),
            "env": "rewardlab/MiniKitchen-v0",
            "generator": "scripted_demos",
            "episodes": n,
            "subtasks_per_episode": k,
            "action_noise": cfg.action_noise,
            "seed": cfg.seed,
            "tasks": list(spec.tasks),
            "act_dim": ACT_DIM,
        },
    )
