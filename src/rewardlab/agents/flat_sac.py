"""Flat SAC on the mini-kitchen (Stable-Baselines3): the from-scratch baseline PTGM is compared with.

Defaults follow the SPiRL/PTGM repository's flat SAC baseline: policy 5 x 256, critics 2 x 256, replay 1e5,
batch 256, lr 3e-4, gamma 0.99, tau 0.005, automatic entropy tuning. Collection steps `n_envs` kitchens at once;
every vectorised step is followed by `gradient_steps` updates. Checkpoints (model and replay) at every evaluation;
an interrupted run resumes from them, on any device. The nets train on `device` (SB3's); SB3 keeps its replay buffer
in numpy on the CPU and copies each batch to the device.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rewardlab.agents.configs import FlatSACConfig
from rewardlab.agents.sb3 import (
    TRUST_HINT,
    build_sb3,
    load_replay,
    load_sb3,
    register_sb3,
    save_replay,
    save_sb3,
    sb3_logger,
)
from rewardlab.core.runs import atomic_path
from rewardlab.envs.mini_kitchen import BatchedMiniKitchen, KitchenSpec, VectorMiniKitchen
from rewardlab.envs.vec import BatchedVecEnv
from rewardlab.errors import RewardLabError


def sac_kwargs(cfg: FlatSACConfig) -> dict[str, Any]:
    """SB3 SAC's constructor arguments (other than policy, env and seed) for the flat SAC config, on the CPU
    (`build_sb3(..., device=...)` and `load_flat_sac(..., device=...)` put it elsewhere)."""
    return {
        "policy": "MlpPolicy",
        "learning_rate": cfg.lr,
        "buffer_size": cfg.buffer,
        "batch_size": cfg.batch,
        "gamma": cfg.gamma,
        "tau": cfg.tau,
        "learning_starts": cfg.learning_starts,
        "train_freq": 1,
        "gradient_steps": cfg.gradient_steps,
        "device": "cpu",
        "verbose": 0,
        "policy_kwargs": {"net_arch": {"pi": [256] * cfg.policy_layers, "qf": [256] * cfg.critic_layers}},
    }


register_sb3("SAC", FlatSACConfig, sac_kwargs)


def load_flat_sac(
    path: str | Path,
    venv: Any = None,
    *,
    spaces: tuple[Any, Any] | None = None,
    trust_pickle: bool = False,
    config: FlatSACConfig | None = None,
    device: str = "cpu",
) -> Any:
    """Load a flat SAC model (`flat_sac.pt`) onto `device`; an SB3 zip only with `trust_pickle` (converted once with
    `config`)."""
    return load_sb3(
        path,
        "SAC",
        venv,
        spaces=spaces,
        device=device,
        trust_pickle=trust_pickle,
        config=config,
        what="flat SAC model",
    )


def _load_pickled_replay(path: Path, model: Any, trust_pickle: bool) -> None:
    """A replay buffer pickled by an older rewardlab: read only when trusted (then saved as npz beside it)."""
    if not trust_pickle:
        raise RewardLabError(
            f"'{path}' is a pickled replay buffer, which runs code from the file when loaded; rewardlab loads it only "
            f"if you trust it: rerun with {TRUST_HINT} to convert it once to npz"
        )
    try:
        model.load_replay_buffer(path)
    except Exception as e:  # a damaged pickle surfaces as many kinds of error
        raise RewardLabError(f"replay buffer '{path}' is corrupt ({type(e).__name__}); rerun the step with --redo")
    save_replay(path.with_suffix(".npz"), model.replay_buffer)


def rollout_policy(
    act: Callable[[np.ndarray], np.ndarray], spec: KitchenSpec, episodes: int, seed: int
) -> BatchedMiniKitchen:
    """Run `act` (batched obs -> actions) for `episodes` episodes together; returns the kitchens at their ends."""
    env = BatchedMiniKitchen(episodes, spec, seed=seed)
    obs = env.obs()
    alive = np.ones(episodes, dtype=bool)
    while alive.any():
        obs, _, te, tr = env.step(act(obs), alive)
        alive &= ~(te | tr)
    return env


def evaluate_policy(act: Callable[[np.ndarray], np.ndarray], spec: KitchenSpec, episodes: int, seed: int) -> np.ndarray:
    """Subtasks completed by `act` in `episodes` episodes run together."""
    return rollout_policy(act, spec, episodes, seed).completed().astype(np.float64)


def train_flat_sac(
    cfg: FlatSACConfig,
    spec: KitchenSpec,
    env_steps: int,
    out: Path,
    seed: int,
    eval_every: int,
    eval_episodes: int,
    log: Callable[[int, dict[str, float]], None] | None = None,
    progress: Callable[[int], None] | None = None,
    trust_pickle: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train flat SAC on `device` for `env_steps` environment steps (learning_starts included), evaluating every
    `eval_every`."""
    from stable_baselines3.common.callbacks import BaseCallback

    out.mkdir(parents=True, exist_ok=True)
    kitchens = VectorMiniKitchen(cfg.n_envs, spec, seed)
    venv = BatchedVecEnv(kitchens)
    model_path, buf_path, state_path = out / "flat_sac.pt", out / "replay.npz", out / "flat_sac_state.npz"
    history: list[dict[str, float]] = []
    seconds = 0.0
    if (model_path.exists() or model_path.with_suffix(".zip").exists()) and state_path.exists():
        model = load_flat_sac(model_path, venv, trust_pickle=trust_pickle, config=cfg, device=device)
        if buf_path.exists():
            load_replay(buf_path, model.replay_buffer)
        elif (out / "replay.pkl").exists():
            _load_pickled_replay(out / "replay.pkl", model, trust_pickle)
        else:
            raise RewardLabError(f"flat SAC checkpoint in '{out}' has no replay buffer ({buf_path.name}); use --redo")
        try:
            with np.load(state_path, allow_pickle=False) as z:
                history = [{"env_steps": float(s), "subtasks": float(v)} for s, v in z["history"]]
                seconds = float(z["seconds"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
            raise RewardLabError(f"flat SAC state '{state_path}' is corrupt ({e}); rerun the step with --redo")
    else:
        model = build_sb3("SAC", cfg, venv, seed, device=device)
    model.set_logger(sb3_logger(out / "sb3", keep_until=int(model.num_timesteps)))

    def do_eval(step: int) -> None:
        done = evaluate_policy(
            lambda o: model.predict(o, deterministic=False)[0], spec, eval_episodes, seed=10_000 + seed
        )
        history.append({"env_steps": float(step), "subtasks": float(done.mean())})
        if log is not None:
            row = {"eval/subtasks": float(done.mean())}
            if kitchens.episode_subtasks:
                row["train/episode_subtasks"] = float(np.mean(kitchens.episode_subtasks[-50:]))
            log(step, row)

    def save() -> None:
        save_sb3(model_path, model, cfg)
        save_replay(buf_path, model.replay_buffer)
        with atomic_path(state_path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f, history=np.array([[h["env_steps"], h["subtasks"]] for h in history]), seconds=np.array(seconds)
                )

    class _CB(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next = (model.num_timesteps // eval_every + 1) * eval_every
            self.last = model.num_timesteps
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            nonlocal seconds
            t = self.model.num_timesteps
            if progress is not None:
                progress(t - self.last)
            self.last = t
            if t >= self.next:
                seconds += time.perf_counter() - self.t0
                self.t0 = time.perf_counter()
                do_eval(t)
                save()
                self.next += eval_every
            return True

    if not history:
        do_eval(0)
    remaining = env_steps - model.num_timesteps
    if remaining > 0:
        model.learn(total_timesteps=remaining, callback=_CB(), reset_num_timesteps=model.num_timesteps == 0)
    if history[-1]["env_steps"] < model.num_timesteps:
        do_eval(model.num_timesteps)
    save()
    return {
        "history": history,
        "env_steps": int(model.num_timesteps),
        "seconds": seconds,
        "final_subtasks": history[-1]["subtasks"],
    }
