"""Real Franka Kitchen (gymnasium-robotics `FrankaKitchen-v1`) in the D4RL `kitchen-*-v0` layout PTGM expects.

Optional: needs the `kitchen` extra (`pip install -e '.[kitchen]'`, i.e. gymnasium-robotics and mujoco==3.11.0).
Importing this module never imports mujoco or gymnasium-robotics; only `make_franka_kitchen` and
`record_kitchen_dataset` do.

Observation layout (60-d, as D4RL's `KitchenV0._get_obs` with `goal_concat=True`):

* [0:9]   robot joint positions            = v1 `observation`[0:9]
* [9:30]  object joint positions (21)      = v1 `observation`[18:39]   (v1 index = D4RL index - 9 + 18)
* [30:60] task-goal vector, constant       = D4RL's `KitchenBase._get_task_goal()`: zeros(30) with
  `goal[OBS_ELEMENT_INDICES[t]] = OBS_ELEMENT_GOALS[t]` for every target task t (the indices are qpos indices,
  so they address the first 30 obs dims; robot entries stay 0). D4RL's dataset script writes the same vector
  into `obs[..., 30:]` of every dataset row.

The v1 robot velocities (v1[9:18]) and object velocities (v1[39:59]) are dropped, as D4RL's obs has none.
Approximations vs D4RL v0: v1 adds its own uniform observation noise (robot 0.01, objects 0.0005 x the
per-joint amplitudes) where v0 used `robot_noise_ratio=0.1`, and v1 runs the MuJoCo 3 bindings instead of
mujoco_py 2.0, so trajectories are not bit-identical to the D4RL ones; goal values, thresholds (0.3), reward,
task removal and termination are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlab.errors import RewardLabError

KITCHEN_OBS_DIM = 60
KITCHEN_ACT_DIM = 9
KITCHEN_V1_OBS_DIM = 59
KITCHEN_ENV_ID = "FrankaKitchen-v1"
KITCHEN_MAX_STEPS = 280

# The 7 subtasks, spelled as gymnasium-robotics (and D4RL) spell them.
KITCHEN_TASKS: tuple[str, ...] = (
    "microwave",
    "kettle",
    "slide cabinet",
    "hinge cabinet",
    "bottom burner",
    "light switch",
    "top burner",
)
# kitchen-mixed-v0 (KitchenMicrowaveKettleBottomBurnerLightV0): the PTGM / SPiRL downstream target.
KITCHEN_TARGET_TASKS: tuple[str, ...] = ("microwave", "kettle", "bottom burner", "light switch")

# Identical in D4RL d4rl/kitchen/kitchen_envs.py and gymnasium_robotics/envs/franka_kitchen/kitchen_env.py;
# copied here so that this module does not import mujoco (a test checks them against gymnasium-robotics).
# Indices are MuJoCo qpos indices, which equal D4RL obs indices for the first 30 dims.
OBS_ELEMENT_INDICES: dict[str, np.ndarray] = {
    "bottom burner": np.array([11, 12]),
    "top burner": np.array([15, 16]),
    "light switch": np.array([17, 18]),
    "slide cabinet": np.array([19]),
    "hinge cabinet": np.array([20, 21]),
    "microwave": np.array([22]),
    "kettle": np.array([23, 24, 25, 26, 27, 28, 29]),
}
OBS_ELEMENT_GOALS: dict[str, np.ndarray] = {
    "bottom burner": np.array([-0.88, -0.01]),
    "top burner": np.array([-0.92, -0.01]),
    "light switch": np.array([-0.69, -0.05]),
    "slide cabinet": np.array([0.37]),
    "hinge cabinet": np.array([0.0, 1.45]),
    "microwave": np.array([-0.75]),
    "kettle": np.array([-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06]),
}
BONUS_THRESH = 0.3

# PTGM goal features: 9 robot joints, bottom burner (2), light switch (2), microwave (1), kettle (7) = 21 dims.
KITCHEN_GOAL_IDX: np.ndarray = np.array([*range(9), 11, 12, 17, 18, 22, *range(23, 30)])

_EXTRA_MSG = "FrankaKitchen needs the kitchen extra: pip install -e '.[kitchen]' (mujoco==3.11.0)"
_FORCED_KW = ("tasks_to_complete", "terminate_on_tasks_completed", "remove_task_when_completed", "max_episode_steps")


def check_kitchen_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    """`tasks` as a tuple of known, distinct Kitchen task names (a single name is accepted too)."""
    if isinstance(tasks, str):
        tasks = (tasks,)
    tasks = tuple(tasks)
    bad = [t for t in tasks if t not in OBS_ELEMENT_GOALS]
    if bad or not tasks:
        raise RewardLabError(f"unknown Kitchen task(s) {bad or '(none given)'}; choose from {list(KITCHEN_TASKS)}")
    if len(set(tasks)) != len(tasks):
        raise RewardLabError(f"Kitchen tasks {list(tasks)} contain duplicates")
    return tasks


def kitchen_goal_vector(tasks: Sequence[str] = KITCHEN_TARGET_TASKS) -> np.ndarray:
    """The constant 30-d task-goal part of a D4RL Kitchen observation (float64), as `KitchenBase._get_task_goal`."""
    goal = np.zeros(30)
    for t in check_kitchen_tasks(tasks):
        goal[OBS_ELEMENT_INDICES[t]] = OBS_ELEMENT_GOALS[t]
    return goal


def d4rl_obs_from_v1(obs59: np.ndarray, tasks: Sequence[str] = KITCHEN_TARGET_TASKS) -> np.ndarray:
    """Map FrankaKitchen-v1 `observation`s (..., 59) to D4RL-layout observations (..., 60).

    v1[0:9] (robot qpos) ++ v1[18:39] (object qpos) ++ `kitchen_goal_vector(tasks)`; any leading batch dims.
    """
    obs = np.asarray(obs59)
    if obs.ndim == 0 or obs.shape[-1] != KITCHEN_V1_OBS_DIM:
        raise RewardLabError(
            f"FrankaKitchen-v1 observations must have {KITCHEN_V1_OBS_DIM} dims in the last axis; got shape {obs.shape}"
        )
    dtype = np.result_type(obs.dtype, np.float32)
    goal = np.broadcast_to(kitchen_goal_vector(tasks).astype(dtype), obs.shape[:-1] + (30,))
    return np.concatenate([obs[..., 0:9].astype(dtype), obs[..., 18:39].astype(dtype), goal], axis=-1)


def goal_features(obs60: np.ndarray) -> np.ndarray:
    """The 21 PTGM goal features (`KITCHEN_GOAL_IDX`) of D4RL-layout observations (..., 60)."""
    obs = np.asarray(obs60)
    if obs.ndim == 0 or obs.shape[-1] != KITCHEN_OBS_DIM:
        raise RewardLabError(
            f"Kitchen observations must have {KITCHEN_OBS_DIM} dims in the last axis; got shape {obs.shape}"
        )
    return obs[..., KITCHEN_GOAL_IDX]


class FrankaKitchenD4RL(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """FrankaKitchen-v1 seen as D4RL `kitchen-*-v0`: 60-d float32 Box observations, 9-d actions in [-1, 1].

    Reward, task removal, termination and the step limit are FrankaKitchen-v1's own (made with
    `remove_task_when_completed=True`, `terminate_on_tasks_completed=True`): +1 per target task at the step it
    comes within 0.3 of its goal, each task at most once, terminated when all are done. `info["completed_tasks"]`
    lists the tasks completed so far in the episode (a fresh list each step).
    """

    def __init__(self, env: gym.Env, tasks: Sequence[str] = KITCHEN_TARGET_TASKS, seed: int | None = None):
        gym.utils.RecordConstructorArgs.__init__(self, tasks=tuple(tasks), seed=seed)  # so the wrapper can be remade
        gym.Wrapper.__init__(self, env)
        self.tasks = check_kitchen_tasks(tasks)
        self._goal = kitchen_goal_vector(self.tasks).astype(np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (KITCHEN_OBS_DIM,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (KITCHEN_ACT_DIM,), np.float32)
        self._pending_seed = seed
        if seed is not None:
            self.action_space.seed(seed)

    def _obs(self, obs: Any) -> np.ndarray:
        v1 = np.asarray(obs["observation"] if isinstance(obs, dict) else obs, dtype=np.float32)
        return np.concatenate([v1[0:9], v1[18:39], self._goal])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None and self._pending_seed is not None:
            seed = self._pending_seed
        self._pending_seed = None
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        info["completed_tasks"] = []
        return self._obs(obs), info

    def step(self, action: Any):
        a = np.asarray(action, dtype=np.float64).reshape(KITCHEN_ACT_DIM)
        obs, reward, terminated, truncated, info = self.env.step(a)
        info = dict(info)
        # copies: the env mutates its episode_task_completions list in place (and clears it on reset)
        info["completed_tasks"] = list(info.get("episode_task_completions", []))
        info["episode_task_completions"] = list(info["completed_tasks"])
        info["step_task_completions"] = list(info.get("step_task_completions", []))
        return self._obs(obs), float(reward), bool(terminated), bool(truncated), info

    @staticmethod
    def goal_features(obs60: np.ndarray) -> np.ndarray:
        """The 21 PTGM goal features of observations (..., 60)."""
        return goal_features(obs60)


def _import_kitchen() -> None:
    try:
        import gymnasium_robotics  # noqa: F401  (registers FrankaKitchen-v1)
        import mujoco  # noqa: F401
    except (ImportError, gym.error.DependencyNotInstalled):  # the latter: gymnasium's mujoco envs without mujoco
        raise RewardLabError(_EXTRA_MSG) from None


def make_franka_kitchen(
    tasks: Sequence[str] = KITCHEN_TARGET_TASKS, max_steps: int = KITCHEN_MAX_STEPS, seed: int | None = None, **kw: Any
) -> FrankaKitchenD4RL:
    """FrankaKitchen-v1 with `tasks` as targets, truncated at `max_steps`, in the D4RL 60-d layout.

    `seed` seeds the first `reset()` and the action space; `kw` go to `gym.make` (e.g. `robot_noise_ratio`,
    `object_noise_ratio`).
    """
    tasks = check_kitchen_tasks(tasks)
    if int(max_steps) < 1:
        raise RewardLabError(f"max_steps must be >= 1, got {max_steps}")
    forced = [k for k in _FORCED_KW if k in kw]
    if forced:
        raise RewardLabError(f"make_franka_kitchen sets {', '.join(forced)} itself; use tasks= and max_steps=")
    _import_kitchen()
    try:
        env = gym.make(
            KITCHEN_ENV_ID,
            tasks_to_complete=list(tasks),
            terminate_on_tasks_completed=True,
            remove_task_when_completed=True,
            max_episode_steps=int(max_steps),
            disable_env_checker=True,
            **kw,
        )
    except AssertionError as e:  # mujoco >= 3.12 breaks FrankaKitchen-v1 (get_joint_qpos)
        import mujoco

        raise RewardLabError(
            f"FrankaKitchen-v1 failed to start with mujoco {mujoco.__version__} ({e!r}); pip install mujoco==3.11.0"
        ) from None
    return FrankaKitchenD4RL(env, tasks=tasks, seed=seed)


def record_kitchen_dataset(
    n_episodes: int,
    max_steps: int = KITCHEN_MAX_STEPS,
    seed: int = 0,
    policy: str | Callable[[np.ndarray], np.ndarray] = "random",
    tasks: Sequence[str] = KITCHEN_TARGET_TASKS,
    **env_kw: Any,
):
    """Roll `policy` in `make_franka_kitchen` for `n_episodes` and return an `OfflineDataset` (D4RL layout).

    `policy` is "random" (uniform actions in [-1, 1], seeded by `seed`) or a callable obs60 -> 9-d action.
    observations[t] is the 60-d obs the action at t was taken in; terminals / timeouts come from the env.
    """
    from rewardlab.data.offline import OfflineDataset

    if int(n_episodes) < 1:
        raise RewardLabError(f"n_episodes must be >= 1, got {n_episodes}")
    if isinstance(policy, str) and policy != "random":
        raise RewardLabError(f"unknown policy '{policy}': use 'random' or pass a callable obs60 -> action")
    env = make_franka_kitchen(tasks=tasks, max_steps=max_steps, seed=seed, **env_kw)
    rng = np.random.default_rng(seed)
    obs_l, act_l, rew_l, term_l, trunc_l = [], [], [], [], []
    try:
        for _ in range(int(n_episodes)):
            obs, _info = env.reset()
            while True:
                if callable(policy):
                    act = np.asarray(policy(obs), dtype=np.float32).reshape(KITCHEN_ACT_DIM)
                else:
                    act = rng.uniform(-1.0, 1.0, KITCHEN_ACT_DIM).astype(np.float32)
                nxt, rew, term, trunc, _info = env.step(act)
                obs_l.append(obs)
                act_l.append(act)
                rew_l.append(rew)
                term_l.append(term)
                trunc_l.append(trunc)
                obs = nxt
                if term or trunc:
                    break
    finally:
        env.close()
    meta = {
        "env": KITCHEN_ENV_ID,
        "generator": "rewardlab.envs.franka_kitchen.record_kitchen_dataset",
        "policy": policy if isinstance(policy, str) else getattr(policy, "__name__", type(policy).__name__),
        "seed": seed,
        "n_episodes": int(n_episodes),
        "max_steps": int(max_steps),
        "tasks": list(env.tasks),
        "obs_layout": "d4rl-kitchen-60",
    }
    return OfflineDataset(
        np.stack(obs_l), np.stack(act_l), np.asarray(rew_l), np.asarray(term_l), np.asarray(trunc_l), meta=meta
    )
