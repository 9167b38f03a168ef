"""PPO (Stable-Baselines3) with a documented config, atomic checkpoints, resume and periodic evaluation."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rewardlab.agents.configs import PPOConfig  # noqa: F401
from rewardlab.core.runs import MetricsLogger, atomic_path, progress
from rewardlab.errors import RewardLabError


def _schedule(cfg: PPOConfig) -> Any:
    if cfg.lr_schedule == "linear":
        lr = cfg.learning_rate
        return lambda progress_remaining: progress_remaining * lr
    return cfg.learning_rate


def make_ppo(cfg: PPOConfig, venv: Any, seed: int) -> Any:
    """A fresh SB3 PPO MlpPolicy model for `venv` with the config's hyperparameters."""
    import torch
    from stable_baselines3 import PPO

    return PPO(
        "MlpPolicy",
        venv,
        learning_rate=_schedule(cfg),
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_range,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        seed=seed,
        device=cfg.device,
        verbose=0,
        policy_kwargs={"net_arch": list(cfg.net_arch), "activation_fn": torch.nn.Tanh},
    )


def save_ppo(model: Any, path: Path) -> None:
    """Save an SB3 model atomically (SB3's zip format)."""
    with atomic_path(path, suffix=".zip") as tmp:
        model.save(tmp)


def load_ppo(path: str | os.PathLike, venv: Any = None, device: str = "cpu") -> Any:
    """Load an SB3 PPO zip with a clear error for a missing or corrupt file."""
    from stable_baselines3 import PPO

    path = Path(path)
    if not path.is_file():
        raise RewardLabError(f"policy checkpoint '{path}' does not exist; train it first (expert step)")
    try:
        return PPO.load(path, env=venv, device=device)
    except (zipfile.BadZipFile, ValueError, KeyError, RuntimeError, EOFError, OSError) as e:
        raise RewardLabError(
            f"policy checkpoint '{path}' is corrupt or not an SB3 PPO model ({type(e).__name__}); retrain it"
        ) from None


def train_ppo(
    cfg: PPOConfig,
    venv: Any,
    out_dir: Path,
    seed: int,
    evaluate: Callable[[Any], dict[str, float]] | None = None,
    eval_every: int = 0,
    desc: str = "PPO",
) -> Any:
    """Train PPO into `out_dir` (`model.zip` at the end), resuming from `checkpoints/last.zip` if present.

    Every `eval_every` steps (and at the start and end) `evaluate(model)` is called and its figures are
    logged to `out_dir/metrics.csv` and TensorBoard. Returns the trained model.
    """
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import configure

    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoints" / "last.zip"
    if ckpt.exists():
        model = load_ppo(ckpt, venv, cfg.device)
        model.learning_rate = _schedule(cfg)
        model._setup_lr_schedule()
    else:
        model = make_ppo(cfg, venv, seed)
    model.set_logger(configure(str(out_dir / "sb3"), ["csv"]))
    logger = MetricsLogger(out_dir)
    done_steps = int(model.num_timesteps)
    remaining = cfg.total_timesteps - done_steps

    class _Callback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.bar = progress(total=cfg.total_timesteps, desc=desc, initial=done_steps)
            self.next_eval = (done_steps // eval_every + 1) * eval_every if eval_every else None
            self.next_ckpt = (done_steps // cfg.checkpoint_every + 1) * cfg.checkpoint_every
            self.last = done_steps

        def _on_step(self) -> bool:
            t = self.model.num_timesteps
            self.bar.update(t - self.last)
            self.last = t
            if evaluate is not None and self.next_eval is not None and t >= self.next_eval:
                figures = evaluate(self.model)
                logger.log(t, **figures)
                self.bar.set_postfix({k: f"{v:.3g}" for k, v in figures.items()})
                self.next_eval += eval_every
            if t >= self.next_ckpt:
                save_ppo(self.model, ckpt)
                self.next_ckpt += cfg.checkpoint_every
            return True

    try:
        if evaluate is not None and done_steps == 0:
            logger.log(0, **evaluate(model))
        if remaining > 0:
            cb = _Callback()
            try:
                model.learn(
                    total_timesteps=remaining, callback=cb, reset_num_timesteps=done_steps == 0, progress_bar=False
                )
            finally:
                cb.bar.close()
            if evaluate is not None and (not eval_every or model.num_timesteps % eval_every):
                logger.log(model.num_timesteps, **evaluate(model))
        save_ppo(model, out_dir / "model.zip")
    finally:
        logger.close()
    return model


def policy_act_fn(model: Any, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
    """A batched act function obs (N, ...) -> actions (N,) for an SB3 model."""

    def act(obs: np.ndarray) -> np.ndarray:
        actions, _ = model.predict(obs, deterministic=deterministic)
        return np.asarray(actions).reshape(len(obs))

    return act
