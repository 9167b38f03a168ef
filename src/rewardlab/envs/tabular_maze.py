"""Tabular maze MDPs of Jenner & Gleave (2022) ("Preprocessing Reward Functions for Interpretability").

An open size x size grid (no walls; moves off the grid leave the agent in place) with 5 actions
(0 stay, 1 (-1,0), 2 (0,+1), 3 (+1,0), 4 (0,-1) as (row, col) deltas, the original's order). States are
`size*row + col`, plus `size**2` once the agent holds the key (key mazes: key at (1,1)). The goal is at
(size-2, size-2). Episodes never terminate: they end at the time limit (8 / 20 / 20 / 30 steps for
EmptyMaze4 / EmptyMaze10 / KeyMaze6 / KeyMaze10). Rewards are tables R[s, s'] (see `reward_table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rewardlab.errors import RewardLabError

DELTAS = np.array([[0, 0], [-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int64)
ACTION_NAMES = ("stay", "row-1", "col+1", "row+1", "col-1")
GAMMA = 0.99
REWARD_KINDS = ("goal", "path")
SHAPINGS = ("unshaped", "dense", "antidense", "random")


@dataclass(frozen=True)
class MazeSpec:
    """A tabular maze: grid size, whether it has a key, time limit."""

    name: str
    size: int
    key: bool
    time_limit: int

    @property
    def n_cells(self) -> int:
        return self.size * self.size

    @property
    def n_states(self) -> int:
        return self.n_cells * (2 if self.key else 1)

    @property
    def goal_cell(self) -> int:
        return self.size * (self.size - 2) + (self.size - 2)

    @property
    def key_cell(self) -> int:
        return self.size * 1 + 1

    def cell(self, state: np.ndarray | int) -> np.ndarray:
        """Grid cell index of a state (drops the key bit)."""
        return np.asarray(state) % self.n_cells

    def has_key(self, state: np.ndarray | int) -> np.ndarray:
        return np.asarray(state) >= self.n_cells

    @cached_property
    def next_state(self) -> np.ndarray:
        """Deterministic transition table (n_states, 5) -> next state."""
        s = np.arange(self.n_states)
        cell, key = s % self.n_cells, s >= self.n_cells
        rc = np.stack([cell // self.size, cell % self.size], 1)
        nxt = rc[:, None, :] + DELTAS[None]
        valid = ((nxt >= 0) & (nxt < self.size)).all(-1)
        nxt = np.where(valid[..., None], nxt, rc[:, None, :])
        ncell = nxt[..., 0] * self.size + nxt[..., 1]
        nkey = key[:, None] | (self.key & (ncell == self.key_cell))
        return ncell + self.n_cells * nkey.astype(np.int64)

    @cached_property
    def valid_action(self) -> np.ndarray:
        """(n_states, 5) bool: the move stays on the grid (stay is always valid)."""
        s = np.arange(self.n_states)
        cell = s % self.n_cells
        rc = np.stack([cell // self.size, cell % self.size], 1)
        nxt = rc[:, None, :] + DELTAS[None]
        return ((nxt >= 0) & (nxt < self.size)).all(-1)

    def all_transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (state, action) pair, invalid moves included (they stay in place): (s, a, s') index arrays."""
        s = np.repeat(np.arange(self.n_states), 5)
        a = np.tile(np.arange(5), self.n_states)
        return s, a, self.next_state[s, a]

    @cached_property
    def start_states(self) -> np.ndarray:
        """Cells a fresh episode may start in: all but the goal and (key mazes) the key, without the key."""
        cells = np.arange(self.n_cells)
        ok = cells != self.goal_cell
        if self.key:
            ok &= cells != self.key_cell
        return cells[ok]


MAZES = {
    "EmptyMaze4": MazeSpec("EmptyMaze4", 4, False, 8),
    "EmptyMaze10": MazeSpec("EmptyMaze10", 10, False, 20),
    "KeyMaze6": MazeSpec("KeyMaze6", 6, True, 20),
    "KeyMaze10": MazeSpec("KeyMaze10", 10, True, 30),
}


def maze_spec(name: str) -> MazeSpec:
    """The tabular maze called `name` (EmptyMaze4, EmptyMaze10, KeyMaze6, KeyMaze10, or its registered id)."""
    key = name.removeprefix("rewardlab/").removesuffix("-v0")
    if key not in MAZES:
        raise RewardLabError(f"unknown tabular maze '{name}'; choose one of {', '.join(MAZES)}")
    return MAZES[key]


def potential(spec: MazeSpec, shaping: str, seed: int = 0) -> np.ndarray:
    """The shaping potential per cell (n_cells,): 0, -Manhattan distance to the goal, +distance, or U[-1,1]."""
    cells = np.arange(spec.n_cells)
    r, c = cells // spec.size, cells % spec.size
    g = spec.goal_cell
    dist = np.abs(r - g // spec.size) + np.abs(c - g % spec.size)
    if shaping == "unshaped":
        return np.zeros(spec.n_cells)
    if shaping == "dense":
        return -dist.astype(float)
    if shaping == "antidense":
        return dist.astype(float)
    if shaping == "random":
        return np.random.default_rng(seed).uniform(-1, 1, spec.n_cells)
    raise RewardLabError(f"unknown shaping '{shaping}'; choose one of {', '.join(SHAPINGS)}")


def reward_table(
    spec: MazeSpec, kind: str, shaping: str, gamma: float = GAMMA, legacy_shaping: bool = False, seed: int = 0
) -> np.ndarray:
    """R[s, s'] (n_states, n_states) float64 for a base reward `kind` (goal or path) and a `shaping`.

    Base: `goal` is 0 everywhere; `path` is -0.4 on every row except the staircase cells (i,i) and (i,i+1);
    then the goal rule R[goal, :] = 1 (key mazes: the has-key goal row only). Shaping adds
    gamma*Phi(s') - Phi(s) to every entry, exact potential shaping of the base reward.

    `legacy_shaping=True` copies the original code: the goal rule is applied *after* shaping (overwriting the
    goal row's shaping), and antidense/random add (gamma - 1) * Phi(s) to rows only, which is a state
    offset, not potential shaping.
    """
    if kind not in REWARD_KINDS:
        raise RewardLabError(f"unknown reward '{kind}'; choose one of {', '.join(REWARD_KINDS)}")
    n = spec.n_cells
    base = np.zeros((n, n))
    if kind == "path":
        stair = np.zeros(n, dtype=bool)
        for i in range(spec.size):
            stair[spec.size * i + i] = True
            if i + 1 < spec.size:
                stair[spec.size * i + i + 1] = True
        base[~stair, :] = -0.4
    phi = potential(spec, shaping, seed)
    if spec.key:
        base = np.tile(base, (2, 2))
        phi = np.tile(phi, 2)
    goal_rows = [spec.goal_cell + (n if spec.key else 0)]
    if not legacy_shaping:
        for g in goal_rows:
            base[g, :] = 1.0
        return base + gamma * phi[None, :] - phi[:, None]
    table = base.copy()
    if shaping in ("antidense", "random"):
        table += (gamma - 1.0) * phi[:, None]
    else:
        table += gamma * phi[None, :] - phi[:, None]
    for g in goal_rows:
        table[g, :] = 1.0
    return table


def reward_potential(spec: MazeSpec, shaping: str, seed: int = 0) -> np.ndarray:
    """The potential per state (n_states,) used by `reward_table` for `shaping` (tiled over the key bit)."""
    phi = potential(spec, shaping, seed)
    return np.tile(phi, 2) if spec.key else phi


class TabularMazeEnv(gym.Env):
    """A tabular maze as a Gymnasium env: Discrete observations, 5 actions, reward from a table R[s, s']."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        maze: str = "EmptyMaze10",
        reward: str = "goal",
        shaping: str = "unshaped",
        legacy_shaping: bool = False,
        gamma: float = GAMMA,
    ):
        self.spec_ = maze_spec(maze)
        self.table = reward_table(self.spec_, reward, shaping, gamma, legacy_shaping)
        self.observation_space = spaces.Discrete(self.spec_.n_states)
        self.action_space = spaces.Discrete(5)
        self.state = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        starts = self.spec_.start_states
        self.state = int(starts[int(self.np_random.random() * len(starts))])
        if options and "state" in options:
            self.state = int(options["state"])
        return self.state, {}

    def step(self, action: int):
        if not self.action_space.contains(action):
            raise RewardLabError(f"tabular maze action must be an integer in 0..4, got {action!r}")
        nxt = int(self.spec_.next_state[self.state, int(action)])
        r = float(self.table[self.state, nxt])
        self.state = nxt
        return nxt, r, False, False, {}


def register_tabular_mazes() -> None:
    """Register rewardlab/{EmptyMaze4,EmptyMaze10,KeyMaze6,KeyMaze10}-v0 (idempotent)."""
    for name, spec in MAZES.items():
        eid = f"rewardlab/{name}-v0"
        if eid not in gym.registry:
            gym.register(
                id=eid,
                entry_point="rewardlab.envs.tabular_maze:TabularMazeEnv",
                kwargs={"maze": name},
                max_episode_steps=spec.time_limit,
            )
