"""Four-room gridworlds of the DISDAIN / IRRL skill-discovery experiments (docs/originals.md).

Deterministic: 5 actions (noop, up, down, left, right), a move into a wall does nothing, every episode starts in the
top-left free cell (state 0) and lasts a fixed number of steps (20 on `large`, 8 on `small`). States are the free
cells in row-major order. `FourRooms.next_state[s, a]` is the whole dynamics, so a batch of agents steps with one
array lookup; `FourRoomsEnv` is the Gymnasium view of the same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rewardlab.envs.vector import SameStepVectorEnv
from rewardlab.errors import RewardLabError

LAYOUTS = {
    "large": """
#############
#     #     #
#     #     #
#           #
#     #     #
#     #     #
## ####     #
#     ### ###
#     #     #
#     #     #
#           #
#     #     #
#############""",
    "small": """
#######
#  #  #
#     #
## #  #
#  # ##
#  #  #
#     #
#######""",
}
EPISODE_LENGTH = {"large": 20, "small": 8}
NOOP, UP, DOWN, LEFT, RIGHT = range(5)
ACTION_NAMES = ("noop", "up", "down", "left", "right")
_MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])


@dataclass
class FourRooms:
    """A four-room layout: walls, free cells and the transition table."""

    name: str
    walls: np.ndarray = field(repr=False)  # (rows, cols) bool
    cells: np.ndarray = field(repr=False)  # (S, 2) row, col of each state
    next_state: np.ndarray = field(repr=False)  # (S, 5) int64

    @property
    def n_states(self) -> int:
        return len(self.cells)

    @property
    def episode_length(self) -> int:
        return EPISODE_LENGTH.get(self.name, 20)

    def step(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Next states of a batch (any shape) of states and actions."""
        return self.next_state[states, actions]

    def distances(self, start: int = 0) -> np.ndarray:
        """Fewest steps from `start` to every state (breadth-first search)."""
        dist = np.full(self.n_states, -1)
        dist[start] = 0
        frontier = [start]
        while frontier:
            nxt = []
            for s in frontier:
                for s2 in self.next_state[s]:
                    if dist[s2] < 0:
                        dist[s2] = dist[s] + 1
                        nxt.append(int(s2))
            frontier = nxt
        return dist

    def to_grid(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Per-state values laid out on the grid (walls get `fill`)."""
        grid = np.full(self.walls.shape, fill, dtype=float)
        grid[self.cells[:, 0], self.cells[:, 1]] = values
        return grid


def four_rooms(name: str = "large") -> FourRooms:
    """The `large` (13x13, 104 cells) or `small` (8x7, 24 cells) four-room layout."""
    if name not in LAYOUTS:
        raise RewardLabError(f"unknown grid '{name}'; choose one of {', '.join(LAYOUTS)}")
    walls = np.array([[c == "#" for c in line] for line in LAYOUTS[name].strip("\n").split("\n")])
    cells = np.argwhere(~walls)
    index = -np.ones(walls.shape, dtype=np.int64)
    index[cells[:, 0], cells[:, 1]] = np.arange(len(cells))
    target = cells[:, None, :] + _MOVES[None, :, :]  # (S, 5, 2)
    r = np.clip(target[..., 0], 0, walls.shape[0] - 1)
    c = np.clip(target[..., 1], 0, walls.shape[1] - 1)
    nxt = np.where(index[r, c] >= 0, index[r, c], np.arange(len(cells))[:, None])
    return FourRooms(name, walls, cells, nxt.astype(np.int64))


class BatchedFourRooms(SameStepVectorEnv):
    """N walkers on the four-room grid as a VectorEnv (same-step autoreset): observation = state index, reward 0
    (skills bring their own), every episode starts in the top-left cell and is truncated after T steps."""

    def __init__(self, n: int, grid: str = "large", episode_length: int | None = None):
        self.world = four_rooms(grid)
        self.T = episode_length or self.world.episode_length
        self._set_spaces(n, gym.spaces.Discrete(self.world.n_states), gym.spaces.Discrete(5))
        self.state = np.zeros(n, dtype=np.int64)
        self.t = np.zeros(n, dtype=np.int64)

    def _seed(self, seeds: Any) -> None:
        pass  # deterministic: every episode starts in the same cell

    def _reset_all(self) -> np.ndarray:
        self.state[:], self.t[:] = 0, 0
        return self.state.copy()

    def _step(self, actions: np.ndarray):
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (self.num_envs,) or actions.min() < 0 or actions.max() > 4:
            raise RewardLabError(f"four-room actions must be {self.num_envs} integers in 0..4, got {actions!r}")
        self.state = self.world.next_state[self.state, actions]
        self.t += 1
        final = self.state.copy()
        truncated = self.t >= self.T
        self.state[truncated], self.t[truncated] = 0, 0
        return self.state.copy(), np.zeros(self.num_envs, np.float32), np.zeros(self.num_envs, bool), truncated, final


class FourRoomsEnv(gym.Env):
    """The Gymnasium env: one walker, the batched env with N = 1 (the dynamics live once)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, grid: str = "large", episode_length: int | None = None, render_mode: str | None = None):
        self.batch = BatchedFourRooms(1, grid, episode_length)
        self.world, self.T = self.batch.world, self.batch.T
        self.observation_space = self.batch.single_observation_space
        self.action_space = self.batch.single_action_space
        self.render_mode = render_mode
        self._s = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._s = int(self.batch.reset(seed=seed)[0][0])
        return self._s, {}

    def step(self, action):
        if not self.action_space.contains(int(action)):
            raise RewardLabError(f"action must be in 0..4, got {action}")
        _, r, term, trunc, final = self.batch._step(np.array([int(action)]))
        self._s = int(final[0])  # the step's own observation (the batch has already started the next episode)
        return self._s, float(r[0]), bool(term[0]), bool(trunc[0]), {}

    def render(self) -> np.ndarray:
        img = np.where(self.world.walls, 0, 255).astype(np.uint8)
        img = np.repeat(img[..., None], 3, axis=2)
        r, c = self.world.cells[self._s]
        img[r, c] = (220, 30, 30)
        return np.kron(img, np.ones((16, 16, 1), dtype=np.uint8))


def register() -> None:
    """Register `rewardlab/FourRooms-large-v0` and `rewardlab/FourRooms-small-v0`."""
    for name in LAYOUTS:
        env_id = f"rewardlab/FourRooms-{name}-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=FourRoomsEnv, kwargs={"grid": name})
