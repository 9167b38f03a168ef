"""PTGM's high level: discrete SAC over goal codes, regularised towards the goal prior (docs/originals.md, PTGM).

Every `k` environment steps the high-level policy pi(i | s) picks a code i; the frozen low-level policy then acts for
`k` steps towards the code's goal features, and the high-level reward is the sum of those steps' rewards. With the
prior (PTGM), the policy starts as a copy of the prior (its BatchNorm kept in eval mode) and the divergence
D(s) = KL(prior(.|s) || pi(.|s)) (clamped to +-100) takes the place of the entropy; alpha is tuned towards a target
divergence of 5. Twin critics map s to Q-values over all codes; targets use one sampled next code,
y = r + gamma (1 - d) [min_j Qbar_j(s', i') - alpha D(s')]; the policy loss is E[-sum_i pi(i|s) min_j Q_j(s, i)
+ alpha D(s)]. Without the prior (the ablation) the policy starts from scratch and D(s) = log N - H(pi(.|s)), i.e.
entropy-regularised discrete SAC, with a target entropy of `target_entropy_ratio * log N`.

The executed code is stored with its transition; `store_next_code=true` reproduces the released code, which stored
the code sampled at the next high-level step. Collection runs `n_envs` kitchens in one batch; the divergence is
computed for the whole batch at once (the original looped over samples).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rewardlab.agents.configs import HLSACConfig  # noqa: F401
from rewardlab.agents.ptgm import Codebook, GoalMLP, LowLevelPolicy
from rewardlab.core.modules import module_record, module_weights, register_module
from rewardlab.core.runs import load_checkpoint, save_checkpoint
from rewardlab.envs.mini_kitchen import BatchedMiniKitchen, KitchenSpec
from rewardlab.errors import RewardLabError


@register_module("ptgm.critic")
class Critic(nn.Sequential):
    """Q(s, .) over the N codes: an MLP with LeakyReLU(0.2) hidden layers."""

    def __init__(self, obs_dim: int, n: int, hidden: int, layers: int):
        mods: list[nn.Module] = [nn.Linear(obs_dim, hidden), nn.LeakyReLU(0.2)]
        for _ in range(layers):
            mods += [nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)]
        mods.append(nn.Linear(hidden, n))
        super().__init__(*mods)


class Replay:
    """Uniform replay of high-level transitions in preallocated tensors (the prior's log-probs cached)."""

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


class HighLevelSAC:
    """The high-level learner: policy over codes, twin critics with targets, temperature."""

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


class Hierarchy:
    """Runs the two levels in a batch of kitchens: a code every k steps, low-level actions towards its goal."""

    def __init__(self, low: LowLevelPolicy, codebook: Codebook, k: int, low_deterministic: bool = False):
        self.low = low.eval()
        self.codes = torch.as_tensor(codebook.features, dtype=torch.float32)
        self.k = k
        self.low_det = low_deterministic

    def run_code(
        self,
        env: BatchedMiniKitchen,
        obs: np.ndarray,
        code: torch.Tensor,
        gen: torch.Generator,
        active: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """Execute one high-level step in every active kitchen. Returns next obs, summed reward, terminated,
        truncated (per kitchen, each ending the step early for that kitchen), and environment steps taken."""
        n = env.n
        active = np.ones(n, dtype=bool) if active is None else active.copy()
        goal = self.codes[code]
        r_sum = np.zeros(n)
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        steps = 0
        for _ in range(self.k):
            a = self.low.act(torch.as_tensor(obs), goal, gen, self.low_det).numpy()
            obs, r, te, tr = env.step(a, active)
            r_sum += r * active
            steps += int(active.sum())
            term |= active & te
            trunc |= active & tr
            active &= ~(te | tr)
            if not active.any():
                break
        return obs, r_sum, term, trunc, steps


@torch.no_grad()
def code_reach(
    hier: Hierarchy,
    spec: KitchenSpec,
    target: str,
    opened: tuple[str, ...] = (),
    kitchens: int = 50,
    hl_steps: int = 6,
    seed: int = 0,
) -> np.ndarray:
    """For every code: the fraction of `kitchens` in which holding that code for `hl_steps` high-level steps
    completes `target`, starting from kitchens whose `opened` objects are already fully open. Shape (N codes,).
    Tells whether the low level can reach a subtask at all from a given situation, whatever the high level does."""
    from rewardlab.envs.mini_kitchen import OBJECTS

    for o in (target, *opened):
        if o not in OBJECTS:
            raise RewardLabError(f"unknown object '{o}'; choose from {', '.join(OBJECTS)}")
    n_codes = hier.codes.shape[0]
    env = BatchedMiniKitchen(n_codes * kitchens, spec, seed=seed)
    for o in opened:
        env.q[:, OBJECTS.index(o)] = 1.0
        if o in spec.tasks:
            env.remaining[:, spec.tasks.index(o)] = False
    code = torch.arange(n_codes).repeat_interleave(kitchens)
    gen = torch.Generator().manual_seed(seed)
    obs = env.obs()
    for _ in range(hl_steps):
        obs, *_ = hier.run_code(env, obs, code, gen)
    reached = np.abs(1.0 - env.q[:, OBJECTS.index(target)]) < spec.threshold
    return reached.reshape(n_codes, kitchens).mean(1)


@torch.no_grad()
def rollout(agent: HighLevelSAC, hier: Hierarchy, spec: KitchenSpec, episodes: int, seed: int) -> BatchedMiniKitchen:
    """Run `episodes` stochastic episodes at once; returns the kitchens at the end of their episodes."""
    env = BatchedMiniKitchen(episodes, spec, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    obs = env.obs()
    alive = np.ones(episodes, dtype=bool)
    while alive.any():
        code = agent.act(torch.as_tensor(obs), gen)
        obs, _, te, tr, _ = hier.run_code(env, obs, code, gen, alive)
        alive &= ~(te | tr)
    return env


def evaluate(agent: HighLevelSAC, hier: Hierarchy, spec: KitchenSpec, episodes: int, seed: int) -> np.ndarray:
    """Subtasks completed in `episodes` stochastic episodes, all run at once."""
    return rollout(agent, hier, spec, episodes, seed).completed().astype(np.float64)


def train_hl(
    cfg: HLSACConfig,
    low: LowLevelPolicy,
    prior: GoalMLP,
    codebook: Codebook,
    spec: KitchenSpec,
    out: Path,
    seed: int,
    log: Callable[[int, dict[str, float]], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train the high level for `cfg.env_steps` environment steps (after the warm-up), evaluating every
    `eval_every`; checkpoints `out/hl_sac.pt` at each evaluation and resumes from it (episodes in flight restart).
    Returns the evaluation history: env steps and mean subtasks completed."""
    if prior.dims["in_dim"] != low.obs_dim:
        raise RewardLabError("the prior and the low-level policy were trained on observations of different widths")
    agent = HighLevelSAC(cfg, prior, low.obs_dim, seed)
    hier = Hierarchy(low, codebook, cfg.k, cfg.low_deterministic)
    # high-level transitions: about env_steps / k, plus one short step per episode (the buffer wraps if exceeded)
    needed = cfg.warmup + 2 * (cfg.env_steps // cfg.k) + 2 * cfg.n_envs
    replay = Replay(min(cfg.buffer, needed), low.obs_dim, agent.n)
    gen = torch.Generator().manual_seed(seed)
    env = BatchedMiniKitchen(cfg.n_envs, spec, seed=seed)
    ckpt = out / "hl_sac.pt"
    st: dict[str, Any] = {"env_steps": 0, "transitions": 0, "history": [], "seconds": 0.0, "episodes": []}
    if ckpt.exists():
        saved = load_checkpoint(ckpt)
        agent.load_state_dict(saved["agent"])
        replay.load_state_dict(saved["replay"])
        gen.set_state(saved["gen"])
        st = saved["progress"]
        env.rng = np.random.default_rng(seed + 7919 * (st["env_steps"] + 1))
    out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        save_checkpoint(
            ckpt,
            {
                "agent": agent.state_dict(),
                "replay": replay.state_dict(),
                "gen": gen.get_state(),
                "progress": st,
                "seed": seed,
            },
        )

    def do_eval() -> None:
        done = evaluate(agent, hier, spec, cfg.eval_episodes, seed=10_000 + seed)
        st["history"].append({"env_steps": st["env_steps"], "subtasks": float(done.mean())})
        if log is not None:
            log(st["env_steps"], {"eval/subtasks": float(done.mean())})

    if not st["history"]:
        do_eval()
    obs = env.reset()
    pending: dict[str, torch.Tensor] | None = None  # for store_next_code
    next_eval = (st["env_steps"] // cfg.eval_every + 1) * cfg.eval_every
    budget_updates = 0.0
    stats: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    while st["env_steps"] < cfg.env_steps:
        s = torch.as_tensor(obs)
        code = agent.act(s, gen)
        if pending is not None:  # the released code's off-by-one: the new code goes with the previous transition
            pending["i"] = code
            replay.add(**pending)
            pending = None
        obs2, r, term, trunc, steps = hier.run_code(env, obs, code, gen)
        s2 = torch.as_tensor(obs2)
        item = {
            "s": s,
            "s2": s2,
            "i": code,
            "r": torch.as_tensor(r, dtype=torch.float32),
            "d": torch.as_tensor(term, dtype=torch.float32),
            "lp": agent.prior_logp(s),
            "lp2": agent.prior_logp(s2),
        }
        if cfg.store_next_code:
            pending = item
        else:
            replay.add(**item)
        st["transitions"] += cfg.n_envs
        warm = st["transitions"] <= cfg.warmup
        if not warm:
            st["env_steps"] += steps
            budget_updates += cfg.updates_per_transition * cfg.n_envs
            while budget_updates >= 1 and replay.size >= cfg.batch:
                for k_, v in agent.update(replay.sample(cfg.batch, gen), gen).items():
                    stats.setdefault(k_, []).append(v)
                budget_updates -= 1
            if progress is not None:
                progress(steps)
        ended = term | trunc
        if ended.any():
            if not warm:
                st["episodes"].extend(env.completed()[ended].tolist())
            obs2 = env.reset(ended)
        obs = obs2
        if st["env_steps"] >= next_eval or st["env_steps"] >= cfg.env_steps:
            st["seconds"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            do_eval()
            if log is not None and stats:
                row = {f"train/{k_}": float(np.mean(v)) for k_, v in stats.items()}
                recent = st["episodes"][-50:]
                if recent:
                    row["train/episode_subtasks"] = float(np.mean(recent))
                log(st["env_steps"], row)
            stats = {}
            next_eval = (st["env_steps"] // cfg.eval_every + 1) * cfg.eval_every
            save()
    if not ckpt.exists():
        save()
    return {
        "history": st["history"],
        "env_steps": st["env_steps"],
        "updates": agent.updates,
        "seconds": st["seconds"],
        "final_subtasks": st["history"][-1]["subtasks"],
    }
