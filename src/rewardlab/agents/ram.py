"""RAM and DT-RAM glimpse agents (Mnih et al. 2014; Li et al. 2017), as in the IRRL paper (docs/originals.md).

A retina takes one (or k multi-scale) patch around a location; a glimpse network mixes "what" and "where"; a
plain ReLU RNN integrates glimpses; a location head (on the detached state) samples where to look next from
N(mu, std^2); a baseline head (detached) predicts the return; a linear classifier reads the final state. DT-RAM
adds a stop output: it stops deterministically at the first step with stop probability > 0.5.

Speed: glimpses are gathered for the whole batch at once, the two glimpse and two core layers are fused into one
matmul each, and the location and baseline heads, which see only the detached state, run once over all steps
after the recurrence instead of inside it. The parameters keep the original's names (`sensor.fc1`, `rnn.i2h`,
`locator.fc_lt`, ...), so the paper's released checkpoints load directly (`load_ram`).
"""

from __future__ import annotations

import math
import os
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


def extract_glimpses(xp: torch.Tensor, pad: int, loc: torch.Tensor, cfg: RAMConfig, side: int) -> torch.Tensor:
    """The flattened glimpse (B, k*C*g*g) at locations `loc` in [-1, 1]^2 (x first) of padded images `xp`.

    Same pixels as the original's per-sample loop: patch start = floor(0.5 * (l + 1) * side), on the image
    zero-padded by size // 2 (so the patch is centred there); larger patches are average-pooled to g x g.
    """
    B, C, Hp, Wp = xp.shape
    start = (0.5 * ((loc + 1.0) * side)).long()  # (B, 2): column, row
    flat = xp.reshape(B, C * Hp * Wp) if C == 1 else xp.reshape(B, C, Hp * Wp)
    g = cfg.patch_size
    parts = []
    for size in glimpse_sizes(cfg):
        off = pad - size // 2
        base = (start[:, 1] + off) * Wp + (start[:, 0] + off)  # (B,) flat index of the patch's corner
        idx = base[:, None] + _grid(size, Wp, xp.device)
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


_GRIDS: dict[tuple[int, int, str], torch.Tensor] = {}


def _grid(size: int, width: int, device: torch.device) -> torch.Tensor:
    """Flat offsets of a size x size patch in rows of `width` pixels (cached)."""
    key = (size, width, str(device))
    if key not in _GRIDS:
        ar = torch.arange(size, device=device)
        _GRIDS[key] = (ar[:, None] * width + ar[None, :]).reshape(-1)
    return _GRIDS[key]


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

    def _fused(self) -> tuple[torch.Tensor, ...]:
        s, r = self.sensor, self.rnn
        return (
            torch.cat([s.fc3.weight, s.fc4.weight], 1),
            s.fc3.bias + s.fc4.bias,
            torch.cat([r.i2h.weight, r.h2h.weight], 1),
            r.i2h.bias + r.h2h.bias,
        )

    def _step(
        self, xp: torch.Tensor, pad: int, side: int, loc: torch.Tensor, h: torch.Tensor, fused: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        w34, b34, wr, br = fused
        phi = extract_glimpses(xp, pad, loc, self.cfg, side)
        what = F.relu(self.sensor.fc1(phi))
        where = F.relu(self.sensor.fc2(loc))
        g = F.relu(F.linear(torch.cat([what, where], 1), w34, b34))
        return F.relu(F.linear(torch.cat([g, h], 1), wr, br))

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
        sampled locations (default: drawn from `generator`).
        """
        if x.ndim != 4 or x.shape[1] != self.cfg.channels or x.shape[2] != x.shape[3]:
            raise RewardLabError(f"RAM expects square images (B, {self.cfg.channels}, H, H), got {tuple(x.shape)}")
        sample = self.training if sample is None else sample
        B, side, T, dev = x.shape[0], x.shape[-1], self.cfg.num_glimpses, x.device
        if l0 is None:
            l0 = torch.rand(B, 2, device=dev, generator=generator) * 2 - 1
        if sample and eps is None:
            eps = torch.randn(T, B, 2, device=dev, generator=generator)
        xp, pad = pad_images(x, self.cfg)
        fused = self._fused()
        h = x.new_zeros(B, self.cfg.hidden_size)
        loc = l0
        hs, used, drawn = [], [], []
        t_stop = torch.full((B,), T, dtype=torch.long, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        for t in range(T):
            used.append(loc)
            h = self._step(xp, pad, side, loc, h, fused)
            hs.append(h)
            with torch.no_grad():
                out = self.locator(h)
                mu = torch.tanh(out[:, :2])
                if self.dynamic:
                    stop = torch.sigmoid(out[:, 2]).clamp(0.001, 0.999) > 0.5
                    t_stop = torch.where(stop & ~done, torch.full_like(t_stop, t), t_stop)
                    done = done | stop
            if sample:
                raw = mu + self.cfg.std * eps[t]
                drawn.append(raw)
                loc = raw.clamp(-1.0, 1.0)
            else:
                loc = mu
            if self.dynamic and stop_early and bool(done.all()):
                break
        n_run = len(hs)
        H = torch.stack(hs)  # (n_run, B, n)
        if self.dynamic and not bool(done.all()):
            hs.append(self._step(xp, pad, side, loc, h, fused))  # a final glimpse for those that never stopped
            H_all = torch.stack(hs)
        else:
            H_all = H
        if not self.dynamic:
            t_stop = torch.full((B,), T - 1, dtype=torch.long, device=dev)
        h_final = H_all[t_stop, torch.arange(B, device=dev)]
        log_probs = F.log_softmax(self.classifier(h_final), dim=1)
        Hd = H.detach()
        out = self.locator(Hd)  # (n_run, B, 2 or 3), with gradients for the policy
        baselines = self.baseliner(Hd).squeeze(-1)
        steps = torch.arange(n_run, device=dev)[:, None]
        valid = steps <= t_stop[None, :]
        if sample:
            mu = torch.tanh(out[..., :2])
            raw = torch.stack(drawn)
            log_pi = (
                -((raw - mu) ** 2) / (2 * self.cfg.std**2) - math.log(self.cfg.std) - 0.5 * math.log(2 * math.pi)
            ).sum(-1)
            if self.dynamic:
                log_s = torch.log(torch.sigmoid(out[..., 2]).clamp(0.001, 0.999))
                log_pi = torch.where(steps == t_stop[None, :], log_s, log_pi)
        else:
            log_pi = torch.zeros(n_run, B, device=dev)
        return Rollout(log_probs, torch.stack(used), log_pi, baselines, valid, t_stop)


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
