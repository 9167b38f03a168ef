"""Transition datasets (s, s', r, done) in HDF5: uint8 observations, train/test groups, metadata."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rewardlab.core.runs import atomic_path
from rewardlab.errors import RewardLabError

FORMAT = "rewardlab.transitions"
FORMAT_VERSION = 1


_ARRAYS = ("obs", "next_obs", "rewards", "dones")


@dataclass
class Transitions:
    """A batch of transitions (s, a, s', r, done), imitation's order: observations (N, ...), actions (N, ...) (None
    for datasets written before actions were kept), next observations, rewards (N,) float32, dones (N,) bool."""

    obs: np.ndarray
    acts: np.ndarray | None
    next_obs: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.obs)
        if not (len(self.next_obs) == len(self.rewards) == len(self.dones) == n):
            raise RewardLabError("transitions have arrays of different lengths")
        if self.acts is not None and len(self.acts) != n:
            raise RewardLabError("transitions have arrays of different lengths")
        if self.obs.shape != self.next_obs.shape:
            raise RewardLabError(f"obs {self.obs.shape} and next_obs {self.next_obs.shape} differ in shape")

    def __len__(self) -> int:
        return len(self.obs)

    @staticmethod
    def concat(parts: list["Transitions"]) -> "Transitions":
        """Concatenate several batches."""
        acts = None if any(p.acts is None for p in parts) else np.concatenate([p.acts for p in parts])
        obs, next_obs, rewards, dones = (np.concatenate([getattr(p, k) for p in parts]) for k in _ARRAYS)
        return Transitions(obs, acts, next_obs, rewards, dones)

    def take(self, idx: Any) -> "Transitions":
        """The transitions at the given indices or slice."""
        acts = None if self.acts is None else self.acts[idx]
        return Transitions(self.obs[idx], acts, self.next_obs[idx], self.rewards[idx], self.dones[idx])


def write_transitions(
    path: str | os.PathLike,
    splits: dict[str, Transitions],
    meta: dict[str, Any],
    extras: dict[str, dict[str, np.ndarray]] | None = None,
) -> int:
    """Write splits (e.g. train and test) and metadata to an HDF5 file, atomically; `extras` adds per-transition
    arrays to a split (e.g. episode ids, level seeds; read with `read_extras`). Returns the file's size in bytes.

    Callers decide about existing files (see `check_existing`); this function replaces `path` as a whole.
    """
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["meta"] = json.dumps(meta)
            for name, t in splits.items():
                g = f.create_group(name)
                g.create_dataset("obs", data=np.asarray(t.obs, dtype=np.uint8), compression="gzip", compression_opts=1)
                g.create_dataset(
                    "next_obs", data=np.asarray(t.next_obs, dtype=np.uint8), compression="gzip", compression_opts=1
                )
                if t.acts is not None:
                    g.create_dataset("acts", data=np.asarray(t.acts))
                g.create_dataset("rewards", data=np.asarray(t.rewards, dtype=np.float32))
                g.create_dataset("dones", data=np.asarray(t.dones, dtype=bool))
                for key, arr in ((extras or {}).get(name) or {}).items():
                    if len(arr) != len(t) or key in g:
                        raise RewardLabError(f"extra array '{key}' of split '{name}' clashes or has the wrong length")
                    g.create_dataset(key, data=np.asarray(arr))
                g.attrs["count"] = len(t)
    return Path(path).stat().st_size


def _open(path: str | os.PathLike):
    import h5py

    path = Path(path)
    if path.is_dir():
        raise RewardLabError(f"dataset '{path}' is a directory; give an HDF5 transition dataset file")
    if not path.is_file():
        raise RewardLabError(f"dataset '{path}' does not exist; create it with the dataset step")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise RewardLabError(
            f"dataset '{path}' is corrupt or not an HDF5 file; give another dataset, or remake the run's own with the "
            "dataset step and --redo"
        ) from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise RewardLabError(f"'{path}' is an HDF5 file but not a rewardlab transition dataset")
    return f


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a transition dataset (env id, policy checkpoint, seed, counts, ...)."""
    with _open(path) as f:
        try:
            return json.loads(f.attrs["meta"])
        except (KeyError, json.JSONDecodeError):
            raise RewardLabError(f"dataset '{path}' has corrupt metadata; recreate it") from None


def check_transitions(
    path: str | os.PathLike,
    splits: Sequence[str] = ("train", "test"),
    env_id: str | None = None,
    obs_shape: tuple[int, ...] | None = None,
) -> None:
    """Check a transition dataset's layout without reading its arrays: format, environment, splits, shapes."""
    meta = read_meta(path)
    if env_id is not None and meta.get("env_id") != env_id:
        raise RewardLabError(
            f"dataset '{path}' was made on {meta.get('env_id')}, not {env_id}; "
            f"create a dataset on {env_id} or set the env to match"
        )
    with _open(path) as f:
        for split in splits:
            if split not in f or not hasattr(f[split], "keys"):
                raise RewardLabError(f"dataset '{path}' has no '{split}' split (it has: {', '.join(f.keys())})")
            g = f[split]
            missing = [k for k in ("obs", "next_obs", "rewards", "dones") if k not in g]
            if missing:
                raise RewardLabError(f"dataset '{path}' split '{split}' lacks {', '.join(missing)}; recreate it")
            n = {k: g[k].shape[0] if g[k].shape else -1 for k in ("obs", "next_obs", "rewards", "dones")}
            if len(set(n.values())) != 1:
                raise RewardLabError(f"dataset '{path}' split '{split}' has arrays of different lengths {n}")
            if obs_shape is not None and tuple(g["obs"].shape[1:]) != tuple(obs_shape):
                raise RewardLabError(
                    f"dataset '{path}' has observations of shape {g['obs'].shape[1:]}, expected {tuple(obs_shape)}"
                )


def read_extras(path: str | os.PathLike, split: str, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-transition arrays stored beside a split's transitions (`write_transitions(..., extras=)`)."""
    with _open(path) as f:
        if split not in f:
            raise RewardLabError(f"dataset '{path}' has no '{split}' split (it has: {', '.join(f.keys())})")
        missing = [k for k in names if k not in f[split]]
        if missing:
            raise RewardLabError(f"dataset '{path}' split '{split}' lacks {', '.join(missing)}; recreate it")
        return {k: f[split][k][()] for k in names}


def read_transitions(
    path: str | os.PathLike, split: str, env_id: str | None = None, obs_shape: tuple[int, ...] | None = None
) -> Transitions:
    """Read one split, checking it was made on `env_id` and has observations of `obs_shape`."""
    meta = read_meta(path)
    if env_id is not None and meta.get("env_id") != env_id:
        raise RewardLabError(
            f"dataset '{path}' was made on {meta.get('env_id')}, not {env_id}; "
            f"create a dataset on {env_id} or set the env to match"
        )
    with _open(path) as f:
        if split not in f:
            raise RewardLabError(f"dataset '{path}' has no '{split}' split (it has: {', '.join(f.keys())})")
        g = f[split]
        try:
            t = Transitions(
                g["obs"][()],
                g["acts"][()] if "acts" in g else None,  # datasets written before actions were kept have none
                g["next_obs"][()],
                g["rewards"][()].astype(np.float32),
                g["dones"][()].astype(bool),
            )
        except (KeyError, OSError) as e:
            raise RewardLabError(f"dataset '{path}' split '{split}' is corrupt ({e}); recreate it") from None
    if obs_shape is not None and tuple(t.obs.shape[1:]) != tuple(obs_shape):
        raise RewardLabError(f"dataset '{path}' has observations of shape {t.obs.shape[1:]}, expected {obs_shape}")
    return t
