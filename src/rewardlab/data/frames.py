"""Pixel transition datasets (Atari): stacked 84x84 uint8 frames, class-balanced by reward, in chunked, compressed
HDF5 with their metadata.

Layout (`format` attribute `rewardlab.frames/1`; `meta` a JSON attribute: game, engine, variant, policy checkpoint
and its digest, seed, counts, ...)::

    /train, /test:  obs (N, 4, 84, 84) uint8   the stack before the step (s)
                    next_obs (N, 4, 84, 84)     the stack after it (s'): what R(s') sees
                    actions (N,) int64, rewards (N,) float32 (clipped), scores (N,) float32 (the game's points),
                    dones (N,) bool
    /display:       rgb (K, 210, 160, 3) uint8  screens of some test transitions (for figures), index (K,) into test

Half of each split has a nonzero clipped reward and half has none, as in the original's dataset; frames come from
the expert's stochastic policy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rewardlab.core.runs import atomic_path
from rewardlab.errors import RewardLabError

FORMAT = "rewardlab.frames/1"
ARRAYS = ("obs", "next_obs", "actions", "rewards", "scores", "dones")


@dataclass
class Frames:
    """One split of a pixel dataset."""

    obs: np.ndarray
    next_obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    scores: np.ndarray
    dones: np.ndarray

    def __len__(self) -> int:
        return len(self.next_obs)

    @property
    def rewarding(self) -> np.ndarray:
        """Which transitions have a nonzero (clipped) reward."""
        return self.rewards != 0


def write_frames(
    path: str | os.PathLike,
    splits: dict[str, Frames],
    meta: dict[str, Any],
    display: tuple[np.ndarray, np.ndarray] | None = None,
) -> int:
    """Write the splits (and screens for figures) atomically; returns the file's size in bytes."""
    import h5py

    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["meta"] = json.dumps(meta)
            for name, fr in splits.items():
                g = f.create_group(name)
                for k in ARRAYS:
                    a = np.asarray(getattr(fr, k))
                    if a.ndim == 4:
                        g.create_dataset(k, data=a, chunks=(min(64, max(1, len(a))), *a.shape[1:]), compression="lzf")
                    else:
                        g.create_dataset(k, data=a)
            if display is not None:
                g = f.create_group("display")
                g.create_dataset("rgb", data=display[0], compression="lzf")
                g.create_dataset("index", data=display[1])
    return Path(path).stat().st_size


def _open(path: str | os.PathLike):
    import h5py

    path = Path(path)
    if path.is_dir():
        raise RewardLabError(f"dataset '{path}' is a directory; give a pixel dataset file (.h5)")
    if not path.is_file():
        raise RewardLabError(f"dataset '{path}' does not exist; create it with the dataset step")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise RewardLabError(f"dataset '{path}' is corrupt or not an HDF5 file; give another dataset") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise RewardLabError(f"'{path}' is an HDF5 file but not a rewardlab pixel dataset")
    return f


def read_frames_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The dataset's metadata."""
    with _open(path) as f:
        try:
            return json.loads(f.attrs["meta"])
        except (KeyError, json.JSONDecodeError):
            raise RewardLabError(f"dataset '{path}' has corrupt metadata; recreate it") from None


def check_frames(
    path: str | os.PathLike, splits: Sequence[str] = ("train", "test"), expect: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Check a pixel dataset's layout and metadata without reading its arrays; `expect` ({meta key: value}, e.g.
    game and variant) must match. Returns the metadata."""
    meta = read_frames_meta(path)
    for k, v in (expect or {}).items():
        if meta.get(k) != v:
            raise RewardLabError(
                f"dataset '{path}' was made with {k}={meta.get(k)!r}, not {v!r}; create one with {k}={v!r}"
            )
    with _open(path) as f:
        for split in splits:
            if split not in f or not hasattr(f[split], "keys"):
                raise RewardLabError(f"dataset '{path}' has no '{split}' split (it has: {', '.join(f.keys())})")
            g = f[split]
            missing = [k for k in ARRAYS if k not in g]
            if missing:
                raise RewardLabError(f"dataset '{path}' split '{split}' lacks {', '.join(missing)}; recreate it")
            n = {k: g[k].shape[0] for k in ARRAYS}
            if len(set(n.values())) != 1:
                raise RewardLabError(f"dataset '{path}' split '{split}' has arrays of different lengths {n}")
            if g["next_obs"].ndim != 4 or g["next_obs"].dtype != np.uint8:
                raise RewardLabError(f"dataset '{path}' split '{split}' does not hold uint8 frame stacks")
    return meta


def read_frames(path: str | os.PathLike, split: str, expect: dict[str, Any] | None = None) -> Frames:
    """Read one split (its layout and metadata checked first)."""
    check_frames(path, (split,), expect)
    with _open(path) as f:
        g = f[split]
        try:
            return Frames(**{k: g[k][()] for k in ARRAYS})
        except (OSError, KeyError) as e:
            raise RewardLabError(f"dataset '{path}' split '{split}' is corrupt ({e}); recreate it") from None


def read_display(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(screens (K, 210, 160, 3), their indices into the test split); empty when the dataset has none."""
    with _open(path) as f:
        if "display" not in f:
            return np.zeros((0, 210, 160, 3), np.uint8), np.zeros(0, np.int64)
        return f["display"]["rgb"][()], f["display"]["index"][()]


def balanced_frames(
    act: Any,
    env: Any,
    n: int,
    zero_keep: float,
    rng: np.random.Generator,
    max_steps: int,
    screens: int = 0,
    progress: Any = None,
) -> tuple[Frames, np.ndarray, np.ndarray, int]:
    """Run `act` (batched obs -> actions) in the vectorised `env` until n/2 transitions with a nonzero reward and
    n - n/2 without one are kept (each zero-reward transition kept with probability `zero_keep`, to spread them over
    episodes). Returns (frames, screens of the first `screens` kept of each class that did not end an episode,
    their indices, the env steps taken). Refuses with one line when `max_steps` steps do not yield them."""
    want = {True: n // 2, False: n - n // 2}
    kept: dict[bool, list[dict[str, np.ndarray]]] = {True: [], False: []}
    count = {True: 0, False: 0}
    rgb: list[np.ndarray] = []
    rgb_idx: list[tuple[bool, int]] = []
    # screens spread over the collection: kept at evenly spaced positions of each class
    targets = {c: set(np.linspace(0, want[c] - 1, screens).astype(int).tolist()) if screens else set() for c in want}
    obs, _ = env.reset()
    steps = 0
    while count[True] < want[True] or count[False] < want[False]:
        if steps >= max_steps:
            raise RewardLabError(
                f"the expert gave {count[True]} of {want[True]} rewarding and {count[False]} of {want[False]} other "
                f"frames in {steps} steps (dataset.max_steps); train the expert longer or ask for fewer frames"
            )
        actions = act(obs)
        next_obs, rewards, term, trunc, infos = env.step(actions)
        done = term | trunc
        final = next_obs.copy()
        if "_final_obs" in infos:
            for i in np.flatnonzero(infos["_final_obs"]):
                final[i] = infos["final_obs"][i]
        nonzero = rewards != 0
        pick = nonzero | (rng.random(len(rewards)) < zero_keep)
        for cls in (True, False):
            idx = np.flatnonzero(pick & (nonzero == cls))[: want[cls] - count[cls]]
            if len(idx) == 0:
                continue
            kept[cls].append(
                {
                    "obs": obs[idx],
                    "next_obs": final[idx],
                    "actions": np.asarray(actions)[idx],
                    "rewards": rewards[idx].astype(np.float32),
                    "scores": np.asarray(infos.get("score", rewards))[idx].astype(np.float32),
                    "dones": done[idx],
                }
            )
            for pos, j in enumerate(idx):
                if count[cls] + pos in targets[cls] and not done[j] and getattr(env, "rgb", None) is not None:
                    rgb.append(env.rgb[j].copy())
                    rgb_idx.append((cls, count[cls] + pos))
            count[cls] += len(idx)
        obs = next_obs
        steps += env.num_envs
        if progress is not None:
            progress(env.num_envs, count[True])
    parts = {cls: {k: np.concatenate([p[k] for p in kept[cls]]) for k in ARRAYS} for cls in (True, False)}
    frames = Frames(**{k: np.concatenate([parts[True][k], parts[False][k]]) for k in ARRAYS})
    index = np.array([i if cls else want[True] + i for cls, i in rgb_idx], dtype=np.int64)
    screens_arr = np.stack(rgb) if rgb else np.zeros((0, 210, 160, 3), np.uint8)
    return frames, screens_arr, index, steps
