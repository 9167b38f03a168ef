"""The high-level SAC update as it was before issue 19 (commit f37153e), kept as the reference that
`python -m benchmarks ptgm` measures the current update against and that tests/test_ptgm.py checks it computes the
same as."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rewardlab.agents.configs import HLSACConfig
from rewardlab.agents.hl_sac import Critic
from rewardlab.agents.ptgm import GoalMLP
from rewardlab.core.modules import module_record, module_weights


class RefReplay:
    """The replay as it was before issue 19: one tensor per field, seven gathers per batch."""

    def __init__(self, capacity: int, obs_dim: int, n: int):
        self.cap, self.size, self.ptr = capacity, 0, 0
        self.s = torch.zeros(capacity, obs_dim)
        self.s2 = torch.zeros(capacity, obs_dim)
        self.i = torch.zeros(capacity, dtype=torch.long)
        self.r = torch.zeros(capacity)
        self.d = torch.zeros(capacity)
        self.lp = torch.zeros(capacity, n)  # log prior(. | s)
        self.lp2 = torch.zeros(capacity, n)  # log prior(. | s')

    FIELDS = ("s", "s2", "i", "r", "d", "lp", "lp2")

    def add(self, **batch: torch.Tensor) -> None:
        m = len(batch["s"])
        idx = (self.ptr + torch.arange(m)) % self.cap
        for k in self.FIELDS:
            getattr(self, k)[idx] = batch[k].to(getattr(self, k).dtype)
        self.ptr = (self.ptr + m) % self.cap
        self.size = min(self.size + m, self.cap)

    def sample(self, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.size, (batch,), generator=gen)
        return {k: getattr(self, k)[idx] for k in self.FIELDS}

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "ptr": self.ptr, **{k: getattr(self, k)[: self.size].clone() for k in self.FIELDS}}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.size, self.ptr = st["size"], st["ptr"]
        for k in self.FIELDS:
            getattr(self, k)[: self.size] = st[k]


class RefHighLevelSAC:
    """The high-level learner as rewardlab had it before issue 19: two critic modules, three backward passes,
    per-tensor Adam, a float per metric every update."""

    def __init__(self, cfg: HLSACConfig, prior: GoalMLP, obs_dim: int, seed: int = 0):
        torch.manual_seed(seed)
        self.cfg = cfg
        self.n = prior.dims["out_dim"]
        self.prior = copy.deepcopy(prior).eval().requires_grad_(False)
        if cfg.use_prior:
            self.policy = copy.deepcopy(prior)
        else:
            self.policy = GoalMLP(obs_dim, self.n, prior.dims["hidden"], prior.dims["blocks"])
        self.policy.requires_grad_(True).eval()  # BatchNorm stays in eval mode (the prior's running statistics)
        self.q1 = Critic(obs_dim, self.n, cfg.critic_hidden, cfg.critic_layers)
        self.q2 = Critic(obs_dim, self.n, cfg.critic_hidden, cfg.critic_layers)
        self.q1t, self.q2t = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        for t in (self.q1t, self.q2t):
            t.requires_grad_(False)
        self.log_alpha = torch.tensor(float(cfg.init_log_alpha), requires_grad=True)
        self.opt_pi = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)
        self.opt_q = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=cfg.lr)
        self.opt_alpha = torch.optim.Adam([self.log_alpha], lr=cfg.lr)
        self.target = cfg.target_divergence if cfg.use_prior else (1 - cfg.target_entropy_ratio) * float(np.log(self.n))
        self.updates = 0

    @torch.no_grad()
    def prior_logp(self, s: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.prior(s), dim=-1)

    def divergence(self, logits: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
        """D(s) for a batch: KL(prior || pi) clamped to +-100 (with the prior), else log N - H(pi)."""
        pi = F.softmax(logits, dim=-1)
        if self.cfg.use_prior:
            p = log_prior.exp()
            return (p * (log_prior - torch.log(pi + 1e-8))).sum(-1).clamp(-100, 100)
        logpi = F.log_softmax(logits, dim=-1)
        return (pi * logpi).sum(-1) + float(np.log(self.n))

    @torch.no_grad()
    def act(self, s: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return torch.multinomial(F.softmax(self.policy(s), dim=-1), 1, generator=gen).squeeze(1)

    def update(self, b: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, float]:
        cfg = self.cfg
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            logits2 = self.policy(b["s2"])
            i2 = torch.multinomial(F.softmax(logits2, dim=-1), 1, generator=gen)
            qn = torch.min(self.q1t(b["s2"]), self.q2t(b["s2"])).gather(1, i2).squeeze(1)
            y = b["r"] + cfg.gamma * (1 - b["d"]) * (qn - alpha * self.divergence(logits2, b["lp2"]))
        idx = b["i"][:, None]
        q1, q2 = self.q1(b["s"]), self.q2(b["s"])
        q_loss = (
            0.5 * ((q1.gather(1, idx).squeeze(1) - y) ** 2).mean()
            + 0.5 * ((q2.gather(1, idx).squeeze(1) - y) ** 2).mean()
        )
        self.opt_q.zero_grad(set_to_none=True)
        q_loss.backward()
        nn.utils.clip_grad_norm_(self.q1.parameters(), cfg.grad_clip)
        nn.utils.clip_grad_norm_(self.q2.parameters(), cfg.grad_clip)
        self.opt_q.step()
        qmin = torch.min(q1, q2).detach()
        logits = self.policy(b["s"])
        div = self.divergence(logits, b["lp"])
        pi_loss = (-(F.softmax(logits, dim=-1) * qmin).sum(-1) + alpha * div).mean()
        self.opt_pi.zero_grad(set_to_none=True)
        pi_loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip)
        self.opt_pi.step()
        a_loss = self.log_alpha.exp() * (self.target - div.detach()).mean()
        self.opt_alpha.zero_grad(set_to_none=True)
        a_loss.backward()
        self.opt_alpha.step()
        with torch.no_grad():
            for net, tgt in ((self.q1, self.q1t), (self.q2, self.q2t)):
                for p, pt in zip(net.parameters(), tgt.parameters()):
                    pt.lerp_(p, cfg.tau)
        self.updates += 1
        return {
            "q_loss": float(q_loss.detach()),
            "pi_loss": float(pi_loss.detach()),
            "divergence": float(div.detach().mean()),
            "alpha": float(alpha),
            "q": float(qmin.mean()),
        }

    def state_dict(self) -> dict[str, Any]:
        """Policy and critics as module records (rewardlab.core.modules), optimisers, temperature, update count."""
        return (
            {k: module_record(getattr(self, k)) for k in ("policy", "q1", "q2", "q1t", "q2t")}
            | {k: getattr(self, k).state_dict() for k in ("opt_pi", "opt_q", "opt_alpha")}
            | {"log_alpha": self.log_alpha.detach(), "updates": self.updates}
        )

    def load_state_dict(self, st: dict[str, Any]) -> None:
        for k in ("policy", "q1", "q2", "q1t", "q2t"):
            getattr(self, k).load_state_dict(module_weights(st[k]))
        for k in ("opt_pi", "opt_q", "opt_alpha"):
            getattr(self, k).load_state_dict(st[k])
        with torch.no_grad():
            self.log_alpha.copy_(st["log_alpha"])
        self.updates = st["updates"]
