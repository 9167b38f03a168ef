"""Gridworld mazes with the semantics of the mazelab fork used by Michaud, Gleave & Russell (2020).

An 11x11 value grid (0 free, 1 wall, 2 agent, 3 goal) with a border wall and a free 9x9 interior.
The agent is drawn over the goal, so a reached goal is hidden. Actions: 0 north, 1 south, 2 west,
3 east; a move into a wall leaves the agent in place. Reward +1 (and termination, except in the
NonTerminating variant) when the agent stands on a goal after its move, else 0. Each reset draws
exactly two uniform doubles from the environment's own generator: the first picks the goal, the
second the start cell (uniform over free cells; it may coincide with the goal, as in the original).

`MazeEnv` is the Gymnasium environment; `BatchedMaze` steps N of them at once in numpy and gives
the same trajectories as N `MazeEnv`s seeded with the same seeds and fed the same actions.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from rewardlab.envs.vector import SameStepVectorEnv, spawn_seeds
from rewardlab.errors import RewardLabError

FREE, WALL, AGENT, GOAL = 0, 1, 2, 3
SIZE = 11
MOTIONS = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)  # north, south, west, east
ACTION_NAMES = ("north", "south", "west", "east")
CORNERS = ((1, 1), (SIZE - 2, SIZE - 2))
VARIANTS = ("CoinFlipGoal", "FixedGoal", "TwoGoals", "RandomGoal", "NonTerminating")
MAX_STEPS = {"NonTerminating": 50}
DEFAULT_MAX_STEPS = 200
COLORS = np.array([[255, 255, 255], [40, 40, 40], [220, 50, 50], [50, 170, 60]], dtype=np.uint8)


def empty_layout() -> np.ndarray:
    """The 11x11 EmptyMaze-10x10 layout: border walls (1) around a free 9x9 interior (0)."""
    grid = np.zeros((SIZE, SIZE), dtype=np.uint8)
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = WALL
    return grid


LAYOUT = empty_layout()
FREE_CELLS = np.argwhere(LAYOUT == FREE)  # row-major order, shape (81, 2)


def env_id(variant: str) -> str:
    """The registered Gymnasium id of a maze variant."""
    return f"rewardlab/EmptyMaze-10x10-{variant}-v0"


def variant_of(env_id_: str) -> str:
    """The maze variant named by a registered id, or a RewardLabError."""
    for v in VARIANTS:
        if env_id_ in (env_id(v), v):
            return v
    raise RewardLabError(f"unknown maze '{env_id_}'; choose one of {', '.join(env_id(v) for v in VARIANTS)}")


def time_limit(variant: str) -> int:
    """The time limit of a variant (200 steps; 50 for NonTerminating)."""
    return MAX_STEPS.get(variant, DEFAULT_MAX_STEPS)


def _goals_from_draw(variant: str, u: np.ndarray) -> np.ndarray:
    """Goal mask (..., 11, 11) for uniform draws u (...,) in [0, 1)."""
    u = np.asarray(u)
    mask = np.zeros(u.shape + (SIZE, SIZE), dtype=bool)
    flat = mask.reshape(-1, SIZE, SIZE)
    uf = u.reshape(-1)
    idx = np.arange(uf.size)
    if variant in ("CoinFlipGoal", "NonTerminating"):
        pick = (uf >= 0.5).astype(np.int64)
        corners = np.array(CORNERS)
        flat[idx, corners[pick, 0], corners[pick, 1]] = True
    elif variant == "FixedGoal":
        flat[:, CORNERS[1][0], CORNERS[1][1]] = True
    elif variant == "TwoGoals":
        for r, c in CORNERS:
            flat[:, r, c] = True
    elif variant == "RandomGoal":
        cell = FREE_CELLS[np.minimum((uf * len(FREE_CELLS)).astype(np.int64), len(FREE_CELLS) - 1)]
        flat[idx, cell[:, 0], cell[:, 1]] = True
    else:
        raise RewardLabError(f"unknown maze variant '{variant}'; choose one of {', '.join(VARIANTS)}")
    return mask


def _start_from_draw(u: np.ndarray) -> np.ndarray:
    u = np.asarray(u)
    return FREE_CELLS[np.minimum((u * len(FREE_CELLS)).astype(np.int64), len(FREE_CELLS) - 1)]


def draw_grid(agent: np.ndarray, goals: np.ndarray) -> np.ndarray:
    """Value grids (..., 11, 11) uint8 for agent positions (..., 2) and goal masks (..., 11, 11)."""
    goals = np.asarray(goals, dtype=bool)
    agent = np.asarray(agent)
    grid = np.where(goals, np.uint8(GOAL), LAYOUT).astype(np.uint8)
    flat = grid.reshape(-1, SIZE, SIZE)
    a = agent.reshape(-1, 2)
    flat[np.arange(len(a)), a[:, 0], a[:, 1]] = AGENT
    return grid


def render_grid(grid: np.ndarray, cell: int = 16) -> np.ndarray:
    """An RGB image (H, W, 3) uint8 of a value grid (white free, dark walls, red agent, green goal)."""
    return np.repeat(np.repeat(COLORS[np.asarray(grid, dtype=np.int64)], cell, axis=0), cell, axis=1)


GOAL_DRAWS = {
    "CoinFlipGoal": (0.25, 0.75),
    "NonTerminating": (0.25, 0.75),
    "FixedGoal": (0.0,),
    "TwoGoals": (0.0,),
    "RandomGoal": tuple((np.arange(len(FREE_CELLS)) + 0.5) / len(FREE_CELLS)),
}


def maze_states(variant: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every state of a variant, enumerated: (value grids (n, 11, 11) uint8, next-state indices (n, 4) under each
    action, whether the agent stands on a goal (n,)); state g * 81 + i has goal configuration g (those a reset can
    draw) and the agent at free cell i (row-major), the goal under the agent included."""
    if variant not in VARIANTS:
        raise RewardLabError(f"unknown maze variant '{variant}'; choose one of {', '.join(VARIANTS)}")
    goals = _goals_from_draw(variant, np.asarray(GOAL_DRAWS[variant]))
    n_goals, n_cells = len(goals), len(FREE_CELLS)
    cell_of = np.full((SIZE, SIZE), -1, dtype=np.int64)
    cell_of[FREE_CELLS[:, 0], FREE_CELLS[:, 1]] = np.arange(n_cells)
    g, c = np.divmod(np.arange(n_goals * n_cells), n_cells)
    agent = FREE_CELLS[c]
    new = agent[:, None, :] + MOTIONS[None]
    moved = cell_of[new[..., 0], new[..., 1]]
    next_state = g[:, None] * n_cells + np.where(moved >= 0, moved, c[:, None])
    on_goal = goals[g, agent[:, 0], agent[:, 1]]
    return draw_grid(agent, goals[g]), next_state, on_goal


def state_indices(grids: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """The index in `grids` (n, 11, 11) of each observation in `obs` (m, 11, 11), or a RewardLabError naming one
    that is none of them."""
    n = len(grids)
    rows = np.concatenate([grids, obs]).reshape(n + len(obs), -1)
    _, inverse = np.unique(rows, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    lookup = np.full(int(inverse.max()) + 1, -1, dtype=np.int64)
    lookup[inverse[:n]] = np.arange(n)
    idx = lookup[inverse[n:]]
    if (idx < 0).any():
        raise RewardLabError(
            f"observation {int(np.flatnonzero(idx < 0)[0])} is not a state of this maze (another variant's grid?); "
            "use transitions of the maze the states were enumerated for"
        )
    return idx


class MazeEnv(gym.Env):
    """One EmptyMaze-10x10 maze (see the module docstring for the exact semantics)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, variant: str = "CoinFlipGoal", render_mode: str | None = None):
        if variant not in VARIANTS:
            raise RewardLabError(f"unknown maze variant '{variant}'; choose one of {', '.join(VARIANTS)}")
        if render_mode not in (None, "rgb_array"):
            raise RewardLabError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.variant = variant
        self.render_mode = render_mode
        self.terminates = variant != "NonTerminating"
        # the batched maze with N = 1 holds the dynamics; the time limit is the registered TimeLimit's
        self.batch = BatchedMaze(1, variant, seeds=0, max_episode_steps=np.iinfo(np.int64).max)
        self.observation_space = self.batch.single_observation_space
        self.action_space = self.batch.single_action_space
        self._seeded = False

    @property
    def agent(self) -> np.ndarray:
        return self.batch.agent[0]

    @property
    def goals(self) -> np.ndarray:
        return self.batch.goals[0]

    def _obs(self) -> np.ndarray:
        return draw_grid(self.agent, self.goals)

    def _info(self) -> dict[str, Any]:
        return {
            "agent": tuple(int(x) for x in self.agent),
            "goals": tuple(tuple(int(x) for x in g) for g in np.argwhere(self.goals)),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or not self._seeded:  # the batch draws from this env's own generator
            self.batch._rngs = [self.np_random]
            self.batch._refill(0)
            self._seeded = True
        self.batch._reset_idx(np.zeros(1, dtype=np.int64))
        if options:
            if "agent" in options:
                self.batch.agent[0] = np.asarray(options["agent"], dtype=np.int64)
            if "goals" in options:
                self.batch.goals[0] = False
                for r, c in options["goals"]:
                    self.batch.goals[0, r, c] = True
        return self._obs(), self._info()

    def step(self, action: int):
        if not self.action_space.contains(action):
            raise RewardLabError(f"maze action must be an integer in 0..3, got {action!r}")
        _, r, term, _, _ = self.batch._step(np.array([int(action)]), autoreset=False)
        return self._obs(), float(r[0]), bool(term[0]), False, self._info()

    def render(self) -> np.ndarray:
        return render_grid(self._obs())


class BatchedMaze(SameStepVectorEnv):
    """N mazes stepped at once in numpy, with automatic reset of finished mazes.

    Maze i behaves exactly like `MazeEnv` reset with `seeds[i]` and then reset without a seed after
    every episode end. Randomness is pre-drawn in blocks from each maze's own generator (doubles
    consume one generator output each, so block draws equal one-by-one draws).
    """

    render_mode = "rgb_array"

    def __init__(
        self,
        n: int,
        variant: str = "CoinFlipGoal",
        seeds: int | Sequence[int] | None = None,
        max_episode_steps: int | None = None,
        block: int = 64,
    ):
        if n < 1:
            raise RewardLabError(f"BatchedMaze needs at least one maze, got n={n}")
        if variant not in VARIANTS:
            raise RewardLabError(f"unknown maze variant '{variant}'; choose one of {', '.join(VARIANTS)}")
        self._set_spaces(n, spaces.Box(0, GOAL, (SIZE, SIZE), dtype=np.uint8), spaces.Discrete(4))
        self.variant = variant
        self.terminates = variant != "NonTerminating"
        self.max_episode_steps = max_episode_steps or time_limit(variant)
        self._block = block
        self._seed(seeds)
        self.agent = np.zeros((n, 2), dtype=np.int64)
        self.goals = np.zeros((n, SIZE, SIZE), dtype=bool)
        self.t = np.zeros(n, dtype=np.int64)
        self._arange = np.arange(n)
        self._walls = LAYOUT == WALL

    def _seed(self, seeds: int | Sequence[int] | None) -> None:
        self._rngs = [seeding.np_random(s)[0] for s in spawn_seeds(seeds, self.n, "BatchedMaze")]
        self._draws = np.empty((self.n, 2 * self._block))
        self._ptr = np.zeros(self.n, dtype=np.int64)
        for i in range(self.n):
            self._refill(i)

    def _refill(self, i: int) -> None:
        self._draws[i] = self._rngs[i].random(2 * self._block)
        self._ptr[i] = 0

    def _reset_idx(self, idx: np.ndarray) -> None:
        if idx.size == 0:
            return
        empty = idx[self._ptr[idx] >= 2 * self._block]
        for i in empty:
            self._refill(int(i))
        p = self._ptr[idx]
        u0 = self._draws[idx, p]
        u1 = self._draws[idx, p + 1]
        self._ptr[idx] = p + 2
        self.goals[idx] = _goals_from_draw(self.variant, u0)
        self.agent[idx] = _start_from_draw(u1)
        self.t[idx] = 0

    def observe(self) -> np.ndarray:
        """The current observations (n, 11, 11) uint8."""
        return draw_grid(self.agent, self.goals)

    def _reset_all(self) -> np.ndarray:
        """Reset every maze; returns observations (n, 11, 11) uint8."""
        self._reset_idx(self._arange)
        return self.observe()

    def _step(self, actions: np.ndarray, autoreset: bool = True):
        """Step all mazes. Returns (obs, rewards, terminated, truncated, final_obs); without `autoreset` (the single
        maze) finished mazes are left as they are, for their owner to reset.

        `obs` already holds the reset observation of mazes whose episode ended; `final_obs` holds
        the last observation of every maze before any reset (equal to `obs` where nothing ended).
        """
        actions = np.asarray(actions)
        if actions.shape != (self.n,):
            raise RewardLabError(f"BatchedMaze.step expects {self.n} actions, got shape {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() > 3):
            raise RewardLabError("maze actions must be integers in 0..3")
        new = self.agent + MOTIONS[actions.astype(np.int64)]
        valid = ~self._walls[new[:, 0], new[:, 1]]
        self.agent = np.where(valid[:, None], new, self.agent)
        on_goal = self.goals[self._arange, self.agent[:, 0], self.agent[:, 1]]
        rewards = on_goal.astype(np.float32)
        terminated = on_goal if self.terminates else np.zeros(self.n, dtype=bool)
        self.t += 1
        truncated = self.t >= self.max_episode_steps  # as Gymnasium's TimeLimit: also when the goal ends the step
        final_obs = self.observe()
        done = np.flatnonzero(terminated | truncated)
        if done.size and autoreset:
            self._reset_idx(done)
            obs = final_obs.copy()
            obs[done] = draw_grid(self.agent[done], self.goals[done])
        else:
            obs = final_obs
        return obs, rewards, terminated, truncated, final_obs


def register_mazes() -> None:
    """Register every maze variant with Gymnasium (idempotent)."""
    for v in VARIANTS:
        eid = env_id(v)
        if eid not in gym.registry:
            gym.register(
                id=eid,
                entry_point="rewardlab.envs.maze:MazeEnv",
                kwargs={"variant": v},
                max_episode_steps=time_limit(v),
            )
