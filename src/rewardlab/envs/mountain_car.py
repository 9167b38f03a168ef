"""Shaped MountainCar of Jenner & Gleave (2022), "Preprocessing Reward Functions for Interpretability".

Dynamics are exactly Gymnasium's MountainCar-v0 (force 0.001, gravity 0.0025, speed clipped to
[-0.07, 0.07], position clipped to [-1.2, 0.6], velocity zeroed at the left wall); the internal state
is float64 and observations are its float32 cast (pos, vel). Each reset draws one double,
`np_random.uniform(-0.6, -0.4)`, from the environment's own generator for the position (velocity 0).

The horizon is fixed at 200 steps with "absorb after done" (seals' AbsorbAfterDone): once the observed
position is >= 0.5 the car stays frozen (the observation repeats), `terminated` is always False and
the episode is truncated at step 200. The goal test is on the float32 observation, so the dynamics and
the reward are both functions of observations only.

Reward: r = r_base(s) + gamma * Phi(s') - Phi(s) with r_base(s) = [pos(s) >= 0.5] - 1, where s is the
observation before and s' the one after the step (the original environment wrongly used s' twice).
It is computed in float64 from the float32 observations and returned as float32. Potentials Phi:
unshaped 0, dense 100 pos, antidense -100 pos, random 100 sin(a pos + b) sin(c vel + d).

`ShapedMountainCarEnv` is the Gymnasium environment; `BatchedMountainCar` steps N of them at once in
numpy and gives the same trajectories as N `ShapedMountainCarEnv`s seeded with the same seeds.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from rewardlab.envs.vector import SameStepVectorEnv, final_observations, spawn_seeds
from rewardlab.errors import RewardLabError

SHAPINGS = ("unshaped", "dense", "antidense", "random")
GAMMA = 0.99
HORIZON = 200
MIN_POS, MAX_POS, MAX_SPEED, GOAL_POS = -1.2, 0.6, 0.07, 0.5
FORCE, GRAVITY = 0.001, 0.0025
RESET_LOW, RESET_HIGH = -0.6, -0.4
OBS_LOW = np.array([MIN_POS, -MAX_SPEED], dtype=np.float32)
OBS_HIGH = np.array([MAX_POS, MAX_SPEED], dtype=np.float32)
ACTION_NAMES = ("left", "none", "right")


def check_shaping(shaping: str) -> str:
    """`shaping` if it is one of SHAPINGS, else a RewardLabError."""
    if shaping not in SHAPINGS:
        raise RewardLabError(f"unknown MountainCar shaping '{shaping}'; choose one of {', '.join(SHAPINGS)}")
    return shaping


def mc_env_id(shaping: str) -> str:
    """The registered Gymnasium id of a shaped MountainCar."""
    return f"rewardlab/ShapedMountainCar-{check_shaping(shaping)}-v0"


def shaping_of(env_id: str) -> str:
    """The shaping named by a registered id (or by the shaping name itself), or a RewardLabError."""
    for s in SHAPINGS:
        if env_id in (mc_env_id(s), s):
            return s
    raise RewardLabError(f"unknown MountainCar '{env_id}'; choose one of {', '.join(mc_env_id(s) for s in SHAPINGS)}")


def potential_params(shaping: str, seed: int = 0) -> tuple[float, ...]:
    """Parameters of the potential: () unshaped, (scale,) dense/antidense, (a, b, c, d) random.

    The random potential draws (a, b) = 2 U[0,1) - 2 and then (c, d) = U(-pi, pi) from
    `np.random.default_rng(seed)`.
    """
    check_shaping(shaping)
    if shaping == "unshaped":
        return ()
    if shaping == "dense":
        return (100.0,)
    if shaping == "antidense":
        return (-100.0,)
    rng = np.random.default_rng(seed)
    ab = rng.random(2) * 2 - 2
    cd = rng.uniform(-np.pi, np.pi, 2)
    return (float(ab[0]), float(ab[1]), float(cd[0]), float(cd[1]))


def _is_numpy(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, float, int))


def _sin(x: Any) -> Any:
    return np.sin(x) if _is_numpy(x) else x.sin()


def _f64(x: Any) -> Any:
    return np.asarray(x, dtype=np.float64) if _is_numpy(x) else x.double()


def mc_potential(shaping: str, pos: Any, vel: Any, params: Sequence[float]) -> Any:
    """Phi(pos, vel) elementwise for numpy arrays or torch tensors (computed in the inputs' dtype)."""
    check_shaping(shaping)
    if shaping == "unshaped":
        return pos * 0.0
    if shaping in ("dense", "antidense"):
        return params[0] * pos
    a, b, c, d = params
    return 100.0 * _sin(a * pos + b) * _sin(c * vel + d)


def base_reward(pos: Any) -> Any:
    """r_base = [pos >= 0.5] - 1 in float64, for numpy arrays or torch tensors."""
    return _f64(pos >= GOAL_POS) - 1.0


def mc_reward(shaping: str, obs: Any, next_obs: Any, params: Sequence[float], gamma: float = GAMMA) -> Any:
    """r_base(s) + gamma Phi(s') - Phi(s) in float64 for observations (..., 2), numpy or torch.

    The env and `MountainCarRewardNet` both call this, so they share one definition.
    """
    s, s2 = _f64(obs), _f64(next_obs)
    phi = mc_potential(shaping, s[..., 0], s[..., 1], params)
    phi2 = mc_potential(shaping, s2[..., 0], s2[..., 1], params)
    return base_reward(s[..., 0]) + gamma * phi2 - phi


def mc_step(pos: np.ndarray, vel: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step of Gymnasium's MountainCar-v0 dynamics on float64 arrays (same operation order)."""
    action = np.asarray(action, dtype=np.int64)
    vel = vel + ((action - 1) * FORCE + np.cos(3 * pos) * (-GRAVITY))
    vel = np.clip(vel, -MAX_SPEED, MAX_SPEED)
    pos = np.clip(pos + vel, MIN_POS, MAX_POS)
    vel = np.where((pos == MIN_POS) & (vel < 0), 0.0, vel)
    return pos, vel


def render_car(pos: float, width: int = 300, height: int = 200) -> np.ndarray:
    """An RGB image (height, width, 3) uint8 of the hill curve, the goal flag and the car at `pos`."""
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    xs = np.linspace(MIN_POS, MAX_POS, width)
    ys = ((np.sin(3 * xs) * 0.45 + 0.55) * (height - 20)).astype(np.int64)
    rows = np.arange(height)[:, None]
    ground = rows >= (height - 1 - ys)[None, :]
    img[ground] = (200, 200, 200)
    col = lambda p: int(round((p - MIN_POS) / (MAX_POS - MIN_POS) * (width - 1)))  # noqa: E731
    gx = col(GOAL_POS)
    gy = height - 1 - ys[gx]
    img[max(gy - 25, 0) : gy, gx : gx + 2] = (40, 40, 40)
    img[max(gy - 25, 0) : max(gy - 17, 0), gx + 2 : gx + 10] = (50, 170, 60)
    cx = col(float(np.clip(pos, MIN_POS, MAX_POS)))
    cy = height - 1 - ys[cx]
    yy, xx = np.ogrid[:height, :width]
    img[(yy - (cy - 6)) ** 2 + (xx - cx) ** 2 <= 36] = (220, 50, 50)
    return img


class ShapedMountainCarEnv(gym.Env):
    """One shaped MountainCar with absorb-after-done and a 200-step horizon (see the module docstring).

    `info["base_reward"]` holds the unshaped reward r_base(s). `potential_seed` seeds the random potential.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self, shaping: str = "unshaped", gamma: float = GAMMA, potential_seed: int = 0, render_mode: str | None = None
    ):
        check_shaping(shaping)
        if render_mode not in (None, "rgb_array"):
            raise RewardLabError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.shaping = shaping
        self.gamma = float(gamma)
        self.params = potential_params(shaping, potential_seed)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self.action_space = spaces.Discrete(3)
        self.state = np.array([RESET_LOW, 0.0])
        self.t = 0

    def _obs(self) -> np.ndarray:
        return self.state.astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset to position U(-0.6, -0.4), velocity 0; `options={"state": (pos, vel)}` places the car
        there instead (the position is still drawn, so the generator advances as usual)."""
        super().reset(seed=seed)
        self.state = np.array([self.np_random.uniform(low=RESET_LOW, high=RESET_HIGH), 0.0])
        if options and "state" in options:
            self.state = np.asarray(options["state"], dtype=np.float64).reshape(2).copy()
        self.t = 0
        return self._obs(), {}

    def step(self, action: int):
        if not self.action_space.contains(action):
            raise RewardLabError(f"MountainCar action must be an integer in 0..2, got {action!r}")
        obs = self._obs()
        if obs[0] < GOAL_POS:  # absorbed (frozen) once the observed position reached the goal
            pos, vel = mc_step(self.state[:1], self.state[1:], np.array([int(action)]))
            self.state = np.concatenate([pos, vel])
        nxt = self._obs()
        reward = float(np.float32(mc_reward(self.shaping, obs, nxt, self.params, self.gamma)))
        self.t += 1
        info = {"base_reward": float(base_reward(obs[0]))}
        return nxt, reward, False, self.t >= HORIZON, info

    def render(self) -> np.ndarray:
        return render_car(float(self.state[0]))


class BatchedMountainCar(SameStepVectorEnv):
    """N shaped MountainCars stepped at once in numpy, with automatic reset of finished episodes.

    Car i behaves exactly like `ShapedMountainCarEnv` reset with `seeds[i]` and then reset without a
    seed after every episode end. Reset positions are pre-drawn in blocks with
    `uniform(-0.6, -0.4, size=block)` from each car's own generator (equal to one-by-one draws).
    """

    render_mode = "rgb_array"

    def __init__(
        self,
        n: int,
        shaping: str = "unshaped",
        seeds: int | Sequence[int] | None = None,
        gamma: float = GAMMA,
        potential_seed: int = 0,
        block: int = 64,
    ):
        if n < 1:
            raise RewardLabError(f"BatchedMountainCar needs at least one car, got n={n}")
        check_shaping(shaping)
        self._set_spaces(n, spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32), spaces.Discrete(3))
        self.shaping = shaping
        self.gamma = float(gamma)
        self.params = potential_params(shaping, potential_seed)
        self.max_episode_steps = HORIZON
        self._block = block
        self._seed(seeds)
        self.pos = np.zeros(n)
        self.vel = np.zeros(n)
        self.t = np.zeros(n, dtype=np.int64)
        self._arange = np.arange(n)

    def _seed(self, seeds: int | Sequence[int] | None) -> None:
        self._rngs = [seeding.np_random(s)[0] for s in spawn_seeds(seeds, self.n, "BatchedMountainCar")]
        self._draws = np.empty((self.n, self._block))
        self._ptr = np.zeros(self.n, dtype=np.int64)
        for i in range(self.n):
            self._refill(i)

    def _refill(self, i: int) -> None:
        self._draws[i] = self._rngs[i].uniform(RESET_LOW, RESET_HIGH, self._block)
        self._ptr[i] = 0

    def _reset_idx(self, idx: np.ndarray) -> None:
        if idx.size == 0:
            return
        for i in idx[self._ptr[idx] >= self._block]:
            self._refill(int(i))
        p = self._ptr[idx]
        self.pos[idx] = self._draws[idx, p]
        self.vel[idx] = 0.0
        self._ptr[idx] = p + 1
        self.t[idx] = 0

    def observe(self) -> np.ndarray:
        """The current observations (n, 2) float32 (position, velocity)."""
        return np.stack([self.pos, self.vel], axis=1).astype(np.float32)

    def _reset_all(self) -> np.ndarray:
        """Reset every car; returns observations (n, 2) float32."""
        self._reset_idx(self._arange)
        return self.observe()

    def _step(self, actions: np.ndarray):
        """Step all cars. Returns (obs, rewards, terminated, truncated, final_obs).

        `obs` already holds the reset observation of cars whose episode ended; `final_obs` holds the
        last observation of every car before any reset (equal to `obs` where nothing ended).
        `terminated` is always False (absorb after done); `truncated` is True at step 200.
        """
        actions = np.asarray(actions)
        if actions.shape != (self.n,):
            raise RewardLabError(f"BatchedMountainCar.step expects {self.n} actions, got shape {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() > 2):
            raise RewardLabError("MountainCar actions must be integers in 0..2")
        obs = self.observe()
        moving = obs[:, 0] < GOAL_POS
        pos, vel = mc_step(self.pos, self.vel, actions)
        self.pos = np.where(moving, pos, self.pos)
        self.vel = np.where(moving, vel, self.vel)
        final_obs = self.observe()
        rewards = mc_reward(self.shaping, obs, final_obs, self.params, self.gamma).astype(np.float32)
        self.t += 1
        terminated = np.zeros(self.n, dtype=bool)
        truncated = self.t >= self.max_episode_steps
        done = np.flatnonzero(truncated)
        if done.size:
            self._reset_idx(done)
            nxt = self.observe()
        else:
            nxt = final_obs
        return nxt, rewards, terminated, truncated, final_obs

    def render_images(self) -> list[np.ndarray]:
        """One RGB image per car of its current state."""
        return [render_car(float(p)) for p in self.pos]


def reached_goal_stats(
    env: BatchedMountainCar, act: Callable[[np.ndarray], np.ndarray], n_episodes: int
) -> dict[str, Any]:
    """Run `env` (reset first) until `n_episodes` episodes have finished (the first ones in each car)
    and measure how often the goal (observed position >= 0.5) is reached within the horizon.

    Returns `success_rate`, `mean_steps_to_goal` (over successful episodes; nan if none), per-episode
    `steps_to_goal` (HORIZON + 1 where not reached), `returns` (the env's shaped reward) and
    `base_returns` (the unshaped MountainCar return, -steps to goal).
    """
    if n_episodes < 1:
        raise RewardLabError(f"reached_goal_stats needs n_episodes >= 1, got {n_episodes}")
    n = env.n
    quota = np.full(n, n_episodes // n)
    quota[: n_episodes % n] += 1
    finished = np.zeros(n, dtype=np.int64)
    obs, _ = env.reset()
    ret = np.zeros(n)
    base = np.zeros(n)
    length = np.zeros(n, dtype=np.int64)
    first_goal = np.full(n, HORIZON + 1, dtype=np.int64)
    steps, returns, base_returns = [], [], []
    while sum(len(s) for s in steps) < n_episodes:
        obs_before = obs
        obs, rewards, terminated, truncated, infos = env.step(act(obs))
        final_obs = final_observations(obs, infos)
        ret += rewards
        base += (obs_before[:, 0] >= GOAL_POS) - 1.0
        length += 1
        first_goal = np.where((final_obs[:, 0] >= GOAL_POS) & (first_goal > HORIZON), length, first_goal)
        ended = terminated | truncated
        keep = ended & (finished < quota)
        steps.append(first_goal[keep])
        returns.append(ret[keep])
        base_returns.append(base[keep])
        finished += keep
        ret[ended] = 0.0
        base[ended] = 0.0
        length[ended] = 0
        first_goal[ended] = HORIZON + 1
    steps_a = np.concatenate(steps)
    ok = steps_a <= HORIZON
    return {
        "success_rate": float(ok.mean()),
        "mean_steps_to_goal": float(steps_a[ok].mean()) if ok.any() else float("nan"),
        "steps_to_goal": steps_a,
        "returns": np.concatenate(returns),
        "base_returns": np.concatenate(base_returns),
    }


def register_mountain_cars() -> None:
    """Register every shaped MountainCar with Gymnasium (idempotent)."""
    for s in SHAPINGS:
        eid = mc_env_id(s)
        if eid not in gym.registry:
            gym.register(
                id=eid,
                entry_point="rewardlab.envs.mountain_car:ShapedMountainCarEnv",
                kwargs={"shaping": s},
                max_episode_steps=HORIZON,
            )
