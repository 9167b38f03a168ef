"""Reward models by regression on (s, s', r) transitions (Michaud et al. 2020, B3), with per-epoch resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.core.modules import module_config, module_record, module_weights, save_module
from rewardlab.core.runs import MetricsLogger, load_checkpoint, progress, save_checkpoint
from rewardlab.data.transitions import Transitions
from rewardlab.errors import RewardLabError
from rewardlab.learn.configs import RegressionConfig  # noqa: F401
from rewardlab.rewards.nets import RewardNet

PREDICT_BATCH = 256  # transitions per forward pass when predicting: small enough for full-resolution CNNs


def mse_report(net: RewardNet, data: Transitions, device: str, batch: int = PREDICT_BATCH) -> dict[str, float]:
    """Per-sample MSE overall, on rewarding transitions (r != 0) and on the others, plus their counts."""
    preds = predict_rewards(net, data, device, batch)
    err = (preds - data.rewards) ** 2
    rewarding = data.rewards != 0
    return {
        "mse": float(err.mean()) if len(err) else float("nan"),
        "mse_rewarding": float(err[rewarding].mean()) if rewarding.any() else float("nan"),
        "mse_nonrewarding": float(err[~rewarding].mean()) if (~rewarding).any() else float("nan"),
        "n": int(len(err)),
        "n_rewarding": int(rewarding.sum()),
    }


@torch.no_grad()
def predict_rewards(net: RewardNet, data: Transitions, device: str, batch: int = PREDICT_BATCH) -> np.ndarray:
    """The net's predicted rewards (N,) for a transition set."""
    net.eval()
    out = []
    for i in range(0, len(data), batch):
        s = torch.as_tensor(data.obs[i : i + batch], device=device)
        a = None if data.acts is None else torch.as_tensor(data.acts[i : i + batch], device=device)
        s2 = torch.as_tensor(data.next_obs[i : i + batch], device=device)
        d = torch.as_tensor(data.dones[i : i + batch], device=device)
        out.append(net(s, a, s2, d).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _epoch_order(rewards: np.ndarray, rewarding_share: float, g: torch.Generator) -> torch.Tensor:
    """The sample order of one epoch: a permutation, or a shuffled draw with `rewarding_share` rewarding samples."""
    n = len(rewards)
    hot = torch.as_tensor(np.flatnonzero(rewards != 0))
    cold = torch.as_tensor(np.flatnonzero(rewards == 0))
    if rewarding_share <= 0 or len(hot) == 0 or len(cold) == 0:
        return torch.randperm(n, generator=g)
    k = int(round(rewarding_share * n))
    pick_hot = hot[torch.randint(len(hot), (k,), generator=g)]
    pick_cold = cold[torch.randperm(len(cold), generator=g)[: n - k]] if n - k <= len(cold) else cold
    both = torch.cat([pick_hot, pick_cold])
    return both[torch.randperm(len(both), generator=g)]


def train_regression(
    net: RewardNet,
    train: Transitions,
    test: Transitions,
    cfg: RegressionConfig,
    out_dir: Path,
    seed: int,
    device: str,
    meta: dict[str, Any] | None = None,
    rewarding_share: float = 0.0,
) -> dict[str, float]:
    """Train `net` by MSE regression; checkpoint each epoch in `out_dir/checkpoints/` and resume from the
    last one. Writes `out_dir/model.pt` at the end and returns the final train/test MSE figures.

    With `rewarding_share` > 0, each epoch (of as many samples as the training set) draws that share from the
    transitions with a nonzero reward, with replacement, and the rest from the others: for rewards so sparse
    that plain shuffling rarely shows one (0: plain shuffling, as the original)."""
    if len(train) == 0:
        raise RewardLabError("the training set is empty; create a dataset with n_train > 0")
    net.to(device)
    ckpt_path = out_dir / "checkpoints" / "last.pt"
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    start_epoch = 0
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location=device)
        saved = state.get("model", state.get("state_dict", {}))  # a module record (older files: the bare weights)
        if "kind" in saved and (saved["kind"], saved["config"]) != (net.module_kind, module_config(net)):
            raise RewardLabError(
                f"'{ckpt_path}' is a checkpoint of another architecture; remake the step with --redo, or use another "
                "--out"
            )
        net.load_state_dict(module_weights(saved))
        opt.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
    obs = torch.as_tensor(train.obs, device=device)
    acts = None if train.acts is None else torch.as_tensor(train.acts, device=device)
    nxt = torch.as_tensor(train.next_obs, device=device)
    rew = torch.as_tensor(train.rewards, device=device)
    dones = torch.as_tensor(train.dones, device=device)
    n = len(train)
    steps_per_epoch = (n + cfg.batch_size - 1) // cfg.batch_size
    logger = MetricsLogger(out_dir)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            net.train()
            g = torch.Generator().manual_seed(seed * 1000 + epoch)
            perm = _epoch_order(train.rewards, rewarding_share, g).to(device)
            total = 0.0
            bar = progress(range(steps_per_epoch), desc=f"reward model epoch {epoch + 1}/{cfg.epochs}")
            for b in bar:
                idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                pred = net(obs[idx], None if acts is None else acts[idx], nxt[idx], dones[idx])
                loss = torch.nn.functional.mse_loss(pred, rew[idx], reduction=cfg.loss_reduction)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * (1 if cfg.loss_reduction == "sum" else len(idx))
            test_rep = mse_report(net, test, device)
            logger.log(
                (epoch + 1) * steps_per_epoch,
                train_mse=total / n,
                test_mse=test_rep["mse"],
                test_mse_rewarding=test_rep["mse_rewarding"],
            )
            save_checkpoint(
                ckpt_path,
                {
                    "model": module_record(net),
                    "optimizer": opt.state_dict(),
                    "epoch": epoch + 1,
                },
            )
    finally:
        logger.close()
    train_rep = mse_report(net, train, device)
    test_rep = mse_report(net, test, device)
    save_module(out_dir / "model.pt", net, meta)
    return {
        "train_mse": train_rep["mse"],
        "train_mse_rewarding": train_rep["mse_rewarding"],
        "test_mse": test_rep["mse"],
        "test_mse_rewarding": test_rep["mse_rewarding"],
        "test_mse_nonrewarding": test_rep["mse_nonrewarding"],
        "test_n": test_rep["n"],
        "test_n_rewarding": test_rep["n_rewarding"],
        "test_reward_variance": float(np.var(test.rewards)) if len(test) else float("nan"),
    }


__all__ = ["RegressionConfig", "train_regression", "mse_report", "predict_rewards"]
