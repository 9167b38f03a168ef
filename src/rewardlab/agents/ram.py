"""RAM and DT-RAM glimpse agents (Mnih et al. 2014; Li et al. 2017), as in the IRRL paper (docs/originals.md).

A retina takes one (or k multi-scale) patch around a location; a glimpse network mixes "what" and "where"; a
plain ReLU RNN integrates glimpses; a location head (on the detached state) samples where to look next from
N(mu, std^2); a baseline head (detached) predicts the return; a linear classifier reads the final state. DT-RAM
adds a stop output: it stops deterministically at the first step with stop probability > 0.5.

Speed: glimpses are gathered for the whole batch at once (all scales with one index), the two glimpse and two core
layers are fused into one matmul each, written into buffers laid out for the backward, and the backward through
time is written by hand (`_Rollout`): only dL/dh runs step by step, every weight gradient is one matmul over all
steps' rows. The buffers are reused across training steps (`_lease`). The previous, autograd version is kept in
benchmarks/ram_reference.py, and a test checks that both give the same step. The parameters keep the original's
names (`sensor.fc1`, `rnn.i2h`, `locator.fc_lt`, ...), so the paper's released checkpoints load directly
(`load_ram`).
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from rewardlab.agents.configs import MODELS, LossConfig, RAMConfig, glimpse_sizes  # noqa: F401
from rewardlab.core.modules import module_from_record, register_legacy_format, register_module
from rewardlab.core.runs import load_checkpoint
from rewardlab.errors import RewardLabError
from rewardlab.rewards.internal import internal_reward


def pad_images(x: torch.Tensor, cfg: RAMConfig) -> tuple[torch.Tensor, int]:
    """Zero-pad images once for every glimpse of a rollout; returns the padded batch and the padding."""
    pad = max(glimpse_sizes(cfg))
    return F.pad(x, (pad, pad, pad, pad)), pad


def extract_glimpses(
    xp: torch.Tensor, pad: int, loc: torch.Tensor, cfg: RAMConfig, side: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The flattened glimpse (B, k*C*g*g) at locations `loc` in [-1, 1]^2 (x first) of padded images `xp`.

    Same pixels as the original's per-sample loop: patch start = floor(0.5 * (l + 1) * side), on the image
    zero-padded by size // 2 (so the patch is centred there); larger patches are average-pooled to g x g.
    All scales' pixels are gathered with one index; `out` (B, g*g) receives a single-scale, one-channel glimpse.
    """
    B, C, Hp, Wp = xp.shape
    start = (0.5 * ((loc + 1.0) * side)).long()  # (B, 2): column, row
    idx = (start[:, 1] * Wp + start[:, 0])[:, None] + _offsets(cfg, pad, Wp, xp.device)
    sizes = glimpse_sizes(cfg)
    if C == 1:
        pix = torch.gather(xp.reshape(B, Hp * Wp), 1, idx, out=out if len(sizes) == 1 else None)
    else:
        pix = xp.reshape(B, C, Hp * Wp).gather(2, idx[:, None, :].expand(B, C, idx.shape[1]))
    if len(sizes) == 1:
        return pix.reshape(B, -1)
    parts, o = [], 0
    for size in sizes:
        patch = pix[..., o : o + size * size].reshape(B, C, size, size)
        o += size * size
        parts.append(F.avg_pool2d(patch, size // cfg.patch_size) if size != cfg.patch_size else patch)
    return torch.cat(parts, 1).reshape(B, -1)


def reference_glimpses(x: torch.Tensor, loc: torch.Tensor, cfg: RAMConfig) -> torch.Tensor:
    """The original's retina, per sample in a Python loop (pad each patch size by size // 2, slice, pool).

    Kept as the reference that the tests and `benchmarks/irrl_digits.py` compare `extract_glimpses` with.
    """
    B, C, H, W = x.shape
    start = (0.5 * ((loc + 1.0) * H)).long()
    phi = []
    for size in glimpse_sizes(cfg):
        xp = F.pad(x, (size // 2, size // 2, size // 2, size // 2))
        end = start + size
        patch = torch.stack([xp[i, :, start[i, 1] : end[i, 1], start[i, 0] : end[i, 0]] for i in range(B)])
        if size != cfg.patch_size:
            patch = F.avg_pool2d(patch, size // cfg.patch_size)
        phi.append(patch)
    return torch.cat(phi, 1).reshape(B, -1)


_OFFSETS: dict[tuple, torch.Tensor] = {}


def _offsets(cfg: RAMConfig, pad: int, width: int, device: torch.device) -> torch.Tensor:
    """Flat offsets, from a glimpse's start, of every pixel of its patches (all scales, finest first; cached)."""
    sizes = tuple(glimpse_sizes(cfg))
    key = (sizes, pad, width, str(device))
    if key not in _OFFSETS:
        grids = []
        for size in sizes:
            ar = torch.arange(size, device=device)
            off = pad - size // 2  # the patch is centred on the start in the image padded by size // 2
            grids.append((off * (width + 1) + ar[:, None] * width + ar[None, :]).reshape(-1))
        _OFFSETS[key] = torch.cat(grids)
    return _OFFSETS[key]


class _Sensor(nn.Module):
    def __init__(self, cfg: RAMConfig):
        super().__init__()
        d_in = cfg.num_patches * cfg.patch_size**2 * cfg.channels
        h_g, h_l = cfg.glimpse_hidden, cfg.loc_hidden
        self.fc1 = nn.Linear(d_in, h_g)
        self.fc2 = nn.Linear(2, h_l)
        self.fc3 = nn.Linear(h_g, h_g + h_l)
        self.fc4 = nn.Linear(h_l, h_g + h_l)


class _Core(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.i2h = nn.Linear(n, n)
        self.h2h = nn.Linear(n, n)


class _Locator(nn.Module):
    def __init__(self, n: int, out: int):
        super().__init__()
        self.fc = nn.Linear(n, n // 2)
        self.fc_lt = nn.Linear(n // 2, out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc_lt(F.relu(self.fc(h)))


class _Head(nn.Module):
    def __init__(self, n: int, out: int):
        super().__init__()
        self.fc = nn.Linear(n, out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(h)


@dataclass
class Rollout:
    """What one pass of the agent over a batch produced (T = steps run)."""

    log_probs: torch.Tensor  # (B, classes): the classification at the final (DT-RAM: stopping) step
    locations: torch.Tensor  # (T, B, 2): where each glimpse was taken (l_0 first)
    log_pi: torch.Tensor  # (T, B): log-probability of each step's action (zeros in eval mode)
    baselines: torch.Tensor  # (T, B)
    valid: torch.Tensor  # (T, B) bool: steps up to and including the stop
    t_stop: torch.Tensor  # (B,) long: the stopping step (RAM: T - 1; DT-RAM: 0..num_glimpses)


@register_module("ram")
class RAM(nn.Module):
    """RAM (cfg.model='ram') or DT-RAM (cfg.model='dtram')."""

    def __init__(self, cfg: RAMConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        n = cfg.hidden_size
        self.sensor = _Sensor(cfg)
        self.rnn = _Core(n)
        self.locator = _Locator(n, 3 if cfg.model == "dtram" else 2)
        self.baseliner = _Head(n, 1)
        self.classifier = _Head(n, cfg.num_classes)

    @property
    def dynamic(self) -> bool:
        return self.cfg.model == "dtram"

    def forward(
        self,
        x: torch.Tensor,
        l0: torch.Tensor | None = None,
        sample: bool | None = None,
        generator: torch.Generator | None = None,
        stop_early: bool = True,
        eps: torch.Tensor | None = None,
    ) -> Rollout:
        """Run the agent over images x (B, C, H, W), already normalised.

        l0: first location (default U[-1, 1]^2, as the original, also at test time); sample: draw locations from
        the policy (default: in training mode) or use its mean; eps: the standard-normal draws (T, B, 2) of the
        sampled locations (default: drawn from `generator`). No gradient flows to the images.
        """
        if x.ndim != 4 or x.shape[1] != self.cfg.channels or x.shape[2] != x.shape[3]:
            raise RewardLabError(f"RAM expects square images (B, {self.cfg.channels}, H, H), got {tuple(x.shape)}")
        if x.requires_grad and torch.is_grad_enabled():
            raise RewardLabError("RAM gives no gradient to its input images; pass x.detach()")
        sample = self.training if sample is None else sample
        B, T, dev = x.shape[0], self.cfg.num_glimpses, x.device
        if l0 is None:
            l0 = torch.rand(B, 2, device=dev, generator=generator) * 2 - 1
        if sample and eps is None:
            eps = torch.randn(T, B, 2, device=dev, generator=generator)
        s, r, lo = self.sensor, self.rnn, self.locator
        weights = (s.fc1, s.fc2, s.fc3, s.fc4, r.i2h, r.h2h, lo.fc, lo.fc_lt)
        lease = _lease(self, x)
        h_final, H, out, locs, drawn, t_stop = _Rollout.apply(
            self.cfg,
            lease,
            x,
            l0,
            eps if sample else None,
            stop_early,
            *(t for m in weights for t in (m.weight, m.bias)),
        )
        n_run = out.shape[0]
        log_probs = F.log_softmax(self.classifier(h_final), dim=1)
        baselines = self.baseliner(H).squeeze(-1)  # H: the detached states of the steps run
        steps = torch.arange(n_run, device=dev)[:, None]
        valid = steps <= t_stop[None, :]
        if sample:
            mu = torch.tanh(out[..., :2])
            log_pi = (
                -((drawn - mu) ** 2) / (2 * self.cfg.std**2) - math.log(self.cfg.std) - 0.5 * math.log(2 * math.pi)
            ).sum(-1)
            if self.dynamic:
                log_s = torch.log(torch.sigmoid(out[..., 2]).clamp(0.001, 0.999))
                log_pi = torch.where(steps == t_stop[None, :], log_s, log_pi)
        else:
            log_pi = torch.zeros(n_run, B, device=dev)
        return Rollout(log_probs, locs, log_pi, baselines, valid, t_stop)


_relu_grad = torch.ops.aten.threshold_backward.grad_input
_POOLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Workspace:
    """The buffers of one rollout and of its backward (allocated on first use)."""

    def __init__(self, key: tuple, x: torch.Tensor, cfg: RAMConfig):
        B, C, side = x.shape[0], x.shape[1], x.shape[-1]
        n, nw, n_max = cfg.hidden_size, cfg.glimpse_hidden + cfg.loc_hidden, cfg.num_glimpses + (cfg.model == "dtram")
        self.key, self.pad = key, max(glimpse_sizes(cfg))
        self.xp = x.new_zeros(B, C, side + 2 * self.pad, side + 2 * self.pad)  # the zero border is never written
        self.phi = x.new_empty(n_max, B, cfg.num_patches * cfg.patch_size**2 * C)
        self.ww = x.new_empty(n_max, B, nw)  # [what, where] after ReLU
        self.x = x.new_empty(n_max + 1, B, 2 * n)  # x[t] = [g_t, h_(t-1)] after ReLU, so x[t + 1, :, n:] = h_t
        self.x[0, :, n:] = 0
        self.a = x.new_empty(cfg.num_glimpses, B, n // 2)  # the location head's hidden layer
        self.grads: tuple[torch.Tensor, ...] | None = None

    def grad_buffers(self) -> tuple[torch.Tensor, ...]:
        if self.grads is None:
            n_max, B, n = self.ww.shape[0], self.ww.shape[1], self.x.shape[-1] // 2
            e = self.x.new_empty
            self.grads = (
                e(n_max, B, n),
                e(n_max * B, n),
                e(n_max * B, self.ww.shape[-1]),
                e(self.a.shape[0] * B, self.a.shape[-1]),
            )
        return self.grads


class _Lease:
    """A workspace lent to one rollout; back to its model's pool when the rollout's graph (and forward) let go."""

    def __init__(self, ws: _Workspace, pool: list | None):
        self.ws, self.pool = ws, pool

    def __del__(self) -> None:
        if self.pool is not None and len(self.pool) < 2:
            self.pool.append(self.ws)


def _lease(model: RAM, x: torch.Tensor) -> _Lease:
    """A workspace for a rollout over x: reused across training steps (fresh multi-megabyte buffers would cost a
    page fault per 4 KB every step); fresh, and freed after, when no graph is built."""
    key = (tuple(x.shape), x.dtype, x.device, model.cfg.num_glimpses, model.cfg.model)
    if not torch.is_grad_enabled():
        return _Lease(_Workspace(key, x, model.cfg), None)
    pool = _POOLS.setdefault(model, [])
    for i, ws in enumerate(pool):
        if ws.key == key:
            return _Lease(pool.pop(i), pool)
    return _Lease(_Workspace(key, x, model.cfg), pool)


class _Rollout(torch.autograd.Function):
    """The recurrence of glimpses with a hand-written backward through time.

    Forward: one step at a time (the next location needs this step's state), each layer one matmul written into
    buffers laid out for the backward. Backward: only dL/dh runs step by step (one B x n x n matmul per step); every
    weight gradient and the glimpse network's backward are single matmuls over all steps' T * B rows at once.
    Outputs: the classified state (the last; DT-RAM: the stopping step's), the states of the steps run (detached),
    the location head's output on each (its gradient trains only that head), the locations used, the sampled
    (unclamped) locations and t_stop.
    """

    @staticmethod
    def forward(
        ctx, cfg, lease, x, l0, eps, stop_early, w1, b1, w2, b2, w3, b3, w4, b4, wi, bi, wh, bh, wf, bf, wl, bl
    ):
        ws = lease.ws
        dynamic = cfg.model == "dtram"
        B, side, T, n, gh = x.shape[0], x.shape[-1], cfg.num_glimpses, cfg.hidden_size, cfg.glimpse_hidden
        pad, xp, X, WW, Phi, A = ws.pad, ws.xp, ws.x, ws.ww, ws.phi, ws.a
        xp[:, :, pad : pad + side, pad : pad + side] = x
        w34, b34 = torch.cat([w3, w4], 1), b3 + b4
        wr, br = torch.cat([wi, wh], 1), bi + bh
        L = x.new_empty(T + 1, B, 2)
        out = x.new_empty(T, B, wl.shape[0])
        drawn = x.new_empty(T if eps is not None else 0, B, 2)
        noise = cfg.std * eps if eps is not None else None
        single = x.shape[1] == 1 and cfg.num_patches == 1
        t_stop = torch.full((B,), T, dtype=torch.long, device=x.device)
        done = torch.zeros(B, dtype=torch.bool, device=x.device)

        # per-step views and transposed weights, made once (Python and dispatch are a fifth of the forward)
        w1t, w2t, w34t, wrt, wft, wlt = w1.t(), w2.t(), w34.t(), wr.t(), wf.t(), wl.t()
        Ls, Phis, WWs, Xs, As, outs = L.unbind(0), Phi.unbind(0), WW.unbind(0), X.unbind(0), A.unbind(0), out.unbind(0)
        whats, wheres = WW[..., :gh].unbind(0), WW[..., gh:].unbind(0)
        gs, hs = X[..., :n].unbind(0), X[..., n:].unbind(0)
        noises, drawns = (noise.unbind(0), drawn.unbind(0)) if noise is not None else (None, None)

        def glimpse(t: int) -> torch.Tensor:
            loc = Ls[t]
            phi = extract_glimpses(xp, pad, loc, cfg, side, out=Phis[t] if single else None)
            if not single:
                Phis[t].copy_(phi)
            torch.addmm(b1, Phis[t], w1t, out=whats[t])
            torch.addmm(b2, loc, w2t, out=wheres[t])
            WWs[t].relu_()
            torch.addmm(b34, WWs[t], w34t, out=gs[t]).relu_()
            return torch.addmm(br, Xs[t], wrt, out=hs[t + 1]).relu_()

        Ls[0].copy_(l0)
        n_run = 0
        for t in range(T):
            h = glimpse(t)
            n_run = t + 1
            a = torch.addmm(bf, h, wft, out=As[t]).relu_()
            o = torch.addmm(bl, a, wlt, out=outs[t])
            mu = torch.tanh(o[:, :2])
            if dynamic:
                stop = torch.sigmoid(o[:, 2]).clamp(0.001, 0.999) > 0.5
                t_stop = torch.where(stop & ~done, torch.full_like(t_stop, t), t_stop)
                done = done | stop
            if noises is not None:
                torch.clamp(torch.add(mu, noises[t], out=drawns[t]), -1.0, 1.0, out=Ls[t + 1])
            else:
                Ls[t + 1].copy_(mu)
            if dynamic and stop_early and bool(done.all()):
                break
        n_all = n_run
        if dynamic and not bool(done.all()):
            glimpse(n_run)  # a final glimpse for those that never stopped
            n_all += 1
        H = X[1 : n_all + 1, :, n:]
        if dynamic:
            h_final = H[t_stop, torch.arange(B, device=x.device)]
        else:
            t_stop = torch.full((B,), T - 1, dtype=torch.long, device=x.device)
            h_final = H[T - 1].clone()
        ctx.lease, ctx.dims, ctx.t_stop, ctx.locs = lease, (n_all, n_run, gh, n, dynamic), t_stop, L[:n_all]
        ctx.weights = (w34, wi, wh, wl)
        states, locs, drawn = H[:n_run], L[:n_run], drawn[:n_run]
        ctx.mark_non_differentiable(states, locs, drawn, t_stop)
        ctx.set_materialize_grads(False)  # no zero-filled gradient for the detached states
        return h_final, states, out[:n_run], locs, drawn, t_stop

    @staticmethod
    def backward(ctx, d_final, _dH, d_out, *_):
        n_all, n_run, gh, n, dynamic = ctx.dims
        w34, wi, wh, wl = ctx.weights
        ws = ctx.lease.ws
        dP, dG, dWW, dA = ws.grad_buffers()
        B = ws.x.shape[1]
        X, WW, Phi, A = ws.x[:n_all], ws.ww[:n_all], ws.phi[:n_all], ws.a[:n_run]
        H = ws.x[1 : n_all + 1, :, n:]
        # back through time: only dL/dh_t is sequential
        dP, dG, dWW, dA = dP[:n_all], dG[: n_all * B], dWW[: n_all * B], dA[: n_run * B]
        if d_final is None:
            d_final = H.new_zeros(H.shape[1:])
        stop_at = (lambda t: (ctx.t_stop == t).to(d_final.dtype)[:, None]) if dynamic else None
        dh = d_final * stop_at(n_all - 1) if dynamic else d_final
        for t in range(n_all - 1, -1, -1):
            _relu_grad(dh, H[t], 0, grad_input=dP[t])
            if t > 0:
                dh = torch.addmm(d_final * stop_at(t - 1), dP[t], wh) if dynamic else torch.mm(dP[t], wh)
        flat = lambda v: v.reshape(-1, v.shape[-1])  # noqa: E731
        dP = flat(dP)
        dwr, dbr = dP.t() @ flat(X), dP.sum(0)
        _relu_grad(torch.mm(dP, wi, out=dG), flat(X[..., :n]), 0, grad_input=dG)
        dw34, db34 = dG.t() @ flat(WW), dG.sum(0)
        _relu_grad(torch.mm(dG, w34, out=dWW), flat(WW), 0, grad_input=dWW)
        dw1, db1 = dWW[:, :gh].t() @ flat(Phi), dWW[:, :gh].sum(0)
        dw2, db2 = dWW[:, gh:].t() @ flat(ctx.locs), dWW[:, gh:].sum(0)
        out = (dw1, db1, dw2, db2, dw34[:, :gh], db34, dw34[:, gh:], db34, dwr[:, :n], dbr, dwr[:, n:], dbr)
        if d_out is None:
            return (None,) * 6 + out + (None,) * 4
        # the location head, on the detached states
        dO, A = flat(d_out), flat(A)
        dwl, dbl = dO.t() @ A, dO.sum(0)
        _relu_grad(torch.mm(dO, wl, out=dA), A, 0, grad_input=dA)
        dwf, dbf = dA.t() @ flat(H[:n_run]), dA.sum(0)
        return (None,) * 6 + out + (dwf, dbf, dwl, dbl)


def hybrid_loss(
    ro: Rollout,
    y: torch.Tensor,
    cfg: LossConfig,
    dynamic: bool,
    reward_log_probs: torch.Tensor | None = None,
    batch_total: int | None = None,
    valid_total: int | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """NLL + baseline MSE + weight * REINFORCE for a training rollout.

    reward_log_probs: where the reward's classifier differs from the one trained (reward hacking with an oracle),
    its log q over the same glimpses. batch_total / valid_total: when this rollout is one shard of a batch, the
    whole batch's size and (DT-RAM) number of valid steps, so that the shards' losses sum to the batch's loss.
    """
    src = ro.log_probs if reward_log_probs is None else reward_log_probs
    log_q_true = src.gather(1, y[:, None]).squeeze(1)
    correct = src.argmax(1) == y
    r = internal_reward(log_q_true, correct, cfg.reward, cfg.prior)
    if cfg.detach_reward:
        r = r.detach()
    if dynamic:
        r = r * cfg.latency_discount ** ro.t_stop.to(r.dtype)
    validf = ro.valid.to(r.dtype)
    R = r[None, :] * validf  # (T, B)
    b = ro.baselines * validf
    n = batch_total or len(y)
    nll = F.nll_loss(ro.log_probs, y, reduction="sum") / n
    if dynamic:
        mse = ((b - R) ** 2).sum() / (valid_total or validf.sum())
    else:
        mse = ((b - R) ** 2).sum() / (b.shape[0] * n)
    reinforce = (-(ro.log_pi * validf) * (R - b.detach())).sum() / n
    loss = nll + cfg.baseline_weight * mse + cfg.reinforce_weight * reinforce
    acc = (ro.log_probs.argmax(1) == y).float().mean()
    stats = {
        "loss": loss.detach(),
        "nll": nll.detach(),
        "baseline_mse": mse.detach(),
        "reinforce": reinforce.detach(),
        "reward": r.detach().mean(),
        "accuracy": acc,
        "steps": ro.t_stop.float().mean() + 1,
    }  # loss terms are this shard's share; the rest are its means
    return loss, stats


class Oracle(nn.Module):
    """A converged agent's glimpse network, core and classifier, re-encoding the glimpses another agent chose.

    Frozen by default (eval mode, no gradients, outside any optimiser). `drift=True` reproduces the original:
    the classifier stays trainable, so a non-detached reward pushes it around.
    """

    def __init__(self, source: RAM, drift: bool = False):
        super().__init__()
        import copy

        if source.dynamic:
            raise RewardLabError("the oracle must be a RAM checkpoint (model=ram), not DT-RAM")
        self.cfg = source.cfg
        self.sensor = copy.deepcopy(source.sensor)
        self.rnn = copy.deepcopy(source.rnn)
        self.classifier = copy.deepcopy(source.classifier)
        self.drift = drift
        for p in self.parameters():
            p.requires_grad_(False)
        if drift:
            for p in self.classifier.parameters():
                p.requires_grad_(True)
        self.eval()

    def forward(self, x: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """log q_oracle(. | glimpses at `locations` (T, B, 2)) for images x."""
        T, B, _ = locations.shape
        side = x.shape[-1]
        with torch.no_grad():
            xp, pad = pad_images(x, self.cfg)
            s, r = self.sensor, self.rnn
            locs = locations.detach().reshape(T * B, 2)
            xrep = xp.unsqueeze(0).expand(T, *xp.shape).reshape(T * B, *xp.shape[1:])
            phi = extract_glimpses(xrep, pad, locs, self.cfg, side)
            g = F.relu(s.fc3(F.relu(s.fc1(phi))) + s.fc4(F.relu(s.fc2(locs))))
            gi = r.i2h(g).reshape(T, B, -1)
            h = x.new_zeros(B, self.cfg.hidden_size)
            for t in range(T):
                h = F.relu(gi[t] + r.h2h(h))
        return F.log_softmax(self.classifier(h), dim=1)


# RAM checkpoints written before the one module format: {"kind": "rewardlab.ram", "spec": asdict(RAMConfig)}.
register_legacy_format("rewardlab.ram", lambda ckpt: ("ram", {"cfg": dict(ckpt.get("spec", {}))}))


def load_ram(path: str | os.PathLike, map_location: Any = "cpu", expect: RAMConfig | None = None) -> tuple[RAM, dict]:
    """Load a RAM / DT-RAM checkpoint: ours, or the IRRL paper's original format (`model_state`, ...).

    An original checkpoint's architecture is read from its tensors (patch size, patches, sizes, RAM or DT-RAM).
    `expect`, when given, must match the checkpoint's architecture.
    """
    path = Path(path)
    state = load_checkpoint(path, map_location="cpu")
    if "model_state" in state:  # the paper's format
        model = RAM(_infer_original(state["model_state"], path))
        meta = {
            "source": "original IRRL checkpoint",
            "epoch": state.get("epoch"),
            "best_valid_acc": state.get("best_valid_acc"),
        }
    elif "state_dict" in state:  # ours (rewardlab.core.modules), in this format or an older one
        model, meta = module_from_record(state, f"checkpoint '{path}'", expect=RAM)
    else:
        raise RewardLabError(f"checkpoint '{path}' is not a RAM checkpoint (no model weights in it)")
    if expect is not None and asdict(expect) != asdict(model.cfg):
        raise RewardLabError(
            f"checkpoint '{path}' holds a different architecture ({asdict(model.cfg)}) "
            f"from the one configured ({asdict(expect)})"
        )
    if "model_state" in state:
        try:
            model.load_state_dict(state["model_state"])
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise RewardLabError(
                f"checkpoint '{path}' does not fit a RAM of its stated architecture ({first})"
            ) from None
    return model.to(map_location), meta


def _infer_original(w: dict[str, torch.Tensor], path: Path) -> RAMConfig:
    need = ["sensor.fc1.weight", "sensor.fc2.weight", "rnn.h2h.weight", "locator.fc_lt.weight", "classifier.fc.weight"]
    if any(k not in w for k in need):
        raise RewardLabError(f"checkpoint '{path}' is not a RAM checkpoint (missing {[k for k in need if k not in w]})")
    d_in = w["sensor.fc1.weight"].shape[1]
    patch = int(round(math.sqrt(d_in)))
    if patch * patch != d_in:
        raise RewardLabError(
            f"checkpoint '{path}': a glimpse input of {d_in} values is not one square patch; "
            "load multi-patch originals by giving their RAMConfig"
        )
    return RAMConfig(
        model="dtram" if w["locator.fc_lt.weight"].shape[0] == 3 else "ram",
        patch_size=patch,
        num_patches=1,
        glimpse_hidden=w["sensor.fc1.weight"].shape[0],
        loc_hidden=w["sensor.fc2.weight"].shape[0],
        hidden_size=w["rnn.h2h.weight"].shape[0],
        num_classes=w["classifier.fc.weight"].shape[0],
    )
