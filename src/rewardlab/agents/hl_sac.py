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
computed for the whole batch at once (the original looped over samples). The twin critics (and their targets) live in
one flat parameter each, every layer one batched matmul for both, with the critic's backward pass written out; an
update runs one autograd pass (policy and temperature) and no host synchronisation (issue 19; benchmarks/ptgm.py
measures it against the update as it was, kept in benchmarks/ref_hl_sac.py).

Devices: the learner, the replay buffer, the low-level policy and every torch Generator live on the training device
(`device`; the nets are built on the CPU, so a seed gives the same initial weights on any device); the kitchens stay
numpy on the CPU, observations go to the device and low-level actions come back once per environment step.
Checkpoints hold CPU tensors and load on any device (a generator's state continues only on the kind of device that
drew it; elsewhere it is reseeded).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from rewardlab.agents.configs import HLSACConfig  # noqa: F401
from rewardlab.agents.ptgm import Codebook, GoalMLP, LowLevelPolicy, generator_state, restore_generator, to_cpu
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
    """Uniform replay of high-level transitions (the prior's log-probs cached), every field a column block of one
    preallocated float tensor on `device`, so that a batch is one gather (the code index is stored as a float: exact
    below 2^24); `sample` draws with a generator on that device."""

    FIELDS = ("s", "s2", "i", "r", "d", "lp", "lp2")

    def __init__(self, capacity: int, obs_dim: int, n: int, device: str | torch.device = "cpu"):
        self.cap, self.size, self.ptr = capacity, 0, 0
        widths = {"s": obs_dim, "s2": obs_dim, "i": 1, "r": 1, "d": 1, "lp": n, "lp2": n}  # lp: log prior(. | s)
        self.cols: dict[str, slice | int] = {}
        c = 0
        for k in self.FIELDS:
            self.cols[k] = c if widths[k] == 1 else slice(c, c + widths[k])
            c += widths[k]
        self.buf = torch.zeros(capacity, c, device=device)

    def __getattr__(self, k: str) -> torch.Tensor:
        if k in Replay.FIELDS:
            col = self.buf[:, self.cols[k]]
            return col.long() if k == "i" else col
        raise AttributeError(k)

    def add(self, **batch: torch.Tensor) -> None:
        m = len(batch["s"])
        idx = (self.ptr + torch.arange(m, device=self.buf.device)) % self.cap
        for k in self.FIELDS:
            self.buf[idx, self.cols[k]] = batch[k].to(self.buf.device, self.buf.dtype)
        self.ptr = (self.ptr + m) % self.cap
        self.size = min(self.size + m, self.cap)

    def sample(self, batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        rows = self.buf[torch.randint(self.size, (batch,), generator=gen, device=self.buf.device)]
        return {k: rows[:, c].long() if k == "i" else rows[:, c] for k, c in self.cols.items()}

    def state_dict(self) -> dict[str, Any]:
        """Each field as its own CPU tensor (the code index as int64), as before the fields shared one tensor."""
        return {
            "size": self.size,
            "ptr": self.ptr,
            **{k: getattr(self, k)[: self.size].to("cpu", copy=True) for k in self.FIELDS},
        }

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.size, self.ptr = st["size"], st["ptr"]
        for k in self.FIELDS:
            self.buf[: self.size, self.cols[k]] = st[k].to(self.buf.device, self.buf.dtype)


class CriticEnsemble(nn.Module):
    """`e` critics of the Critic's architecture in one flat parameter `flat` (e, P): critic c's layer j is the
    weight `flat[c, o_j : o_j + in * out]` viewed as (in, out) followed by its bias (out,). One batched matmul per
    layer computes every critic; clipping, Adam and the target average are one operation each on `flat`.
    `train_forward` and `backward_` are the forward and backward passes of a training step written out (no
    autograd graph); `forward` also works under autograd. Checkpoints hold each critic as its own Critic record
    (`to_critics`, `from_critics`), as they did before the critics were stacked."""

    def __init__(self, critics: Sequence[Critic]):
        super().__init__()
        lins = [[m for m in c if isinstance(m, nn.Linear)] for c in critics]
        self.e = len(lins)
        self.dims = [(m.in_features, m.out_features) for m in lins[0]]
        self.offsets = []
        off = 0
        for i, o in self.dims:
            self.offsets.append(off)
            off += i * o + o
        self.flat = nn.Parameter(torch.zeros(self.e, off))
        self.from_critics(critics)

    def layers(self, t: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight (e, in, out), bias (e, 1, out)) views of a flat (e, P) tensor, layer by layer."""
        return [
            (t[:, o : o + i * u].view(self.e, i, u), t[:, o + i * u : o + i * u + u].view(self.e, 1, u))
            for o, (i, u) in zip(self.offsets, self.dims)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Q-values of every critic: (e, batch, n)."""
        h = x.expand(self.e, *x.shape)
        views = self.layers(self.flat)
        for j, (w, b) in enumerate(views):
            h = torch.baddbmm(b, h, w)
            if j < len(views) - 1:
                h = F.leaky_relu(h, 0.2)
        return h

    @torch.no_grad()
    def train_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Q-values (e, batch, n) and every layer's input, for `backward_`."""
        h = x.expand(self.e, *x.shape)
        inputs = []
        views = self.layers(self.flat)
        for j, (w, b) in enumerate(views):
            inputs.append(h)
            h = torch.baddbmm(b, h, w)
            if j < len(views) - 1:
                F.leaky_relu_(h, 0.2)
        return h, inputs

    @torch.no_grad()
    def backward_(self, inputs: list[torch.Tensor], grad_q: torch.Tensor) -> None:
        """Write d loss / d flat into `flat.grad`, given d loss / d Q (e, batch, n) and `train_forward`'s inputs."""
        if self.flat.grad is None:
            self.flat.grad = torch.empty_like(self.flat)
        g = grad_q
        views, grads = self.layers(self.flat), self.layers(self.flat.grad)
        for j in reversed(range(len(views))):
            gw, gb = grads[j]
            torch.bmm(inputs[j].transpose(1, 2), g, out=gw)
            torch.sum(g, dim=1, keepdim=True, out=gb)
            if j:
                g = torch.bmm(g, views[j][0].transpose(1, 2))
                # LeakyReLU's gradient, from its output (positive exactly where its input was)
                g = torch.ops.aten.leaky_relu_backward(g, inputs[j], 0.2, True)

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Each critic's gradient scaled as `nn.utils.clip_grad_norm_` would scale that critic's alone."""
        norms = torch.linalg.vector_norm(self.flat.grad, dim=1)
        self.flat.grad.mul_((max_norm / (norms + 1e-6)).clamp(max=1.0)[:, None])
        return norms

    def _linear(self, t: torch.Tensor, c: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Critic c's (weight, bias) per layer from a flat (e, P) tensor, laid out as nn.Linear holds them."""
        return [(w[c].T, b[c, 0]) for w, b in self.layers(t)]

    @torch.no_grad()
    def to_critics(self, critics: Sequence[Critic]) -> None:
        """Copy the weights into `e` Critic modules."""
        for c, critic in enumerate(critics):
            lins = [m for m in critic if isinstance(m, nn.Linear)]
            for m, (w, b) in zip(lins, self._linear(self.flat, c)):
                m.weight.copy_(w)
                m.bias.copy_(b)

    @torch.no_grad()
    def from_critics(self, critics: Sequence[Critic]) -> None:
        """Copy `e` Critic modules' weights in."""
        for c, critic in enumerate(critics):
            lins = [m for m in critic if isinstance(m, nn.Linear)]
            for m, (w, b) in zip(lins, self._linear(self.flat, c)):
                w.copy_(m.weight)
                b.copy_(m.bias)

    def adam_state_to_critics(self, st: dict[str, Any]) -> dict[str, Any]:
        """An Adam state_dict over `flat` as one over `[*critic_0.parameters(), ...]` (the checkpoint's layout:
        a Critic's parameters layer by layer, weight then bias)."""
        s = st["state"].get(0)
        state: dict[int, Any] = {}
        if s is not None:
            for c in range(self.e):
                per = {k: self._linear(v, c) for k, v in s.items() if k != "step"}
                for j in range(len(self.dims)):
                    for kind in (0, 1):
                        state[c * 2 * len(self.dims) + 2 * j + kind] = {"step": s["step"].clone()} | {
                            k: v[j][kind].contiguous() for k, v in per.items()
                        }
        groups = [{**g, "params": list(range(self.e * 2 * len(self.dims))), **_PLAIN_ADAM} for g in st["param_groups"]]
        return {"state": state, "param_groups": groups}

    def adam_state_from_critics(self, st: dict[str, Any]) -> dict[str, Any]:
        """The inverse of `adam_state_to_critics`."""
        state: dict[int, Any] = {}
        n = self.e * 2 * len(self.dims)
        if all(st["state"].get(k) is not None for k in range(n)):
            first = st["state"][0]
            s = {"step": first["step"].clone()} | {k: torch.zeros_like(self.flat) for k in first if k != "step"}
            for k in s:
                if k == "step":
                    continue
                for c in range(self.e):
                    for j, (w, b) in enumerate(self._linear(s[k], c)):
                        base = c * 2 * len(self.dims) + 2 * j
                        w.copy_(st["state"][base][k])
                        b.copy_(st["state"][base + 1][k])
            state[0] = s
        return {"state": state, "param_groups": [{**g, "params": [0]} for g in st["param_groups"]]}


# the flags of the optimisers that checkpoints were written with (and that load them back as they were saved)
_PLAIN_ADAM = {"foreach": None, "fused": None}


def _adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel (one call for every tensor) where torch has it for the device, else foreach."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


def _load_adam(opt: torch.optim.Adam, st: dict[str, Any]) -> None:
    """Load a saved Adam state keeping this optimiser's kernel choice (fused or foreach)."""
    flags = [{k: g[k] for k in _PLAIN_ADAM} for g in opt.param_groups]
    opt.load_state_dict(st)
    for g, f in zip(opt.param_groups, flags):
        g.update(f)
        if g["fused"]:  # the fused kernel wants its step counts on the parameters' device (loaded: on the CPU)
            for p in g["params"]:
                state = opt.state.get(p, {})
                if "step" in state and state["step"].device != p.device:
                    state["step"] = state["step"].to(p.device)


def _save_adam(opt: torch.optim.Adam) -> dict[str, Any]:
    st = to_cpu(opt.state_dict())
    return {**st, "param_groups": [{**g, **_PLAIN_ADAM} for g in st["param_groups"]]}


class HighLevelSAC:
    """The high-level learner: policy over codes, twin critics (stacked, with stacked targets), temperature.

    One update is one forward pass of the twin critics on s (and one of their targets on s'), one backward pass for
    the critic, policy and temperature losses together (they share no parameters), and three fused Adam steps; its
    metrics stay tensors, so nothing waits on them (benchmarks/ref_hl_sac.py is the update as it was before).
    Everything lives on `device` (built on the CPU, so a seed gives the same initial weights anywhere); batches and
    generators given to `act` and `update` must be there too."""

    def __init__(
        self, cfg: HLSACConfig, prior: GoalMLP, obs_dim: int, seed: int = 0, device: str | torch.device = "cpu"
    ):
        torch.manual_seed(seed)
        self.cfg = cfg
        self.device = torch.device(device)
        self.n = prior.dims["out_dim"]
        self.prior = copy.deepcopy(prior).eval().requires_grad_(False).to(device)
        if cfg.use_prior:
            self.policy = copy.deepcopy(prior)
        else:
            self.policy = GoalMLP(obs_dim, self.n, prior.dims["hidden"], prior.dims["blocks"])
        # BatchNorm stays in eval mode (the prior's running statistics)
        self.policy = self.policy.requires_grad_(True).eval().to(device)
        # built as two Critic modules (so a seed gives the weights it always gave), then stacked; the Critic modules
        # stay on the CPU as the checkpoint's records of the two critics
        self._critics = [Critic(obs_dim, self.n, cfg.critic_hidden, cfg.critic_layers) for _ in range(2)]
        self.q = CriticEnsemble(self._critics).to(device)
        self.qt = copy.deepcopy(self.q).requires_grad_(False)
        self.log_alpha = torch.tensor(float(cfg.init_log_alpha), device=device, requires_grad=True)
        self.opt_pi = _adam(self.policy.parameters(), cfg.lr)
        self.opt_q = _adam(self.q.parameters(), cfg.lr)
        self.opt_alpha = _adam([self.log_alpha], cfg.lr)
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

    def update(self, b: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
        """One SAC update on batch `b`; returns its losses and statistics as 0-d tensors (read them when logging)."""
        cfg = self.cfg
        e, batch = self.q.e, len(b["s"])
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            logits2 = self.policy(b["s2"])
            i2 = torch.multinomial(F.softmax(logits2, dim=-1), 1, generator=gen)
            qn = self.qt(b["s2"]).gather(2, i2.expand(e, -1, -1)).amin(0).squeeze(1)
            y = b["r"] + cfg.gamma * (1 - b["d"]) * (qn - alpha * self.divergence(logits2, b["lp2"]))
            # the critics: loss sum_j 0.5 mean (Q_j(s, i) - y)^2, its gradient passed back by hand
            q, inputs = self.q.train_forward(b["s"])
            idx = b["i"].view(1, -1, 1).expand(e, -1, -1)
            err = q.gather(2, idx).squeeze(2) - y
            q_loss = 0.5 * err.pow(2).mean(1).sum()
            self.q.backward_(inputs, torch.zeros_like(q).scatter_(2, idx, (err / batch).unsqueeze(2)))
            qmin = q.amin(0)
        logits = self.policy(b["s"])
        div = self.divergence(logits, b["lp"])
        pi_loss = (-(F.softmax(logits, dim=-1) * qmin).sum(-1) + alpha * div).mean()
        a_loss = self.log_alpha.exp() * (self.target - div.detach()).mean()
        self.opt_pi.zero_grad(set_to_none=True)
        self.opt_alpha.zero_grad(set_to_none=True)
        # the policy and temperature losses share no parameters (alpha sees the divergence detached)
        (pi_loss + a_loss).backward()
        self.q.clip_grad_norm_(cfg.grad_clip)
        nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip, foreach=True)
        self.opt_q.step()
        self.opt_pi.step()
        self.opt_alpha.step()
        with torch.no_grad():
            self.qt.flat.lerp_(self.q.flat, cfg.tau)
        self.updates += 1
        return {
            "q_loss": q_loss,
            "pi_loss": pi_loss.detach(),
            "divergence": div.detach().mean(),
            "alpha": alpha,
            "q": qmin.mean(),
        }

    def state_dict(self) -> dict[str, Any]:
        """Policy and critics as module records (rewardlab.core.modules; each critic a Critic record, as before the
        critics were stacked), optimisers (the critics' over the Critic records' parameters), temperature, update
        count."""
        records = {"policy": module_record(self.policy)}
        for ens, names in ((self.q, ("q1", "q2")), (self.qt, ("q1t", "q2t"))):
            ens.to_critics(self._critics)
            for k, c in zip(names, self._critics):  # a record holds the module's tensors: copy them out
                rec = module_record(c)
                records[k] = rec | {"state_dict": {n: t.clone() for n, t in rec["state_dict"].items()}}
        return (
            records
            | {
                "opt_pi": _save_adam(self.opt_pi),
                "opt_q": to_cpu(self.q.adam_state_to_critics(self.opt_q.state_dict())),
                "opt_alpha": _save_adam(self.opt_alpha),
            }
            | {"log_alpha": self.log_alpha.detach().to("cpu", copy=True), "updates": self.updates}
        )

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.policy.load_state_dict(module_weights(st["policy"]))
        for ens, names in ((self.q, ("q1", "q2")), (self.qt, ("q1t", "q2t"))):
            for k, c in zip(names, self._critics):
                c.load_state_dict(module_weights(st[k]))
            ens.from_critics(self._critics)
        _load_adam(self.opt_pi, st["opt_pi"])
        _load_adam(self.opt_q, self.q.adam_state_from_critics(st["opt_q"]))
        _load_adam(self.opt_alpha, st["opt_alpha"])
        with torch.no_grad():
            self.log_alpha.copy_(st["log_alpha"])
        self.updates = st["updates"]


class Hierarchy:
    """Runs the two levels in a batch of kitchens: a code every k steps, low-level actions towards its goal. The
    low-level policy (moved there) and the codes live on `device`; codes and generators given to `run_code` must be
    there too. `rollout`, `evaluate` and `code_reach` run on its device."""

    def __init__(
        self,
        low: LowLevelPolicy,
        codebook: Codebook,
        k: int,
        low_deterministic: bool = False,
        device: str | torch.device = "cpu",
    ):
        self.device = torch.device(device)
        self.low = low.to(device).eval()
        self.codes = torch.as_tensor(codebook.features, dtype=torch.float32, device=device)
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
            a = self.low.act(torch.as_tensor(obs, device=self.device), goal, gen, self.low_det).cpu().numpy()
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
    code = torch.arange(n_codes, device=hier.device).repeat_interleave(kitchens)
    gen = torch.Generator(device=hier.device).manual_seed(seed)
    obs = env.obs()
    for _ in range(hl_steps):
        obs, *_ = hier.run_code(env, obs, code, gen)
    reached = np.abs(1.0 - env.q[:, OBJECTS.index(target)]) < spec.threshold
    return reached.reshape(n_codes, kitchens).mean(1)


@torch.no_grad()
def rollout(agent: HighLevelSAC, hier: Hierarchy, spec: KitchenSpec, episodes: int, seed: int) -> BatchedMiniKitchen:
    """Run `episodes` stochastic episodes at once (on the hierarchy's device, the agent's); returns the kitchens at
    the end of their episodes."""
    env = BatchedMiniKitchen(episodes, spec, seed=seed)
    gen = torch.Generator(device=hier.device).manual_seed(seed)
    obs = env.obs()
    alive = np.ones(episodes, dtype=bool)
    while alive.any():
        code = agent.act(torch.as_tensor(obs, device=hier.device), gen)
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
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Train the high level on `device` for `cfg.env_steps` environment steps (after the warm-up), evaluating every
    `eval_every`; checkpoints `out/hl_sac.pt` at each evaluation and resumes from it (episodes in flight restart).
    `low` is moved to `device`. Returns the evaluation history: env steps and mean subtasks completed."""
    if prior.dims["in_dim"] != low.obs_dim:
        raise RewardLabError("the prior and the low-level policy were trained on observations of different widths")
    agent = HighLevelSAC(cfg, prior, low.obs_dim, seed, device)
    hier = Hierarchy(low, codebook, cfg.k, cfg.low_deterministic, device)
    # high-level transitions: about env_steps / k, plus one short step per episode (the buffer wraps if exceeded)
    needed = cfg.warmup + 2 * (cfg.env_steps // cfg.k) + 2 * cfg.n_envs
    replay = Replay(min(cfg.buffer, needed), low.obs_dim, agent.n, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    env = BatchedMiniKitchen(cfg.n_envs, spec, seed=seed)
    ckpt = out / "hl_sac.pt"
    st: dict[str, Any] = {"env_steps": 0, "transitions": 0, "history": [], "seconds": 0.0, "episodes": []}
    if ckpt.exists():
        saved = load_checkpoint(ckpt)
        agent.load_state_dict(saved["agent"])
        replay.load_state_dict(saved["replay"])
        st = saved["progress"]
        restore_generator(gen, saved, seed + 7919 * (st["env_steps"] + 1))
        env.rng = np.random.default_rng(seed + 7919 * (st["env_steps"] + 1))
    out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        save_checkpoint(
            ckpt,
            {
                "agent": agent.state_dict(),
                "replay": replay.state_dict(),
                **generator_state(gen),
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
    stats: dict[str, list[torch.Tensor]] = {}  # per-update metrics, read once per evaluation
    t0 = time.perf_counter()
    while st["env_steps"] < cfg.env_steps:
        s = torch.as_tensor(obs, device=device)
        code = agent.act(s, gen)
        if pending is not None:  # the released code's off-by-one: the new code goes with the previous transition
            pending["i"] = code
            replay.add(**pending)
            pending = None
        obs2, r, term, trunc, steps = hier.run_code(env, obs, code, gen)
        s2 = torch.as_tensor(obs2, device=device)
        item = {
            "s": s,
            "s2": s2,
            "i": code,
            "r": torch.as_tensor(r, dtype=torch.float32, device=device),
            "d": torch.as_tensor(term, dtype=torch.float32, device=device),
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
                row = {f"train/{k_}": float(torch.stack(v).double().mean()) for k_, v in stats.items()}
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
