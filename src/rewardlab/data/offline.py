"""Offline datasets in the D4RL layout: observations, actions, rewards, terminals, timeouts (HDF5).

One flat array per key, episodes back to back; an episode ends at a step whose `terminals` or `timeouts` is set.
`write_d4rl` / `read_d4rl` read and write that layout (real D4RL kitchen files included); `data.minari` maps a
local Minari dataset folder onto it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.core.runs import atomic_path
from rewardlab.errors import RewardLabError

KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


@dataclass
class OfflineDataset:
    """Transitions of many episodes, back to back: observations (N, obs_dim) float32, actions (N, act_dim) float32,
    rewards (N,) float32, terminals (N,) bool, timeouts (N,) bool; `meta` is free-form (env, generator, seed...)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.observations = np.asarray(self.observations, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.rewards = np.asarray(self.rewards, dtype=np.float32).reshape(-1)
        self.terminals = np.asarray(self.terminals, dtype=bool).reshape(-1)
        self.timeouts = np.asarray(self.timeouts, dtype=bool).reshape(-1)
        if self.observations.ndim != 2 or self.actions.ndim != 2:
            raise RewardLabError(
                f"observations and actions must be 2-D (steps, dims); got "
                f"{self.observations.shape} and {self.actions.shape}"
            )
        n = len(self.observations)
        lens = {k: len(getattr(self, k)) for k in KEYS}
        if len(set(lens.values())) != 1:
            raise RewardLabError(f"dataset arrays differ in length: {lens}")
        if n == 0:
            raise RewardLabError("the dataset is empty")

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    def episode_bounds(self) -> np.ndarray:
        """(E, 2) start and end (exclusive) of every episode; a trailing unfinished episode counts as one."""
        ends = np.flatnonzero(self.terminals | self.timeouts) + 1
        if len(ends) == 0 or ends[-1] != len(self):
            ends = np.append(ends, len(self))
        starts = np.concatenate([[0], ends[:-1]])
        return np.stack([starts, ends], axis=1)

    def check_dims(self, obs_dim: int, act_dim: int, what: str = "this pipeline") -> "OfflineDataset":
        """Raise a clear error unless observations and actions have the given widths."""
        if self.obs_dim != obs_dim or self.act_dim != act_dim:
            src = self.meta.get("source", "the dataset")  # e.g. "dataset 'x.hdf5'"
            raise RewardLabError(
                f"{src} has {self.obs_dim}-d observations and {self.act_dim}-d actions, but "
                f"{what} needs {obs_dim}-d and {act_dim}-d"
            )
        return self

    @staticmethod
    def concat(parts: list["OfflineDataset"]) -> "OfflineDataset":
        return OfflineDataset(*(np.concatenate([getattr(p, k) for p in parts]) for k in KEYS), meta=dict(parts[0].meta))


def write_d4rl(path: str | os.PathLike, ds: OfflineDataset) -> None:
    """Write `ds` as a D4RL-layout HDF5 file (top-level datasets named as in D4RL), atomically."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for k in KEYS:
                f.create_dataset(k, data=getattr(ds, k), compression="gzip", compression_opts=1)
            f.attrs["rewardlab_meta"] = json.dumps(ds.meta)


def _open_d4rl(path: str | os.PathLike) -> Any:
    """The open HDF5 file of a D4RL-layout dataset, its layout checked (arrays not read)."""
    import h5py

    path = Path(path)
    if path.is_dir():
        raise RewardLabError(f"dataset '{path}' is a directory; give a D4RL-layout HDF5 file")
    if not path.is_file():
        raise RewardLabError(f"dataset '{path}' does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise RewardLabError(f"dataset '{path}' is corrupt or not an HDF5 file; give another file") from None
    missing = [k for k in ("observations", "actions", "rewards", "terminals") if k not in f]
    if missing:
        keys = ", ".join(f.keys()) or "nothing"
        f.close()
        raise RewardLabError(f"'{path}' is not a D4RL-layout dataset: no {', '.join(missing)} (it has: {keys})")
    lengths = {k: f[k].shape[0] if getattr(f[k], "shape", None) else -1 for k in KEYS if k in f}
    if len(set(lengths.values())) != 1:
        f.close()
        raise RewardLabError(f"'{path}' is not a D4RL-layout dataset: its arrays have different lengths {lengths}")
    return f


def check_d4rl(path: str | os.PathLike) -> None:
    """Check a D4RL-layout dataset's layout without reading its arrays."""
    _open_d4rl(path).close()


def read_d4rl(path: str | os.PathLike) -> OfflineDataset:
    """Read a D4RL-layout HDF5 file (ours, or a real D4RL one such as `kitchen_mixed-v0.hdf5`).

    `timeouts` may be absent (older D4RL files); a missing `terminals` or `observations` is an error.
    """
    f = _open_d4rl(path)
    with f:
        try:
            arrays = {k: f[k][()] for k in KEYS if k in f}
        except (OSError, KeyError) as e:
            raise RewardLabError(f"dataset '{path}' is corrupt ({e})") from None
        try:
            meta = json.loads(f.attrs.get("rewardlab_meta", "{}"))
        except json.JSONDecodeError:
            meta = {}
    if "timeouts" not in arrays:
        arrays["timeouts"] = np.zeros(len(arrays["terminals"]), dtype=bool)
    meta["source"] = f"dataset '{path}'"
    return OfflineDataset(**arrays, meta=meta)
