"""Mini-kitchen: a fast numpy stand-in for D4RL's FrankaKitchen that keeps what makes Kitchen hard.

An end effector moves in the unit cube (action: a 3-d velocity in [-1, 1], times `speed` per step). Seven
articulated objects, named as Kitchen's, are sliders or hinges with one degree of freedom q in [0, 1] (0 closed,
1 open); each is opened by pushing its handle: while the effector is within `contact_radius` of the handle, the
handle follows the component of the effector's motion along the handle's path in the opening direction (pushes
open; moving away never drags an object shut, so a completed subtask stays complete, as the targets are all
openings or switch-ons).

The task, as in Kitchen's mixed/partial tasks: four target subtasks (microwave, kettle, bottom burner, light
switch by default), in any order. A subtask completes when its object comes within `threshold` (0.3, Kitchen's
value) of its goal q = 1; it then pays +1 once and is removed. The episode terminates when all targets are
complete and is truncated at 280 steps.

Observation, laid out like Kitchen's (robot state, object states, task-goal vector): effector position (3), object
positions q (7), and the constant goal vector (7: 1 for a target object, 0 otherwise), 17 numbers in all.

`BatchedMiniKitchen` steps N kitchens at once (the hot path of data generation and RL); `MiniKitchenEnv` is the
Gymnasium environment (`rewardlab/MiniKitchen-v0`), a batch of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from rewardlab.envs.vector import SameStepVectorEnv
from rewardlab.errors import RewardLabError

OBJECTS = ("bottom burner", "top burner", "light switch", "slide cabinet", "hinge cabinet", "microwave", "kettle")
TARGET_TASKS = ("microwave", "kettle", "bottom burner", "light switch")
N_OBJ = len(OBJECTS)
AGENT_DIM = 3
OBS_DIM = AGENT_DIM + 2 * N_OBJ  # 17
ACT_DIM = 3
GOAL_IDX = tuple(range(AGENT_DIM + N_OBJ))  # effector and every object: task-agnostic goal features (10)
MAX_STEPS = 280
THRESHOLD = 0.3
START = np.array([0.5, 0.15, 0.5])


def _unit(v: Sequence[float]) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# Geometry of each object's handle path h(q), q in [0, 1]:
#   slider: h(q) = a + q * d
#   hinge:  h(q) = pivot + r (cos(th) e1 + sin(th) e2), th = q * sweep   (handle at pivot + r e1 when closed)
# x runs left to right, y from the front (the effector's side) to the back, z upwards.
_GEOMETRY: dict[str, dict[str, Any]] = {
    "bottom burner": dict(kind="hinge", pivot=(0.62, 0.25, 0.2), r=0.1, e1=(0, 0, 1), e2=(1, 0, 0), sweep=np.pi / 2),
    "top burner": dict(kind="hinge", pivot=(0.85, 0.25, 0.2), r=0.1, e1=(0, 0, 1), e2=(1, 0, 0), sweep=np.pi / 2),
    "light switch": dict(kind="slider", a=(0.6, 0.35, 0.5), d=(0.2, 0.0, 0.0)),
    "slide cabinet": dict(kind="slider", a=(0.55, 0.6, 0.85), d=(0.3, 0.0, 0.0)),
    "hinge cabinet": dict(kind="hinge", pivot=(0.05, 0.5, 0.85), r=0.25, e1=(1, 0, 0), e2=(0, -1, 0), sweep=np.pi / 2),
    "microwave": dict(kind="hinge", pivot=(0.1, 0.75, 0.35), r=0.25, e1=(1, 0, 0), e2=(0, -1, 0), sweep=np.pi / 2),
    "kettle": dict(kind="slider", a=(0.42, 0.5, 0.3), d=(0.0, 0.3, 0.1)),
}


def _geometry_arrays() -> dict[str, np.ndarray]:
    """Per-object arrays so that handle positions and tangents of a whole batch are two broadcasts."""
    hinge = np.zeros(N_OBJ, dtype=bool)
    base = np.zeros((N_OBJ, 3))  # slider start a / hinge pivot
    d = np.zeros((N_OBJ, 3))  # slider direction
    e1 = np.zeros((N_OBJ, 3))
    e2 = np.zeros((N_OBJ, 3))
    r = np.zeros(N_OBJ)
    sweep = np.zeros(N_OBJ)
    for j, name in enumerate(OBJECTS):
        g = _GEOMETRY[name]
        if g["kind"] == "slider":
            base[j], d[j] = g["a"], g["d"]
        else:
            hinge[j] = True
            base[j], r[j], sweep[j] = g["pivot"], g["r"], g["sweep"]
            e1[j], e2[j] = _unit(g["e1"]), _unit(g["e2"])
    return dict(hinge=hinge, base=base, d=d, e1=e1, e2=e2, r=r, sweep=sweep)


GEOM = _geometry_arrays()


def handles(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Handle positions h(q) and path tangents dh/dq, each (..., 7, 3), for object states q (..., 7)."""
    g = GEOM
    q = np.asarray(q, dtype=np.float64)[..., None]
    th = q * g["sweep"][:, None]
    cos, sin = np.cos(th), np.sin(th)
    rr = g["r"][:, None]
    hinge_pos = g["base"] + rr * (cos * g["e1"] + sin * g["e2"])
    hinge_tan = rr * g["sweep"][:, None] * (-sin * g["e1"] + cos * g["e2"])
    slide_pos = g["base"] + q * g["d"]
    slide_tan = np.broadcast_to(g["d"], slide_pos.shape)
    h = g["hinge"][:, None]
    return np.where(h, hinge_pos, slide_pos), np.where(h, hinge_tan, slide_tan)


def object_index(names: Sequence[str]) -> np.ndarray:
    """Indices into OBJECTS of subtask names, with a clear error for an unknown one."""
    out = []
    for n in names:
        if n not in OBJECTS:
            raise RewardLabError(f"unknown subtask '{n}'; choose from {', '.join(OBJECTS)}")
        out.append(OBJECTS.index(n))
    if len(set(out)) != len(out):
        raise RewardLabError(f"subtasks repeat: {list(names)}")
    return np.array(out, dtype=np.int64)


@dataclass
class KitchenSpec:
    """Physical and task settings of a mini-kitchen."""

    tasks: tuple[str, ...] = TARGET_TASKS
    speed: float = 0.04  # effector displacement per step at |action| = 1
    contact_radius: float = 0.05  # the effector pushes a handle within this distance
    threshold: float = THRESHOLD  # a subtask completes when |q - 1| < threshold
    max_steps: int = MAX_STEPS
    start_noise: float = 0.05  # uniform noise on the effector's start position (per axis)

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        if not self.tasks:
            raise RewardLabError("tasks is empty; give at least one subtask")
        object_index(self.tasks)
        for k, lo, hi in (
            ("speed", 1e-4, 0.5),
            ("contact_radius", 1e-3, 0.3),
            ("threshold", 0.0, 1.0),
            ("start_noise", 0.0, 0.3),
        ):
            if not lo <= getattr(self, k) <= hi:
                raise RewardLabError(f"{k} must be in [{lo}, {hi}], got {getattr(self, k)}")
        if self.max_steps < 1:
            raise RewardLabError(f"max_steps must be >= 1, got {self.max_steps}")

    @property
    def task_index(self) -> np.ndarray:
        return object_index(self.tasks)

    @property
    def goal_vector(self) -> np.ndarray:
        g = np.zeros(N_OBJ, dtype=np.float32)
        g[self.task_index] = 1.0
        return g


class BatchedMiniKitchen:
    """N mini-kitchens stepped together. No auto-reset: `step` reports terminated / truncated and the caller resets
    the finished ones with `reset(mask)`; an `active` mask freezes kitchens that must not move."""

    def __init__(self, n: int, spec: KitchenSpec | None = None, seed: int | None = None):
        if n < 1:
            raise RewardLabError(f"number of kitchens must be >= 1, got {n}")
        self.n = n
        self.spec = spec or KitchenSpec()
        self.rng = np.random.default_rng(seed)
        self._tasks = self.spec.task_index
        self._goal = self.spec.goal_vector
        self.pos = np.zeros((n, 3))
        self.q = np.zeros((n, N_OBJ))
        self.remaining = np.zeros((n, len(self._tasks)), dtype=bool)  # target subtasks not yet completed
        self.t = np.zeros(n, dtype=np.int64)
        self.returns = np.zeros(n)
        self.reset()

    def obs(self) -> np.ndarray:
        goal = np.broadcast_to(self._goal, (self.n, N_OBJ))
        return np.concatenate([self.pos, self.q, goal], axis=1).astype(np.float32)

    def reset(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Reset all kitchens (or those where `mask`); returns the observations of all."""
        m = np.ones(self.n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        k = int(m.sum())
        noise = self.rng.uniform(-self.spec.start_noise, self.spec.start_noise, (k, 3))
        self.pos[m] = START + noise
        self.q[m] = 0.0
        self.remaining[m] = True
        self.t[m] = 0
        self.returns[m] = 0.0
        return self.obs()

    def completed(self) -> np.ndarray:
        """Target subtasks completed so far in each kitchen's episode, (N,)."""
        return (~self.remaining).sum(axis=1)

    def step(
        self, actions: np.ndarray, active: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every (active) kitchen one step. Returns obs (N, 17), reward (N,), terminated, truncated."""
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (self.n, ACT_DIM):
            raise RewardLabError(f"actions must have shape ({self.n}, {ACT_DIM}), got {a.shape}")
        a = np.clip(np.nan_to_num(a), -1.0, 1.0)
        if active is not None:
            a = a * np.asarray(active, dtype=bool)[:, None]
        spec = self.spec
        old = self.pos
        new = np.clip(old + spec.speed * a, 0.0, 1.0)
        delta = new - old
        h, tan = handles(self.q)  # (N, 7, 3)
        contact = np.linalg.norm(h - old[:, None, :], axis=2) < spec.contact_radius
        dq = np.einsum("nd,njd->nj", delta, tan) / np.einsum("njd,njd->nj", tan, tan)
        self.q = np.minimum(self.q + np.where(contact, np.maximum(dq, 0.0), 0.0), 1.0)
        self.pos = new
        done_now = self.remaining & (np.abs(1.0 - self.q[:, self._tasks]) < spec.threshold)
        reward = done_now.sum(axis=1).astype(np.float64)
        self.remaining &= ~done_now
        step = np.ones(self.n, dtype=np.int64) if active is None else np.asarray(active, dtype=np.int64)
        self.t += step
        self.returns += reward
        terminated = ~self.remaining.any(axis=1)
        truncated = (self.t >= spec.max_steps) & ~terminated
        return self.obs(), reward, terminated, truncated


class VectorMiniKitchen(SameStepVectorEnv):
    """N mini-kitchens as a Gymnasium VectorEnv with same-step autoreset (what the SB3 adapter and flat SAC take); it
    records the subtasks completed in every finished episode. `BatchedMiniKitchen` underneath also steps a subset
    of kitchens and holds the others (`step(actions, active)`), which the hierarchy's k-step options need."""

    def __init__(self, n: int, spec: KitchenSpec, seed: int):
        self._set_spaces(
            n,
            gym.spaces.Box(0.0, 1.0, (OBS_DIM,), dtype=np.float32),
            gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), dtype=np.float32),
        )
        self.kitchen_spec, self.episode_subtasks = spec, []
        self._seed(seed)

    def _seed(self, seed: Any) -> None:
        self.env = BatchedMiniKitchen(self.num_envs, self.kitchen_spec, seed=seed)

    def _reset_all(self) -> np.ndarray:
        return self.env.reset()

    def _step(self, actions: np.ndarray):
        obs, r, term, trunc = self.env.step(actions)
        done = term | trunc
        final = obs.copy()
        if done.any():
            self.episode_subtasks.extend(self.env.completed()[done].tolist())
            obs = self.env.reset(done)
        return obs, r, term, trunc, final


class MiniKitchenEnv(gym.Env):
    """Gymnasium mini-kitchen (a batch of one). `info["completed_tasks"]` lists the target subtasks done so far."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        tasks: Sequence[str] = TARGET_TASKS,
        max_steps: int = MAX_STEPS,
        render_mode: str | None = None,
        **spec: Any,
    ):
        self.spec_ = KitchenSpec(tasks=tuple(tasks), max_steps=max_steps, **spec)
        self.kitchen = BatchedMiniKitchen(1, self.spec_)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (OBS_DIM,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), dtype=np.float32)
        self.render_mode = render_mode

    def _info(self) -> dict[str, Any]:
        done = ~self.kitchen.remaining[0]
        return {"completed_tasks": [t for t, d in zip(self.spec_.tasks, done) if d]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.kitchen.rng = np.random.default_rng(seed)
        return self.kitchen.reset()[0], self._info()

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(1, -1)
        if a.shape != (1, ACT_DIM):
            raise RewardLabError(f"action must have {ACT_DIM} numbers, got shape {np.shape(action)}")
        obs, r, term, trunc = self.kitchen.step(a)
        return obs[0], float(r[0]), bool(term[0]), bool(trunc[0]), self._info()

    def render(self) -> np.ndarray:
        return render_frame(self.kitchen.pos[0], self.kitchen.q[0], self.spec_)


def render_frame(pos: np.ndarray, q: np.ndarray, spec: KitchenSpec, size: int = 240) -> np.ndarray:
    """A front view (x right, z up) and a top view (x right, y back) side by side, as an RGB array."""
    img = np.full((size, 2 * size, 3), 255, dtype=np.uint8)
    h, _ = handles(q)
    targets = set(spec.task_index.tolist())

    def dot(view: int, p: np.ndarray, color: tuple[int, int, int], rad: int) -> None:
        u = p[0]
        v = p[2] if view == 0 else p[1]
        cx, cy = int(view * size + u * (size - 1)), int((1 - v) * (size - 1))
        img[max(cy - rad, 0) : cy + rad + 1, max(cx - rad, 0) : cx + rad + 1] = color

    for view in (0, 1):
        img[:, view * size] = 0
        for j in range(N_OBJ):
            done = abs(1 - q[j]) < spec.threshold
            color = (50, 170, 60) if done else ((230, 140, 30) if j in targets else (150, 150, 150))
            dot(view, h[j], color, 4)
        dot(view, pos, (220, 40, 40), 3)
    return img


def register() -> None:
    """Register `rewardlab/MiniKitchen-v0`."""
    if "rewardlab/MiniKitchen-v0" not in gym.registry:
        gym.register("rewardlab/MiniKitchen-v0", entry_point=MiniKitchenEnv)
