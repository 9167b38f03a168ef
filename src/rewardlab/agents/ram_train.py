"""Training and evaluating RAM / DT-RAM on image classification with an internal reward.

Validation every epoch, a checkpoint every `checkpoint_every` epochs (and at epoch 0), `best.pt` when validation
improves, and `last.pt` (model, optimiser, RNG-free epoch counter) after every epoch, from which an interrupted
run resumes: every epoch's shuffling and sampling are seeded by (seed, epoch), so a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from rewardlab.agents.configs import TrainConfig  # noqa: F401
from rewardlab.agents.ram import RAM, LossConfig, Oracle, hybrid_loss, load_ram
from rewardlab.core.modules import module_record, module_weights, save_module
from rewardlab.core.runs import MetricsLogger, available_cores, load_checkpoint, progress, save_checkpoint
from rewardlab.data.cluttered_mnist import MEAN, STD
from rewardlab.errors import RewardLabError


def normalise(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (N, H, W) to the network's input (N, 1, H, W): (x - 0.1307) / 0.3081."""
    x = torch.as_tensor(x)
    return (x - MEAN).div_(STD).unsqueeze(1)


@torch.inference_mode()
def evaluate(
    model: RAM,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = 1000,
    seed: int = 0,
    oracle: Oracle | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Accuracy of `model` (policy mean, random first location from `seed`), per-image q(y_true), stop steps.

    With an oracle: also the oracle's q(y_true) on the same glimpses, and delta = q_model - q_oracle.
    """
    model.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    correct, q_true, q_oracle, steps = [], [], [], []
    for s in range(0, len(y), batch_size):
        xb = normalise(x[s : s + batch_size]).to(device)
        yb = torch.as_tensor(y[s : s + batch_size]).to(device)
        ro = model(xb, generator=g)
        correct.append((ro.log_probs.argmax(1) == yb).cpu())
        q_true.append(ro.log_probs.gather(1, yb[:, None]).squeeze(1).exp().cpu())
        steps.append((ro.t_stop + 1).cpu())
        if oracle is not None:
            lp = oracle(xb, ro.locations[: ro.t_stop.max() + 1])
            q_oracle.append(lp.gather(1, yb[:, None]).squeeze(1).exp().cpu())
    out: dict[str, Any] = {
        "accuracy": float(torch.cat(correct).float().mean()) if len(y) else float("nan"),
        "q_true": torch.cat(q_true).numpy(),
        "steps": float(torch.cat(steps).float().mean()),
    }
    if oracle is not None:
        out["q_oracle"] = torch.cat(q_oracle).numpy()
        out["delta"] = out["q_true"] - out["q_oracle"]
    return out


def adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam as one fused kernel per tensor where this torch has it for the parameters' device (torch >= 2.4 on CPU);
    the same update as the default to float rounding, and the same state_dict."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def train_step(
    model: RAM,
    opt: torch.optim.Optimizer,
    xb: torch.Tensor,
    yb: torch.Tensor,
    loss_cfg: LossConfig,
    generator: torch.Generator,
    oracle: Oracle | None = None,
) -> dict[str, float]:
    """One update on a batch: rollout, hybrid loss, backward, Adam; returns the batch's statistics."""
    ro = model(xb, generator=generator)
    reward_lp = oracle(xb, ro.locations) if oracle is not None else None
    loss, stats = hybrid_loss(ro, yb, loss_cfg, model.dynamic, reward_log_probs=reward_lp)
    if not torch.isfinite(loss):
        raise RewardLabError(f"the loss became {loss.item()}; lower the learning rate or use a clipped reward")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {k: float(v) for k, v in stats.items()}


def _epoch_generator(seed: int, epoch: int, device: str) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + int(epoch))


def train_ram(
    model: RAM,
    loss_cfg: LossConfig,
    cfg: TrainConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    out_dir: Path,
    seed: int = 1,
    oracle: Oracle | None = None,
    device: str = "cpu",
    meta: dict[str, Any] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train into `out_dir` (resuming from `last.pt`); returns epochs run, best and last validation accuracy."""
    loss_cfg.validate()
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out_dir / "checkpoints"
    model.to(device)
    params = list(model.parameters())
    if oracle is not None:
        oracle.to(device)
        if oracle.drift:  # the original's bug: the oracle classifier sits in the optimiser
            params += list(oracle.classifier.parameters())
    opt = adam(params, cfg.lr)
    start, best, history = 0, -1.0, []
    last = out_dir / "last.pt"
    if last.exists():
        state = load_checkpoint(last, map_location=device)
        try:
            model.load_state_dict(module_weights(state["model"]))
            opt.load_state_dict(state["optim"])
            if oracle is not None and "oracle" in state:
                oracle.load_state_dict(state["oracle"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise RewardLabError(
                f"'{last}' does not match this run's model ({str(e).splitlines()[0]}); rerun with --redo to start over"
            ) from None
        start, best, history = int(state["epoch"]), float(state["best"]), list(state["history"])
    else:
        save_module(ckpt_dir / "epoch_0.pt", model, dict(epoch=0, **(meta or {})))
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or available_cores())
    try:
        return _train_loop(
            model,
            loss_cfg,
            cfg,
            x_train,
            y_train,
            x_valid,
            y_valid,
            out_dir,
            seed,
            oracle,
            device,
            meta,
            on_epoch,
            opt,
            start,
            best,
            history,
            last,
            ckpt_dir,
        )
    finally:
        torch.set_num_threads(threads_before)


def _train_loop(
    model,
    loss_cfg,
    cfg,
    x_train,
    y_train,
    x_valid,
    y_valid,
    out_dir,
    seed,
    oracle,
    device,
    meta,
    on_epoch,
    opt,
    start,
    best,
    history,
    last,
    ckpt_dir,
) -> dict[str, Any]:
    xt = torch.from_numpy(np.ascontiguousarray(x_train))
    yt = torch.from_numpy(np.ascontiguousarray(y_train))
    n = len(yt)
    if n == 0:
        raise RewardLabError("the training set is empty")
    with MetricsLogger(out_dir) as log:
        for epoch in range(start, cfg.epochs):
            model.train()
            t0 = time.time()
            g = _epoch_generator(seed, epoch, "cpu")
            perm = torch.randperm(n, generator=g)
            gdev = _epoch_generator(seed, epoch, device)
            sums: dict[str, float] = {}
            bar = progress(range(0, n, cfg.batch_size), desc=f"epoch {epoch + 1}/{cfg.epochs}")
            for s in bar:
                idx = perm[s : s + cfg.batch_size]
                xb = normalise(xt[idx]).to(device)
                yb = yt[idx].to(device)
                stats = train_step(model, opt, xb, yb, loss_cfg, gdev, oracle)
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
            train = {k: v / n for k, v in sums.items()}
            t_train = time.time() - t0
            val = evaluate(model, x_valid, y_valid, cfg.eval_batch_size, seed=seed, device=device)
            ep = epoch + 1
            row = {
                "epoch": ep,
                "train_accuracy": train["accuracy"],
                "train_reward": train["reward"],
                "train_loss": train["loss"],
                "valid_accuracy": val["accuracy"],
                "valid_steps": val["steps"],
                "epoch_seconds": t_train,
            }
            history.append(row)
            log.log(
                ep,
                **{f"train/{k}": v for k, v in train.items()},
                **{"valid/accuracy": val["accuracy"], "valid/steps": val["steps"], "time/epoch_seconds": t_train},
            )
            if val["accuracy"] > best:
                best = val["accuracy"]
                save_module(out_dir / "best.pt", model, dict(epoch=ep, valid_accuracy=best, **(meta or {})))
            if ep % cfg.checkpoint_every == 0 or ep == cfg.epochs:
                save_module(
                    ckpt_dir / f"epoch_{ep}.pt", model, dict(epoch=ep, valid_accuracy=val["accuracy"], **(meta or {}))
                )
            state = {
                "model": module_record(model),
                "optim": opt.state_dict(),
                "epoch": ep,
                "best": best,
                "history": history,
            }
            if oracle is not None:
                state["oracle"] = oracle.state_dict()
            save_checkpoint(last, state)
            if on_epoch is not None:
                on_epoch(ep, row)
    if not (out_dir / "best.pt").exists():  # zero epochs: the initial model is the best we have
        save_module(out_dir / "best.pt", model, dict(epoch=0, **(meta or {})))
    return {
        "epochs": len(history),
        "best_valid_accuracy": best if history else None,
        "last_valid_accuracy": history[-1]["valid_accuracy"] if history else None,
        "history": history,
    }


def load_for_eval(path: str | Path, device: str = "cpu") -> RAM:
    """A checkpoint (ours or the original's) ready for evaluation."""
    model, _ = load_ram(path, map_location=device)
    return model.eval()
