"""Read a local Minari dataset (hdf5 storage, Minari 0.5.x layout) into the D4RL layout of `data.offline`.

No download and no `minari` package needed: the files are read with h5py. Layout (as written by Minari 0.5.4)::

    <dataset_dir>/data/metadata.json     total_episodes, total_steps, data_format ("hdf5"), observation_space,
                                         action_space (serialised spaces, JSON strings), env_spec (JSON string),
                                         dataset_id, minari_version, ...
    <dataset_dir>/data/main_data.hdf5    groups episode_0, episode_1, ... (attrs id, total_steps, seed), each with
        observations   T+1 rows; a group for Dict spaces (FrankaKitchen-v1: observation (T+1, 59),
                       achieved_goal/<task>, desired_goal/<task>)
        actions        T rows
        rewards, terminations, truncations   T each
        infos          optional group (ignored here)

Mapping: observations[t] pairs with actions[t], so each episode's final observation is dropped; terminals =
terminations, timeouts = truncations, and the last step of an episode that has neither gets timeouts = True, so
`OfflineDataset.episode_bounds` recovers the episodes. Dict observations use their `observation` key; FrankaKitchen
ones (59-d) are converted by `d4rl_obs_from_v1` to the 60-d D4RL Kitchen layout.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.data.offline import OfflineDataset
from rewardlab.envs.franka_kitchen import (
    KITCHEN_TARGET_TASKS,
    KITCHEN_TASKS,
    KITCHEN_V1_OBS_DIM,
    check_kitchen_tasks,
    d4rl_obs_from_v1,
)
from rewardlab.errors import RewardLabError

MAIN_FILE = "main_data.hdf5"
METADATA_FILE = "metadata.json"
MINARI_FORMAT_VERSION = "0.5.4"  # the Minari release whose on-disk layout `write_minari` reproduces
_EPISODE_RE = re.compile(r"episode_(\d+)")


def _locate(path: Path) -> tuple[Path, Path]:
    """(data dir, hdf5 file) for a dataset folder, its data/ subfolder or the hdf5 file itself."""
    if not path.exists():
        raise RewardLabError(f"Minari dataset '{path}' does not exist")
    if path.is_file():
        return path.parent, path
    data_dir = path / "data" if (path / "data").is_dir() else path
    meta = _read_metadata(data_dir)
    fmt = meta.get("data_format", "hdf5")
    if fmt != "hdf5":
        raise RewardLabError(
            f"Minari dataset '{path}' is stored as '{fmt}'; only the hdf5 format is supported "
            f"(re-create it with data_format='hdf5')"
        )
    hdf5 = data_dir / MAIN_FILE
    if not hdf5.is_file():
        raise RewardLabError(f"'{path}' is not a Minari dataset folder: no data/{MAIN_FILE} in it")
    return data_dir, hdf5


def _read_metadata(data_dir: Path) -> dict[str, Any]:
    f = data_dir / METADATA_FILE
    if not f.is_file():
        return {}
    try:
        meta = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RewardLabError(f"Minari metadata '{f}' is corrupt (not JSON)") from None
    if not isinstance(meta, dict):
        raise RewardLabError(f"Minari metadata '{f}' is corrupt (not a JSON object)")
    return meta


def _env_spec(meta: dict[str, Any]) -> dict[str, Any]:
    spec = meta.get("env_spec")
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError:
            return {}
    return spec if isinstance(spec, dict) else {}


def _numeric(ds: Any, what: str) -> np.ndarray:
    import h5py

    if not isinstance(ds, h5py.Dataset):
        raise RewardLabError(f"{what} is a group (a Dict/Tuple space), which is not supported")
    arr = ds[()]
    if arr.dtype.kind not in "fiub":
        raise RewardLabError(f"{what} has dtype {arr.dtype} (e.g. JPEG-encoded images), which is not supported")
    return arr


def read_minari(
    path: str | os.PathLike, *, kitchen: bool | None = None, kitchen_tasks: Sequence[str] | None = None
) -> OfflineDataset:
    """Read a local Minari hdf5 dataset (folder, its `data/` subfolder or `main_data.hdf5`) as an `OfflineDataset`.

    `kitchen`: convert 59-d FrankaKitchen-v1 observations to the 60-d D4RL layout (default: when the env id is
    FrankaKitchen or the observations carry a Kitchen `desired_goal`, and are 59-d). `kitchen_tasks`: the tasks
    whose goals fill the constant goal part (default: the dataset's `desired_goal` keys, else its env_spec
    `tasks_to_complete`, else microwave, kettle, bottom burner, light switch).
    """
    import h5py

    path = Path(path)
    data_dir, hdf5 = _locate(path)
    meta = _read_metadata(data_dir)
    spec = _env_spec(meta)
    env_id = spec.get("id")
    try:
        f = h5py.File(hdf5, "r")
    except OSError:
        raise RewardLabError(f"Minari data '{hdf5}' is corrupt or not an HDF5 file") from None
    obs_l, act_l, rew_l, term_l, trunc_l = [], [], [], [], []
    goal_keys: list[str] | None = None
    with f:
        eps = sorted(
            (int(m.group(1)), k) for k in f.keys() if (m := _EPISODE_RE.fullmatch(k)) and isinstance(f[k], h5py.Group)
        )
        if not eps:
            raise RewardLabError(f"'{hdf5}' holds no episodes (no episode_<i> groups): not a Minari dataset file")
        try:
            for _, name in eps:
                g = f[name]
                where = f"{name} of '{hdf5}'"
                missing = [
                    k for k in ("observations", "actions", "rewards", "terminations", "truncations") if k not in g
                ]
                if missing:
                    raise RewardLabError(f"{where} has no {', '.join(missing)}: not a Minari episode")
                o = g["observations"]
                if isinstance(o, h5py.Group):
                    if "observation" not in o:
                        raise RewardLabError(
                            f"{where} has Dict observations without an 'observation' key "
                            f"(keys: {', '.join(o.keys())}); not supported"
                        )
                    if goal_keys is None and isinstance(o.get("desired_goal"), h5py.Group):
                        goal_keys = list(o["desired_goal"].keys())
                    o = o["observation"]
                obs = _numeric(o, f"observations of {where}")
                act = _numeric(g["actions"], f"actions of {where}")
                rew, term, trunc = (
                    _numeric(g[k], f"{k} of {where}").reshape(-1) for k in ("rewards", "terminations", "truncations")
                )
                n = len(act)
                if len(obs) != n + 1 or not len(rew) == len(term) == len(trunc) == n:
                    raise RewardLabError(
                        f"{where} has inconsistent lengths: observations {len(obs)} (expected "
                        f"actions + 1 = {n + 1}), actions {n}, rewards {len(rew)}, terminations "
                        f"{len(term)}, truncations {len(trunc)}"
                    )
                if n == 0:
                    continue
                obs_l.append(obs[:-1].reshape(n, -1))
                act_l.append(act.reshape(n, -1))
                rew_l.append(rew)
                term = term.astype(bool)
                trunc = trunc.astype(bool)
                if not (term[-1] or trunc[-1]):
                    trunc[-1] = True
                term_l.append(term)
                trunc_l.append(trunc)
        except (OSError, KeyError) as e:
            raise RewardLabError(f"Minari data '{hdf5}' is corrupt ({e})") from None
    if not obs_l:
        raise RewardLabError(f"Minari dataset '{path}' has no transitions (all episodes are empty)")
    if len({o.shape[1] for o in obs_l}) != 1 or len({a.shape[1] for a in act_l}) != 1:
        raise RewardLabError(f"Minari dataset '{path}' mixes observation or action widths across episodes")
    obs = np.concatenate(obs_l)
    looks_kitchen = str(env_id or "").startswith("FrankaKitchen") or (
        goal_keys is not None and bool(goal_keys) and set(goal_keys) <= set(KITCHEN_TASKS)
    )
    convert = kitchen if kitchen is not None else (looks_kitchen and obs.shape[1] == KITCHEN_V1_OBS_DIM)
    out_meta: dict[str, Any] = {
        "env": env_id,
        "source": f"Minari dataset '{path}'",
        "format": "minari-hdf5",
        "dataset_id": meta.get("dataset_id"),
        "minari_version": meta.get("minari_version"),
        "n_episodes": len(obs_l),
    }
    if convert:
        if kitchen_tasks is None:
            spec_tasks = (spec.get("kwargs") or {}).get("tasks_to_complete")
            kitchen_tasks = goal_keys or spec_tasks or KITCHEN_TARGET_TASKS
        tasks = check_kitchen_tasks(kitchen_tasks)
        tasks = tuple(t for t in KITCHEN_TASKS if t in tasks)  # canonical order; the goal vector ignores order
        obs = d4rl_obs_from_v1(obs, tasks)
        out_meta.update(obs_layout="d4rl-kitchen-60", kitchen_tasks=list(tasks))
    return OfflineDataset(
        obs,
        np.concatenate(act_l),
        np.concatenate(rew_l),
        np.concatenate(term_l),
        np.concatenate(trunc_l),
        meta=out_meta,
    )


def _box_json(arr: np.ndarray) -> dict[str, Any]:
    shape = arr.shape[1:]
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        low, high = np.full(shape, info.min).tolist(), np.full(shape, info.max).tolist()
    elif arr.dtype.kind == "b":
        low, high = np.zeros(shape, bool).tolist(), np.ones(shape, bool).tolist()
    else:
        low, high = np.full(shape, -np.inf).tolist(), np.full(shape, np.inf).tolist()
    return {"type": "Box", "dtype": str(arr.dtype), "shape": list(shape), "low": low, "high": high}


def _space_json(x: Any) -> dict[str, Any]:
    if isinstance(x, Mapping):
        return {"type": "Dict", "subspaces": {k: _space_json(v) for k, v in x.items()}}
    return _box_json(np.asarray(x))


def _write_tree(group: Any, key: str, x: Any) -> None:
    if isinstance(x, Mapping):
        sub = group.create_group(key)
        for k, v in x.items():
            _write_tree(sub, k, v)
    else:
        arr = np.asarray(x)
        group.create_dataset(key, data=arr, chunks=True, maxshape=(None, *arr.shape[1:]))


def _rows(x: Any) -> set[int]:
    if isinstance(x, Mapping):
        return set().union(*(_rows(v) for v in x.values())) if x else {-1}
    return {len(np.asarray(x))}


def write_minari(
    path: str | os.PathLike,
    episodes: Sequence[Mapping[str, Any]],
    env_spec_id: str | None = None,
    *,
    dataset_id: str = "rewardlab/local-v0",
    env_kwargs: dict[str, Any] | None = None,
    max_episode_steps: int | None = None,
) -> Path:
    """Write `episodes` as a Minari 0.5.x hdf5 dataset folder at `path` (`path/data/...`); return `path`.

    Each episode maps observations (T+1 rows, or a nested dict of such arrays), actions (T), rewards (T),
    terminations (T), truncations (T) and optionally seed. Spaces are inferred as unbounded Boxes / Dicts.
    `env_spec_id` (+ `env_kwargs`, `max_episode_steps`) is recorded as the env_spec. Refuses an existing dataset.
    """
    import gymnasium as gym
    import h5py

    path = Path(path)
    data_dir = path / "data"
    if (data_dir / METADATA_FILE).exists() or (data_dir / MAIN_FILE).exists():
        raise RewardLabError(f"a Minari dataset already exists at '{path}'; delete it or choose another path")
    if not episodes:
        raise RewardLabError("write_minari needs at least one episode")
    total = 0
    for i, ep in enumerate(episodes):
        missing = [k for k in ("observations", "actions", "rewards", "terminations", "truncations") if k not in ep]
        if missing:
            raise RewardLabError(f"episode {i} lacks {', '.join(missing)}")
        n = len(np.asarray(ep["actions"]))
        if _rows(ep["observations"]) != {n + 1} or {
            len(np.asarray(ep[k])) for k in ("rewards", "terminations", "truncations")
        } != {n}:
            raise RewardLabError(
                f"episode {i}: observations need T+1 rows and actions, rewards, terminations, "
                f"truncations T rows (T = {n})"
            )
        total += n
    data_dir.mkdir(parents=True, exist_ok=True)
    with h5py.File(data_dir / MAIN_FILE, "w", track_order=True) as f:
        for i, ep in enumerate(episodes):
            g = f.create_group(f"episode_{i}")
            g.attrs["id"] = i
            if ep.get("seed") is not None:
                g.attrs["seed"] = int(ep["seed"])
            g.attrs["total_steps"] = len(np.asarray(ep["actions"]))
            _write_tree(g, "observations", ep["observations"])
            _write_tree(g, "actions", np.asarray(ep["actions"]))
            _write_tree(g, "rewards", np.asarray(ep["rewards"], dtype=np.float64))
            _write_tree(g, "terminations", np.asarray(ep["terminations"], dtype=bool))
            _write_tree(g, "truncations", np.asarray(ep["truncations"], dtype=bool))
    meta: dict[str, Any] = {
        "total_episodes": len(episodes),
        "total_steps": int(total),
        "data_format": "hdf5",
        "jpeg_encoding": False,
        "observation_space": json.dumps(_space_json(episodes[0]["observations"])),
        "action_space": json.dumps(_box_json(np.asarray(episodes[0]["actions"]))),
        "dataset_id": dataset_id,
        "minari_version": MINARI_FORMAT_VERSION,
    }
    if env_spec_id is not None:
        entry = gym.registry[env_spec_id].entry_point if env_spec_id in gym.registry else None
        entry = entry if isinstance(entry, str) else None
        meta["env_spec"] = gym.envs.registration.EnvSpec(
            id=env_spec_id, entry_point=entry, kwargs=dict(env_kwargs or {}), max_episode_steps=max_episode_steps
        ).to_json()
    size = sum(p.stat().st_size for p in data_dir.iterdir() if p.is_file())
    meta["dataset_size"] = round(size / 1e6, 1)
    (data_dir / METADATA_FILE).write_text(json.dumps(meta))
    return path
