"""Preprocessing rewards for interpretability by potential shaping (Jenner & Gleave 2022, docs/originals.md).

r'(s,a,s') = (r(s,a,s') - c) + gamma * Phi(s') * (1 - done) - Phi(s), with the shift c and the potential Phi
trained to make r' sparse or smooth. Shaping never changes which policies are optimal, so r' asks for the
same behaviour as r. Objectives (batch means): sparse_l1 |r'|, sparse_log log(1+|r'|), smooth_l1
|r'_i - r'_j|, smooth_log log(1+|r'_i - r'_j|) over adjacent pairs (i, j).

Tabular L1 objectives are also solved exactly as linear programs (`solve_lp`, scipy's HiGHS).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rewardlab.core.runs import progress
from rewardlab.errors import RewardLabError
from rewardlab.interpret.configs import OBJECTIVES, PreprocessConfig, check_objective  # noqa: F401
from rewardlab.rewards.nets import RewardNet
from rewardlab.rewards.shaping import LinearPotential, MLPPotential, ShapedRewardNet, TabularPotential


def objective_value(r: torch.Tensor, objective: str, pairs: torch.Tensor | None = None) -> torch.Tensor:
    """The batch objective for shaped rewards r (N,) and, for smooth objectives, index pairs (P, 2) into r."""
    check_objective(objective)
    if objective.startswith("sparse"):
        x = r.abs()
    else:
        if pairs is None or len(pairs) == 0:
            raise RewardLabError(f"objective {objective} needs adjacent pairs of transitions; none were given")
        x = (r[pairs[:, 0]] - r[pairs[:, 1]]).abs()
    return (torch.log1p(x) if objective.endswith("log") else x).mean()


def tabular_pairs(s: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Adjacent pairs (i, j) of tabular transitions: i and j share a start state (i != j), or j ends where i starts."""
    same_start = (s[:, None] == s[None, :]) & ~np.eye(len(s), dtype=bool)
    j_into_i = s2[None, :] == s[:, None]
    i, j = np.nonzero(same_start | j_into_i)
    return np.stack([i, j], 1)


def trajectory_pairs(episode: np.ndarray) -> np.ndarray:
    """Consecutive transitions of the same trajectory: pairs (i, i+1) with episode[i] == episode[i+1]."""
    idx = np.flatnonzero(episode[:-1] == episode[1:])
    return np.stack([idx, idx + 1], 1)


def make_potential(kind: str, obs_shape: tuple[int, ...] | int, cfg: PreprocessConfig) -> torch.nn.Module:
    """A fresh potential: tabular (obs_shape = number of states), linear or mlp."""
    if kind == "tabular":
        return TabularPotential(int(obs_shape if isinstance(obs_shape, int) else obs_shape[0]))
    dim = int(np.prod(obs_shape))
    if kind == "linear":
        return LinearPotential(dim)
    if kind == "mlp":
        return MLPPotential(dim, cfg.mlp_hidden, cfg.mlp_layers)
    raise RewardLabError(f"unknown potential '{kind}'; choose tabular, linear or mlp")


def preprocess_tabular_adam(
    tables: np.ndarray,
    s: np.ndarray,
    s2: np.ndarray,
    dones: np.ndarray,
    pairs: np.ndarray,
    objective: str,
    gamma: float,
    cfg: PreprocessConfig,
    desc: str = "preprocess",
) -> dict[str, np.ndarray]:
    """Adam on `objective` for K tabular rewards at once (tables (K, n, n)), `tabular_steps` full-batch steps.

    r' = r - c + phi @ B with the sparse B[:, i] = gamma * (1 - done_i) e_{s'_i} - e_{s_i}, so each step is two
    sparse products with an analytic gradient (torch's Adam update, written out in numpy). The K problems are
    independent and Adam is elementwise, so this equals K separate runs. Returns phi (K, n), shift (K,), the
    final objective values (K,) and the shaped rewards (K, N).
    """
    from scipy import sparse

    check_objective(objective)
    tables = np.asarray(tables, dtype=np.float64)
    k, n = tables.shape[0], tables.shape[1]
    s, s2 = np.asarray(s, dtype=np.int64), np.asarray(s2, dtype=np.int64)
    m = len(s)
    cols = np.arange(m)
    B = sparse.csr_matrix(
        (
            np.concatenate([gamma * (1.0 - np.asarray(dones, dtype=np.float64)), -np.ones(m)]),
            (np.concatenate([s2, s]), np.concatenate([cols, cols])),
        ),
        shape=(n, m),
    )
    r = tables[:, s, s2]  # (K, N)
    smooth = objective.startswith("smooth")
    if smooth:
        if pairs is None or len(pairs) == 0:
            raise RewardLabError(f"objective {objective} needs adjacent pairs of transitions")
        base = r[:, pairs[:, 0]] - r[:, pairs[:, 1]]
        mat = (B[:, pairs[:, 0]] - B[:, pairs[:, 1]]).tocsr()
    else:
        base, mat = r, B
    mat_t = mat.T.tocsr()
    log = objective.endswith("log")
    phi, shift = np.zeros((k, n)), np.zeros(k)
    params = [phi, shift]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8

    def values(phi_: np.ndarray, shift_: np.ndarray) -> np.ndarray:
        x = base + (mat_t @ phi_.T).T
        return x if smooth else x - shift_[:, None]

    for t in progress(range(1, cfg.tabular_steps + 1), desc=desc):
        x = values(phi, shift)
        gx = np.sign(x) / x.shape[1]
        if log:
            gx /= 1.0 + np.abs(x)
        grads = [(mat @ gx.T).T, np.zeros(k) if smooth else -gx.sum(1)]
        for p, g, a, v in zip(params, grads, m1, m2):
            a *= b1
            a += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= cfg.lr * (a / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    x = np.abs(values(phi, shift))
    obj = (np.log1p(x) if log else x).mean(1)
    shaped = r - shift[:, None] + (B.T @ phi.T).T
    return {"phi": phi, "shift": shift, "objective": obj, "shaped": shaped}


def preprocess_adam(
    base: RewardNet,
    obs: np.ndarray,
    next_obs: np.ndarray,
    dones: np.ndarray,
    pairs: np.ndarray,
    objective: str,
    potential: torch.nn.Module,
    gamma: float,
    cfg: PreprocessConfig,
    seed: int = 0,
    actions: np.ndarray | None = None,
    desc: str = "preprocess",
    device: str | torch.device = "cpu",
) -> ShapedRewardNet:
    """Train shift and potential with Adam on `objective`: `epochs` over shuffled minibatches of `batch_size`
    transitions (sparse objectives) or adjacent pairs (smooth objectives), each minibatch moved to `device`. For
    linear, MLP and CNN potentials; tabular problems use `preprocess_tabular_adam`."""
    check_objective(objective)
    torch.manual_seed(seed)
    shaped = ShapedRewardNet(base, potential, gamma).to(device)
    opt = torch.optim.Adam([p for p in shaped.parameters() if p.requires_grad], lr=cfg.lr)
    s, s2 = torch.as_tensor(obs), torch.as_tensor(next_obs)
    d = torch.as_tensor(dones, dtype=torch.float32)
    a = None if actions is None else torch.as_tensor(actions)
    smooth = objective.startswith("smooth")
    pr = torch.as_tensor(pairs, dtype=torch.long) if smooth else None
    if smooth and (pr is None or len(pr) == 0):
        raise RewardLabError(f"objective {objective} needs adjacent pairs of transitions")
    g = torch.Generator().manual_seed(seed)
    n = len(pr) if smooth else len(s)
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=g)
        for b in progress(range(0, n, cfg.batch_size), desc=desc):
            idx = perm[b : b + cfg.batch_size]
            rows = pr[idx].reshape(-1) if smooth else idx
            r = shaped(*(None if x is None else x[rows].to(device) for x in (s, a, s2, d)))
            pairs_b = torch.arange(len(rows), device=r.device).reshape(-1, 2) if smooth else None
            loss = objective_value(r, objective, pairs_b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return shaped.eval()


def solve_lp(
    r: np.ndarray,
    s: np.ndarray,
    s2: np.ndarray,
    dones: np.ndarray,
    n_states: int,
    gamma: float,
    objective: str,
    pairs: np.ndarray | None = None,
) -> dict[str, Any]:
    """Globally optimal tabular shaping for sparse_l1 or smooth_l1 as a linear program (HiGHS).

    Returns phi (n_states,), shift, the optimal objective value and the shaped rewards r'.
    """
    from scipy import sparse

    m = len(r)
    rows = np.arange(m)
    nd = 1.0 - np.asarray(dones, dtype=float)
    # r'_i = r_i + F_i . [phi, c] with F_i = gamma*(1-done_i) e_{s'_i} - e_{s_i} - e_c
    F = sparse.csr_matrix(
        (
            np.concatenate([gamma * nd, -np.ones(m), -np.ones(m)]),
            (np.concatenate([rows, rows, rows]), np.concatenate([s2, s, np.full(m, n_states)])),
        ),
        shape=(m, n_states + 1),
    )
    res = solve_lp_features(r, F, objective, pairs)
    x = res.pop("theta")
    return {"phi": x[:n_states], "shift": float(x[n_states]), **res}


def linear_features(obs: np.ndarray, next_obs: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """F (m, d + 2) such that r' = r + F . [w, b, c] for a linear potential Phi(s) = w.s + b and shift c."""
    x, x2 = obs.reshape(len(obs), -1).astype(float), next_obs.reshape(len(obs), -1).astype(float)
    nd = (1.0 - np.asarray(dones, dtype=float))[:, None]
    one = np.ones((len(obs), 1))
    return np.hstack([gamma * nd * x2 - x, gamma * nd * one - one, -one])


def solve_lp_features(r: np.ndarray, F: Any, objective: str, pairs: np.ndarray | None = None) -> dict[str, Any]:
    """Minimise the sparse_l1 or smooth_l1 objective of r' = r + F theta over theta exactly (HiGHS LP).

    Any shaping whose potential is linear in its parameters fits: tabular (one-hot F) or linear potentials
    (`linear_features`). Variables: theta and one slack t per transition (sparse) or pair (smooth); minimise
    mean(t) subject to -t <= r' <= t (or the pair difference). Returns theta, the optimum and r'.
    """
    from scipy import sparse
    from scipy.optimize import linprog

    if objective not in ("sparse_l1", "smooth_l1"):
        raise RewardLabError(f"only sparse_l1 and smooth_l1 are linear programs, not {objective}")
    F = sparse.csr_matrix(F)
    r = np.asarray(r, dtype=float)
    if objective == "sparse_l1":
        M, b = F, r
    else:
        if pairs is None or len(pairs) == 0:
            raise RewardLabError("smooth_l1 needs adjacent pairs of transitions")
        M, b = (F[pairs[:, 0]] - F[pairs[:, 1]]).tocsr(), r[pairs[:, 0]] - r[pairs[:, 1]]
    k, nv = M.shape
    eye = sparse.identity(k, format="csr")
    # M x + b <= t  ->  M x - t <= -b ;  -(M x + b) <= t  ->  -M x - t <= b
    A_ub = sparse.vstack([sparse.hstack([M, -eye]), sparse.hstack([-M, -eye])], format="csr")
    b_ub = np.concatenate([-b, b])
    cost = np.concatenate([np.zeros(nv), np.full(k, 1.0 / k)])
    unused = np.asarray(abs(M).sum(0)).ravel() == 0  # e.g. the shift in pair differences: pin it to 0
    bounds = [(0, 0) if u else (None, None) for u in unused] + [(0, None)] * k
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:
        raise RewardLabError(f"the preprocessing LP failed: {res.message}")
    theta = res.x[:nv]
    return {"theta": theta, "objective": float(res.fun), "shaped": r + F @ theta}


def linear_net_from_lp(base: RewardNet, obs_dim: int, gamma: float, theta: np.ndarray) -> ShapedRewardNet:
    """A ShapedRewardNet with a linear potential from `solve_lp_features` on `linear_features` ([w, b, c])."""
    pot = LinearPotential(obs_dim)
    lin = pot.net[1]
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(theta[:obs_dim], dtype=torch.float32)[None])
        lin.bias.fill_(float(theta[obs_dim]))
    net = ShapedRewardNet(base, pot, gamma)
    with torch.no_grad():
        net.shift.fill_(float(theta[obs_dim + 1]))
    return net.eval()


def shaped_net_from_lp(base: RewardNet, n_states: int, gamma: float, phi: np.ndarray, shift: float) -> ShapedRewardNet:
    """A ShapedRewardNet carrying the LP's potential and shift."""
    pot = TabularPotential(n_states)
    with torch.no_grad():
        pot.phi.copy_(torch.as_tensor(phi, dtype=torch.float32))
    net = ShapedRewardNet(base, pot, gamma)
    with torch.no_grad():
        net.shift.fill_(shift)
    return net.eval()
