"""Stable-Baselines3 models saved and loaded without pickle.

SB3's own `.zip` holds cloudpickled objects: loading one can run any code its author put there. rewardlab saves an
SB3 model as one checkpoint of its one format (`torch.save`, read back with `weights_only=True`)::

    {"format": "rewardlab.sb3/1", "algo": "PPO", "config_class": "PPOConfig", "config": {...},
     "observation_space": {...}, "action_space": {...}, "seed": 0, "num_timesteps": ..., "n_updates": ...,
     "params": {"policy": state_dict, "policy.optimizer": state_dict, ...}, "variables": {...}, "meta": {...}}

The rewardlab config rebuilds the algorithm (each algorithm registers how with `register_sb3`); the state_dicts of
`model.get_parameters()` (policy and optimisers) and SB3's torch variables (SAC's entropy coefficient) restore it,
so a resumed run continues with its optimiser state. A replay buffer is saved as npz (`save_replay` /
`load_replay`, `allow_pickle=False`).

An SB3 zip (made elsewhere, or by rewardlab before this format) is read only with `trust_pickle=True`
(`--trust-pickle` on the command line); `load_sb3` then converts it once, writing the safe file beside it.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rewardlab.core.runs import atomic_path, load_checkpoint, save_checkpoint, to_cpu
from rewardlab.errors import RewardLabError

FORMAT = "rewardlab.sb3/1"
TRUST_HINT = "--trust-pickle (trust_pickle=True in Python)"
# algo -> (config class, kwargs(config) -> SB3 constructor arguments other than env and seed, "policy" included)
_ALGOS: dict[str, tuple[type, Callable[[Any], dict[str, Any]]]] = {}
_PROVIDERS = ("rewardlab.agents.ppo", "rewardlab.agents.flat_sac")


def register_sb3(algo: str, config_class: type, kwargs: Callable[[Any], dict[str, Any]]) -> None:
    """Declare how a rewardlab config builds the SB3 algorithm `algo` ("PPO", "SAC")."""
    _ALGOS[algo] = (config_class, kwargs)


def _algo(algo: str) -> tuple[type, type, Callable[[Any], dict[str, Any]]]:
    import importlib

    import stable_baselines3

    if algo not in _ALGOS:
        for name in _PROVIDERS:
            importlib.import_module(name)
    if algo not in _ALGOS:
        raise RewardLabError(f"no rewardlab support for the Stable-Baselines3 algorithm '{algo}'")
    cfg_cls, kwargs = _ALGOS[algo]
    return getattr(stable_baselines3, algo), cfg_cls, kwargs


# --------------------------------------------------------------------------------------------------- spaces
def space_record(space: Any) -> dict[str, Any]:
    """A Box or Discrete space as plain values and tensors (what `weights_only` reads back)."""
    import torch
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": torch.as_tensor(space.low),
            "high": torch.as_tensor(space.high),
            "dtype": np.dtype(space.dtype).name,
        }
    raise TypeError(f"cannot record a {type(space).__name__} space")


def space_from_record(rec: dict[str, Any]) -> Any:
    """The space `space_record` recorded."""
    from gymnasium import spaces

    if rec["type"] == "Discrete":
        return spaces.Discrete(int(rec["n"]), start=int(rec.get("start", 0)))
    if rec["type"] == "Box":
        dtype = np.dtype(rec["dtype"])
        return spaces.Box(np.asarray(rec["low"], dtype), np.asarray(rec["high"], dtype), dtype=dtype)
    raise ValueError(f"unknown space type {rec['type']!r}")


def describe_space(space: Any) -> str:
    """A short name of a space for messages: `Box(0..1, (1, 10, 10))`, `Discrete(3)`."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, spaces.Box):
        return f"Box{tuple(space.shape)}"
    return type(space).__name__


def _same_space(a: Any, b: Any) -> bool:
    from gymnasium import spaces

    if type(a) is not type(b):
        return False
    if isinstance(a, spaces.Discrete):
        return a.n == b.n and a.start == b.start
    if isinstance(a, spaces.Box):
        return a.shape == b.shape and np.array_equal(a.low, b.low) and np.array_equal(a.high, b.high)
    return a == b


# ------------------------------------------------------------------------------------------------- save/load
def save_sb3(path: str | os.PathLike, model: Any, config: Any, meta: dict[str, Any] | None = None) -> None:
    """Save an SB3 model built from the rewardlab `config` (policy and optimiser state, counters) atomically."""
    from stable_baselines3.common.utils import get_parameters_by_name  # noqa: F401  (SB3 present)

    from rewardlab.config import to_dict

    algo = type(model).__name__
    _, variable_names = model._get_torch_save_params()
    record = {
        "format": FORMAT,
        "algo": algo,
        "config_class": type(config).__name__,
        "config": to_dict(config),
        "observation_space": space_record(model.observation_space),
        "action_space": space_record(model.action_space),
        "seed": model.seed,
        "num_timesteps": int(model.num_timesteps),
        "n_updates": int(getattr(model, "_n_updates", 0)),
        "episode_num": int(getattr(model, "_episode_num", 0)),
        "params": to_cpu(model.get_parameters()),
        "variables": {name: _attr(model, name).detach().cpu() for name in variable_names},
        "meta": dict(meta or {}),
    }
    save_checkpoint(path, record)


def _attr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def build_sb3(
    algo: str,
    config: Any,
    venv: Any = None,
    seed: int | None = 0,
    spaces: tuple[Any, Any] | None = None,
    device: str | None = None,
):
    """A fresh SB3 model for `config`: on `venv`, or without an environment on the recorded `spaces` (to act or
    to be evaluated; a model without an environment cannot learn until `set_env`). `device`, when given, replaces
    the torch device the config's arguments name (for configs without a device setting of their own)."""
    import warnings

    cls, _, kwargs = _algo(algo)
    kw = kwargs(config)
    if device is not None:
        kw["device"] = device
    policy = kw.pop("policy")
    if venv is not None:
        return cls(policy, venv, seed=seed, **kw)
    with warnings.catch_warnings():  # a rollout size that does not divide by one env's steps: irrelevant here
        warnings.simplefilter("ignore")
        return cls(policy, _SpacesEnv(*spaces), seed=seed, **kw)  # type: ignore[misc]


class _SpacesEnv:
    """An environment that only has spaces: what SB3 needs to build a model that acts but does not learn."""

    def __new__(cls, observation_space: Any, action_space: Any) -> Any:
        import gymnasium as gym

        class SpacesOnly(gym.Env):
            def __init__(self) -> None:
                self.observation_space, self.action_space = observation_space, action_space

            def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
                raise RuntimeError("this model was loaded without an environment; give it one to learn")

            def step(self, action: Any) -> Any:
                raise RuntimeError("this model was loaded without an environment; give it one to learn")

        return SpacesOnly()


def load_sb3(
    path: str | os.PathLike,
    algo: str,
    venv: Any = None,
    *,
    spaces: tuple[Any, Any] | None = None,
    device: str = "cpu",
    trust_pickle: bool = False,
    config: Any = None,
    what: str = "policy",
) -> Any:
    """Load an SB3 model saved by `save_sb3` (on `venv` to go on training, else to act), checking it is an `algo`
    for the environment's spaces (`venv`'s, or `spaces`).

    `path` names the safe file (`.pt`). When it is absent but an SB3 zip of the same stem is there (a run made by an
    older rewardlab), or `path` is itself a `.zip`, the zip is read only with `trust_pickle`; a run's own zip is then
    converted once with `config` (the rewardlab config it was trained with): the safe file is written beside it.
    """
    path = Path(path)
    zpath = path if path.suffix == ".zip" else path.with_suffix(".zip")
    safe = path.with_suffix(".pt")
    if safe.is_file() and path.suffix != ".zip":
        record = load_checkpoint(safe)
        if record.get("format") != FORMAT:
            raise RewardLabError(
                f"'{safe}' is not a rewardlab Stable-Baselines3 checkpoint (it holds "
                f"{record.get('kind') or record.get('format') or 'something else'}); give the {what} file"
            )
        return _from_record(record, safe, algo, venv, spaces, device, what)
    if not zpath.is_file():
        if path.is_dir() or safe.is_dir():
            raise RewardLabError(f"'{path}' is a directory, not a {what} checkpoint")
        raise RewardLabError(f"{what} checkpoint '{safe}' does not exist; train it first")
    if not trust_pickle:
        raise RewardLabError(
            f"'{zpath}' is a Stable-Baselines3 zip, which runs code from the file when loaded (it holds pickles); "
            f"rewardlab loads it only if you trust it: rerun with {TRUST_HINT} to convert it once to the safe format"
        )
    model = _load_zip(zpath, algo, venv, device, what)
    _check_spaces(model.observation_space, model.action_space, venv, spaces, zpath, what)
    if path.suffix != ".zip" and config is not None:  # a run's own file: convert it once
        with atomic_path(safe) as tmp:
            save_sb3(tmp, model, config, meta={"converted_from": zpath.name})
            _from_record(load_checkpoint(tmp), zpath, algo, venv, spaces, device, what)  # it rebuilds from config
    return model


def _load_zip(zpath: Path, algo: str, venv: Any, device: str, what: str) -> Any:
    import warnings

    cls, _, _ = _algo(algo)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls.load(zpath, env=venv, device=device)
    except (zipfile.BadZipFile, ValueError, KeyError, RuntimeError, EOFError, OSError, TypeError, AttributeError) as e:
        raise RewardLabError(
            f"'{zpath}' is corrupt or not a Stable-Baselines3 {algo} model ({type(e).__name__}); "
            f"give another {what} file"
        ) from None


def _check_spaces(obs: Any, act: Any, venv: Any, spaces: tuple[Any, Any] | None, where: Path, what: str) -> None:
    want = (venv.observation_space, venv.action_space) if venv is not None else spaces
    if want is None:
        return
    if not (_same_space(obs, want[0]) and _same_space(act, want[1])):
        raise RewardLabError(
            f"'{where}' holds a {what} for observations {describe_space(obs)} and actions {describe_space(act)}, but "
            f"this step's environment has {describe_space(want[0])} and {describe_space(want[1])}: it was trained on "
            "another environment; give a checkpoint trained on this one"
        )


def _from_record(record: dict[str, Any], where: Path, algo: str, venv: Any, spaces: Any, device: str, what: str) -> Any:
    from rewardlab.config import from_dict

    if record.get("algo") != algo:
        raise RewardLabError(f"'{where}' holds a {record.get('algo')} model, not a {algo}; give a {what} file")
    cls, cfg_cls, _ = _algo(algo)
    try:
        obs_space = space_from_record(record["observation_space"])
        act_space = space_from_record(record["action_space"])
        cfg = from_dict(cfg_cls, record["config"], prefix="")
        params, variables = record["params"], record.get("variables", {})
    except (KeyError, TypeError, ValueError) as e:
        raise RewardLabError(f"'{where}' is an incomplete rewardlab SB3 checkpoint ({e}); give another {what} file")
    _check_spaces(obs_space, act_space, venv, spaces, where, what)
    cfg = dataclasses.replace(cfg, device=device) if any(f.name == "device" for f in dataclasses.fields(cfg)) else cfg
    model = build_sb3(algo, cfg, venv, seed=record.get("seed"), spaces=(obs_space, act_space), device=device)
    try:
        model.set_parameters(params, exact_match=True, device=device)
        for name, value in variables.items():
            _attr(model, name).data.copy_(value.to(model.device))
    except (RuntimeError, ValueError, KeyError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RewardLabError(f"'{where}' does not fit the {algo} its config builds ({first}); give another {what} file")
    model.num_timesteps = int(record.get("num_timesteps", 0))
    model._n_updates = int(record.get("n_updates", 0))
    model._episode_num = int(record.get("episode_num", 0))
    return model


def sb3_logger(directory: str | os.PathLike, keep_until: int = 0) -> Any:
    """SB3's CSV logger writing `directory/progress.csv`; a resumed run (`keep_until` > 0 steps done) keeps the rows
    of those steps (SB3's own logger starts the file afresh) and drops the ones after them, which are redone."""
    import csv

    from stable_baselines3.common.logger import CSVOutputFormat, Logger

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "progress.csv"
    header, rows = [], []
    if keep_until > 0 and path.is_file():
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            col = header.index("time/total_timesteps") if "time/total_timesteps" in header else None
            for row in reader:
                try:
                    steps = float(row[col]) if col is not None else 0.0
                except (ValueError, IndexError):
                    continue
                if steps <= keep_until:
                    rows.append(row)
    fmt = CSVOutputFormat(str(path))
    if header:
        writer = csv.writer(fmt.file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        fmt.file.flush()
        fmt.keys = list(header)
    return Logger(str(directory), [fmt])


# ---------------------------------------------------------------------------------------------- replay buffer
_REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def save_replay(path: str | os.PathLike, buffer: Any) -> None:
    """Save an SB3 ReplayBuffer's filled part as npz, atomically."""
    n = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {k: getattr(buffer, k)[:n] for k in _REPLAY_ARRAYS if getattr(buffer, k, None) is not None}
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, pos=np.int64(buffer.pos), full=np.bool_(buffer.full), **arrays)


def load_replay(path: str | os.PathLike, buffer: Any) -> None:
    """Fill an SB3 ReplayBuffer (of the same size and spaces) from `save_replay`'s file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            full, pos = bool(z["full"]), int(z["pos"])
            for k in _REPLAY_ARRAYS:
                if getattr(buffer, k, None) is None:
                    continue
                a = z[k]
                target = getattr(buffer, k)
                if a.shape[1:] != target.shape[1:] or len(a) > len(target) or (full and len(a) != len(target)):
                    raise ValueError(f"{k} has shape {a.shape}, the buffer {target.shape}")
                target[: len(a)] = a
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise RewardLabError(f"replay buffer '{path}' is corrupt or of another run ({e}); rerun the step with --redo")
    buffer.full, buffer.pos = full, pos


__all__ = [
    "FORMAT",
    "TRUST_HINT",
    "register_sb3",
    "save_sb3",
    "load_sb3",
    "build_sb3",
    "save_replay",
    "load_replay",
    "space_record",
    "space_from_record",
    "describe_space",
]
