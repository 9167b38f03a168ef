"""The RAM / DT-RAM training step as it was before issue 19 (commit f37153e), frozen here as the reference that
`benchmarks/irrl_digits.py` and the tests compare the current step with (same maths, the autograd way).

Glimpses gathered for the whole batch at once, the two glimpse and two core layers fused into one matmul each, the
location and baseline heads run once over all steps after the recurrence; backward by autograd, step by step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rewardlab.agents.configs import glimpse_sizes
from rewardlab.agents.ram import RAM, LossConfig, Rollout, hybrid_loss


def _pad_images(x: torch.Tensor, cfg) -> tuple[torch.Tensor, int]:
    pad = max(glimpse_sizes(cfg))
    return F.pad(x, (pad, pad, pad, pad)), pad


def _extract_glimpses(xp: torch.Tensor, pad: int, loc: torch.Tensor, cfg, side: int) -> torch.Tensor:
    B, C, Hp, Wp = xp.shape
    start = (0.5 * ((loc + 1.0) * side)).long()
    flat = xp.reshape(B, C * Hp * Wp) if C == 1 else xp.reshape(B, C, Hp * Wp)
    g = cfg.patch_size
    parts = []
    for size in glimpse_sizes(cfg):
        off = pad - size // 2
        base = (start[:, 1] + off) * Wp + (start[:, 0] + off)
        ar = torch.arange(size, device=xp.device)
        idx = base[:, None] + (ar[:, None] * Wp + ar[None, :]).reshape(-1)
        if C == 1:
            patch = flat.gather(1, idx).reshape(B, 1, size, size)
        else:
            patch = flat.gather(2, idx[:, None, :].expand(B, C, size * size)).reshape(B, C, size, size)
        if size != g:
            patch = F.avg_pool2d(patch, size // g)
        parts.append(patch)
    if len(parts) == 1:
        return parts[0].reshape(B, -1)
    return torch.cat(parts, 1).reshape(B, -1)


def _fused(model: RAM) -> tuple[torch.Tensor, ...]:
    s, r = model.sensor, model.rnn
    return (
        torch.cat([s.fc3.weight, s.fc4.weight], 1),
        s.fc3.bias + s.fc4.bias,
        torch.cat([r.i2h.weight, r.h2h.weight], 1),
        r.i2h.bias + r.h2h.bias,
    )


def _step(model: RAM, xp, pad, side, loc, h, fused) -> torch.Tensor:
    w34, b34, wr, br = fused
    phi = _extract_glimpses(xp, pad, loc, model.cfg, side)
    what = F.relu(model.sensor.fc1(phi))
    where = F.relu(model.sensor.fc2(loc))
    g = F.relu(F.linear(torch.cat([what, where], 1), w34, b34))
    return F.relu(F.linear(torch.cat([g, h], 1), wr, br))


def reference_forward(
    model: RAM,
    x: torch.Tensor,
    l0: torch.Tensor | None = None,
    sample: bool | None = None,
    generator: torch.Generator | None = None,
    stop_early: bool = True,
    eps: torch.Tensor | None = None,
) -> Rollout:
    """`RAM.forward` as it was: the rollout over images x (B, C, H, W) with `model`'s weights."""
    cfg = model.cfg
    sample = model.training if sample is None else sample
    B, side, T, dev = x.shape[0], x.shape[-1], cfg.num_glimpses, x.device
    dynamic = model.dynamic
    if l0 is None:
        l0 = torch.rand(B, 2, device=dev, generator=generator) * 2 - 1
    if sample and eps is None:
        eps = torch.randn(T, B, 2, device=dev, generator=generator)
    xp, pad = _pad_images(x, cfg)
    fused = _fused(model)
    h = x.new_zeros(B, cfg.hidden_size)
    loc = l0
    hs, used, drawn = [], [], []
    t_stop = torch.full((B,), T, dtype=torch.long, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    for t in range(T):
        used.append(loc)
        h = _step(model, xp, pad, side, loc, h, fused)
        hs.append(h)
        with torch.no_grad():
            out = model.locator(h)
            mu = torch.tanh(out[:, :2])
            if dynamic:
                stop = torch.sigmoid(out[:, 2]).clamp(0.001, 0.999) > 0.5
                t_stop = torch.where(stop & ~done, torch.full_like(t_stop, t), t_stop)
                done = done | stop
        if sample:
            raw = mu + cfg.std * eps[t]
            drawn.append(raw)
            loc = raw.clamp(-1.0, 1.0)
        else:
            loc = mu
        if dynamic and stop_early and bool(done.all()):
            break
    n_run = len(hs)
    H = torch.stack(hs)
    if dynamic and not bool(done.all()):
        hs.append(_step(model, xp, pad, side, loc, h, fused))
        H_all = torch.stack(hs)
    else:
        H_all = H
    if not dynamic:
        t_stop = torch.full((B,), T - 1, dtype=torch.long, device=dev)
    h_final = H_all[t_stop, torch.arange(B, device=dev)]
    log_probs = F.log_softmax(model.classifier(h_final), dim=1)
    Hd = H.detach()
    out = model.locator(Hd)
    baselines = model.baseliner(Hd).squeeze(-1)
    steps = torch.arange(n_run, device=dev)[:, None]
    valid = steps <= t_stop[None, :]
    if sample:
        mu = torch.tanh(out[..., :2])
        raw = torch.stack(drawn)
        log_pi = (-((raw - mu) ** 2) / (2 * cfg.std**2) - math.log(cfg.std) - 0.5 * math.log(2 * math.pi)).sum(-1)
        if dynamic:
            log_s = torch.log(torch.sigmoid(out[..., 2]).clamp(0.001, 0.999))
            log_pi = torch.where(steps == t_stop[None, :], log_s, log_pi)
    else:
        log_pi = torch.zeros(n_run, B, device=dev)
    return Rollout(log_probs, torch.stack(used), log_pi, baselines, valid, t_stop)


def reference_train_step(
    model: RAM,
    opt: torch.optim.Optimizer,
    xb: torch.Tensor,
    yb: torch.Tensor,
    loss_cfg: LossConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """`ram_train.train_step` as it was (no oracle): rollout, hybrid loss, backward, Adam."""
    ro = reference_forward(model, xb, generator=generator)
    loss, stats = hybrid_loss(ro, yb, loss_cfg, model.dynamic)
    if not torch.isfinite(loss):
        raise RuntimeError(f"the loss became {loss.item()}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {k: float(v) for k, v in stats.items()}
