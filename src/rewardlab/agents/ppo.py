"""PPO (Stable-Baselines3) with a documented config, atomic checkpoints, resume and periodic evaluation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rewardlab.agents.configs import PPOConfig
from rewardlab.agents.sb3 import build_sb3, load_sb3, register_sb3, save_sb3, sb3_logger
from rewardlab.core.runs import MetricsLogger, progress


def _linear(value: float) -> Any:
    return lambda progress_remaining: progress_remaining * value


def _schedule(cfg: PPOConfig) -> Any:
    return _linear(cfg.learning_rate) if cfg.lr_schedule == "linear" else cfg.learning_rate


def ppo_kwargs(cfg: PPOConfig) -> dict[str, Any]:
    """SB3 PPO's constructor arguments (other than policy, env and seed) for a config."""
    import torch

    if cfg.policy == "MlpPolicy":
        policy, policy_kwargs = "MlpPolicy", {"net_arch": list(cfg.net_arch), "activation_fn": torch.nn.Tanh}
    elif cfg.policy == "ImpalaCnnPolicy":
        from rewardlab.agents.impala import ImpalaCNN

        policy, policy_kwargs = "CnnPolicy", {"features_extractor_class": ImpalaCNN, "net_arch": []}
    else:
        policy, policy_kwargs = "CnnPolicy", {}
    return {
        "policy": policy,
        "learning_rate": _schedule(cfg),
        "n_steps": cfg.n_steps,
        "batch_size": cfg.batch_size,
        "n_epochs": cfg.n_epochs,
        "gamma": cfg.gamma,
        "gae_lambda": cfg.gae_lambda,
        "clip_range": _linear(cfg.clip_range) if cfg.clip_schedule == "linear" else cfg.clip_range,
        "ent_coef": cfg.ent_coef,
        "vf_coef": cfg.vf_coef,
        "device": cfg.device,
        "verbose": 0,
        "policy_kwargs": policy_kwargs,
    }


register_sb3("PPO", PPOConfig, ppo_kwargs)


def make_ppo(cfg: PPOConfig, venv: Any, seed: int) -> Any:
    """A fresh SB3 PPO MlpPolicy model for `venv` with the config's hyperparameters."""
    return build_sb3("PPO", cfg, venv, seed)


def save_ppo(model: Any, path: Path, cfg: PPOConfig) -> None:
    """Save a PPO model safely (rewardlab's SB3 format, `agents/sb3.py`), atomically."""
    save_sb3(path, model, cfg)


def load_ppo(
    path: str | os.PathLike,
    venv: Any = None,
    device: str = "cpu",
    *,
    spaces: tuple[Any, Any] | None = None,
    trust_pickle: bool = False,
    config: PPOConfig | None = None,
) -> Any:
    """Load a PPO model saved by `save_ppo` (`model.pt`), checked against the environment's spaces (`venv`'s or
    `spaces`); an SB3 zip only with `trust_pickle` (a run's own zip is converted once, with its `config`)."""
    return load_sb3(path, "PPO", venv, spaces=spaces, device=device, trust_pickle=trust_pickle, config=config)


def train_ppo(
    cfg: PPOConfig,
    venv: Any,
    out_dir: Path,
    seed: int,
    evaluate: Callable[[Any], dict[str, float]] | None = None,
    eval_every: int = 0,
    desc: str = "PPO",
    trust_pickle: bool = False,
) -> Any:
    """Train PPO into `out_dir` (`model.pt` at the end), resuming from `checkpoints/last.pt` if present.

    Every `eval_every` steps (and at the start and end) `evaluate(model)` is called and its figures are
    logged to `out_dir/metrics.csv` and TensorBoard; SB3's own log goes to `out_dir/sb3/progress.csv`, kept across
    a resume. Returns the trained model.
    """
    from stable_baselines3.common.callbacks import BaseCallback

    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoints" / "last.pt"
    if ckpt.exists() or ckpt.with_suffix(".zip").exists():
        model = load_ppo(ckpt, venv, cfg.device, trust_pickle=trust_pickle, config=cfg)
    else:
        model = make_ppo(cfg, venv, seed)
    done_steps = int(model.num_timesteps)
    model.set_logger(sb3_logger(out_dir / "sb3", keep_until=done_steps))
    logger = MetricsLogger(out_dir)
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
                save_ppo(self.model, ckpt, cfg)
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
        save_ppo(model, out_dir / "model.pt", cfg)
    finally:
        logger.close()
        model.logger.close()  # SB3's progress.csv (left open, it warns at exit)
    return model


def policy_act_fn(model: Any, deterministic: bool) -> Callable[[np.ndarray], np.ndarray]:
    """A batched act function obs (N, ...) -> actions (N,) for an SB3 model."""

    def act(obs: np.ndarray) -> np.ndarray:
        actions, _ = model.predict(obs, deterministic=deterministic)
        return np.asarray(actions).reshape(len(obs))

    return act
