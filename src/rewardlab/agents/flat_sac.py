"""Flat SAC on the mini-kitchen (Stable-Baselines3): the from-scratch baseline PTGM is compared with.

Defaults follow the SPiRL/PTGM repository's flat SAC baseline: policy 5 x 256, critics 2 x 256, replay 1e5,
batch 256, lr 3e-4, gamma 0.99, tau 0.005, automatic entropy tuning. Collection steps `n_envs` kitchens at once;
every vectorised step is followed by `gradient_steps` updates. Checkpoints (model and replay) at every evaluation;
an interrupted run resumes from them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rewardlab.agents.configs import FlatSACConfig  # noqa: F401
from rewardlab.envs.mini_kitchen import BatchedMiniKitchen, KitchenSpec, VectorMiniKitchen
from rewardlab.envs.vec import BatchedVecEnv


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
) -> dict[str, Any]:
    """Train flat SAC for `env_steps` environment steps (learning_starts included), evaluating every `eval_every`."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import configure

    out.mkdir(parents=True, exist_ok=True)
    kitchens = VectorMiniKitchen(cfg.n_envs, spec, seed)
    venv = BatchedVecEnv(kitchens)
    model_path, buf_path, state_path = out / "flat_sac.zip", out / "replay.pkl", out / "flat_sac_state.npz"
    history: list[dict[str, float]] = []
    seconds = 0.0
    if model_path.exists() and buf_path.exists() and state_path.exists():
        from rewardlab.errors import RewardLabError

        try:
            model = SAC.load(model_path, env=venv, device="cpu")
            model.load_replay_buffer(buf_path)
            with np.load(state_path) as z:
                history = [{"env_steps": float(s), "subtasks": float(v)} for s, v in z["history"]]
                seconds = float(z["seconds"])
        except Exception as e:  # a damaged zip or pickle surfaces as many kinds of error
            raise RewardLabError(
                f"flat SAC checkpoint in '{out}' is corrupt ({type(e).__name__}); rerun with --redo"
            ) from None
    else:
        model = SAC(
            "MlpPolicy",
            venv,
            learning_rate=cfg.lr,
            buffer_size=cfg.buffer,
            batch_size=cfg.batch,
            gamma=cfg.gamma,
            tau=cfg.tau,
            learning_starts=cfg.learning_starts,
            train_freq=1,
            gradient_steps=cfg.gradient_steps,
            seed=seed,
            device="cpu",
            verbose=0,
            policy_kwargs={"net_arch": {"pi": [256] * cfg.policy_layers, "qf": [256] * cfg.critic_layers}},
        )
    model.set_logger(configure(str(out / "sb3"), ["csv"]))

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
        from rewardlab.core.runs import atomic_path

        with atomic_path(model_path) as tmp:
            model.save(tmp)
        with atomic_path(buf_path) as tmp:
            model.save_replay_buffer(tmp)
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
