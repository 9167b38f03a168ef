"""Preprocessing rewards for interpretability by potential shaping (Jenner & Gleave 2022, docs/originals.md).

r'(s,a,s') = (r(s,a,s') - c) + gamma * Phi(s') * (1 - done) - Phi(s), with the shift c and the potential Phi
trained to make r' sparse or smooth. Shaping never changes which policies are optimal, so r' asks for the
same behaviour as r. Objectives (batch means): sparse_l1 |r'|, sparse_log log(1+|r'|), smooth_l1
|r'_i - r'_j|, smooth_log log(1+|r'_i - r'_j|) over adjacent pairs (i, j).

Tabular and linear-potential L1 objectives are also solved exactly (`solve_lp`, `solve_lp_features`: HiGHS, with a
canonical tie-break among the optimal r', so that every shaping of a reward preprocesses to the same r').
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import torch

from rewardlab.core.runs import one_blas_thread, progress
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
    tie_break: str = "canonical",
) -> dict[str, Any]:
    """Globally optimal tabular shaping for sparse_l1 or smooth_l1 as a linear program (HiGHS), with the canonical
    tie-break of `solve_lp_features` (so r' is the same for every shaping of r).

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
    res = solve_lp_features(r, F, objective, pairs, tie_break)
    x = res.pop("theta")
    return {"phi": x[:n_states], "shift": float(x[n_states]), **res}


def linear_features(obs: np.ndarray, next_obs: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """F (m, d + 2) such that r' = r + F . [w, b, c] for a linear potential Phi(s) = w.s + b and shift c."""
    x, x2 = obs.reshape(len(obs), -1).astype(float), next_obs.reshape(len(obs), -1).astype(float)
    nd = (1.0 - np.asarray(dones, dtype=float))[:, None]
    one = np.ones((len(obs), 1))
    return np.hstack([gamma * nd * x2 - x, gamma * nd * one - one, -one])


def _quiet_highs() -> Any:
    """A silent `highspy.Highs` (its first construction in a process prints a banner on the C-level stdout)."""
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    h.silent()
    return h


def _l1_dual(M: Any, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, float]:
    """min over theta of mean|M theta + b| + c . theta, solved as its dual LP (HiGHS simplex):
    max b . lam s.t. M' lam = -c, |lam| <= 1/k. The dual has one row per parameter (not two per term, as the
    primal), so it is small and quick; theta is read from its row duals. Returns theta and mean|M theta + b|."""
    import highspy
    from scipy import sparse

    k, nv = M.shape
    A = sparse.csc_matrix(M.T)
    A.sort_indices()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = k, nv
    lp.col_cost_ = -np.asarray(b, dtype=float)
    lp.col_lower_, lp.col_upper_ = np.full(k, -1.0), np.full(k, 1.0)  # lam * k: the sum's dual, better scaled
    lp.row_lower_ = lp.row_upper_ = -k * np.asarray(c, dtype=float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = A.indptr, A.indices, A.data
    h = _quiet_highs()
    for name in ("primal_feasibility_tolerance", "dual_feasibility_tolerance"):
        h.setOptionValue(name, 1e-10)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RewardLabError(f"the preprocessing LP failed: HiGHS says {h.modelStatusToString(status)}")
    # the primal solution is the row duals y: a basic term i has zero reduced cost, -b_i - M_i . y = 0, so
    # M_i . y + b_i = 0 (the optimal vertex; HiGHS computes y from its basis factorisation)
    theta = np.asarray(h.getSolution().row_dual, dtype=float)
    return theta, float(np.abs(M @ theta + b).mean())


TIE_BREAKS = ("canonical", "none")
TIE_BREAK_SEED = 20220327
TIE_BREAK_WEIGHT = 1e-6


def solve_lp_features(
    r: np.ndarray, F: Any, objective: str, pairs: np.ndarray | None = None, tie_break: str = "canonical"
) -> dict[str, Any]:
    """Minimise the sparse_l1 or smooth_l1 objective of r' = r + F theta over theta exactly (HiGHS); see `_solve_l1`
    (the tie-break); numpy's BLAS on one thread (its small least-squares problems run ~40x faster so on 2 busy
    cores)."""
    with one_blas_thread():
        return _solve_l1(r, F, objective, pairs, tie_break)


def _solve_l1(r: np.ndarray, F: Any, objective: str, pairs: np.ndarray | None, tie_break: str) -> dict[str, Any]:
    """Minimise the sparse_l1 or smooth_l1 objective of r' = r + F theta over theta exactly (HiGHS).

    Any shaping whose potential is linear in its parameters fits: tabular (one-hot F) or linear potentials
    (`linear_features`). The L1 objectives have many optimal r' (smooth_l1 above all), and which one a solver
    returns depends on its input, so a reward and a shaped copy of it could preprocess differently. With
    `tie_break="canonical"` the answer is a function of the shaping class {r + F theta} alone:
      1. r is replaced by its least-squares residual r0 = r - F F^+ r (the same affine set, so the same problem;
         r and every r + F theta0 give the same r0 up to rounding);
      2. an LP finds the optimum v;
      3. among the optimal r', the one minimising a fixed generic linear function w . r' (w drawn once from a fixed
         seed, so it depends on the number of transitions alone; for smooth_l1 it sums to 0, and r' is centred,
         since the objective ignores constants): the LP with w . r' added at a weight small enough that the optimum
         stays v (checked; the weight shrinks until it does). Its solution is unique: one vertex of the optimal set.
    `tie_break="none"` returns step 2's solution for r as given: an optimal vertex, whichever the solver reaches (no
    tie-break; for comparison). Each LP is
    solved in its dual form. Returns theta, the optimum and r'.
    """
    from scipy import sparse

    if objective not in ("sparse_l1", "smooth_l1"):
        raise RewardLabError(f"only sparse_l1 and smooth_l1 are linear programs, not {objective}")
    if tie_break not in TIE_BREAKS:
        raise RewardLabError(f"unknown tie_break '{tie_break}'; choose one of {', '.join(TIE_BREAKS)}")
    F = sparse.csr_matrix(F, dtype=float)
    r = np.asarray(r, dtype=float)
    m, nv = F.shape
    canonical = tie_break == "canonical"
    theta0 = _lstsq(F, -r) if canonical else np.zeros(nv)
    base = r + F @ theta0
    if objective == "sparse_l1":
        D = sparse.identity(m, format="csr")
    else:
        if pairs is None or len(pairs) == 0:
            raise RewardLabError("smooth_l1 needs adjacent pairs of transitions")
        k_ = len(pairs)
        D = sparse.csr_matrix(
            (np.r_[np.ones(k_), -np.ones(k_)], (np.r_[np.arange(k_), np.arange(k_)], np.r_[pairs[:, 0], pairs[:, 1]])),
            shape=(k_, m),
        )
    M, b = (D @ F).tocsr(), D @ base
    # keep a largest independent set of M's columns (pivoted QR): the rest move r' only along directions the
    # objective ignores (a constant potential against the shift; constants, for smooth_l1), and would leave the
    # dual LP with dependent rows
    cols = _independent_columns(M)
    Mi, Fi = M[:, cols], F[:, cols]
    th, value = _l1_dual(Mi, b, np.zeros(len(cols)))
    if canonical:
        w = np.random.default_rng(TIE_BREAK_SEED).standard_normal(m)
        if objective == "smooth_l1":
            w -= w.mean()
        c = Fi.T @ w  # w . r' = w . base + c . theta
        scale = TIE_BREAK_WEIGHT / max(np.abs(c).max(), 1e-300)
        for _ in range(6):
            th2, val = _l1_dual(Mi, b, scale * c)
            if val <= value + 1e-9 * max(1.0, abs(value)):
                th, value = th2, val
                break
            scale *= 1e-2
        else:
            raise RewardLabError("the preprocessing LP's tie-break did not keep the optimum; use tie_break='none'")
    theta = np.zeros(nv)
    theta[cols] = th
    theta = theta0 + theta
    shaped = r + F @ theta
    if canonical and objective == "smooth_l1":
        shaped = shaped - shaped.mean()  # the objective ignores constants: report the centred r' (shift absorbs it)
        theta = _lstsq(F, shaped - r)
        shaped = r + F @ theta
    return {"theta": theta, "objective": value, "shaped": shaped}


def _independent_columns(M: Any) -> np.ndarray:
    """Indices of a largest linearly independent set of M's columns (pivoted QR, relative tolerance 1e-10)."""
    from scipy.linalg import qr

    dense = M.toarray() if hasattr(M, "toarray") else np.asarray(M)
    R, piv = qr(dense, mode="r", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int((diag > 1e-10 * max(diag.max(initial=0.0), 1e-300)).sum())
    return np.sort(piv[:rank])


def _lstsq(F: Any, b: np.ndarray) -> np.ndarray:
    """The minimum-norm least-squares solution x of F x = b (dense for small F, else LSQR to 1e-14)."""
    from scipy.sparse.linalg import lsqr

    if F.shape[0] * F.shape[1] <= 20_000_000:
        return np.linalg.lstsq(F.toarray(), b, rcond=None)[0]
    return lsqr(F, b, atol=1e-14, btol=1e-14, iter_lim=100_000)[0]


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


def coverage_transitions(env_id: str, samples: int, seed: int = 0, horizon: int = 16) -> dict[str, np.ndarray]:
    """Transitions to preprocess a reward on, for an environment `rewardlab compare` knows: on a tabular maze every
    (s, a, s') once (the study's choice); on the shaped mountain car `samples` transitions in short random-action
    trajectories of `horizon` steps from states uniform over the observation box (so smooth objectives have
    consecutive pairs). Keys obs, acts, next_obs, dones (all False: these envs never terminate) and pairs."""
    from rewardlab.interpret.distances import env_kind, mountain_car_transition

    kind, info = env_kind(env_id)
    if kind == "maze":
        s, a, s2 = info.all_transitions()
        return {"obs": s, "acts": a, "next_obs": s2, "dones": np.zeros(len(s), bool), "pairs": tabular_pairs(s, s2)}
    from rewardlab.envs.mountain_car import OBS_HIGH, OBS_LOW

    rng = np.random.default_rng(seed)
    n = max(1, -(-int(samples) // horizon))
    x = rng.uniform(OBS_LOW, OBS_HIGH, size=(n, 2)).astype(np.float32)
    obs, acts, nxt = [], [], []
    for _ in range(horizon):  # one batched step of every trajectory per iteration
        a = rng.integers(0, 3, n)
        x2 = mountain_car_transition(x, a)
        obs.append(x), acts.append(a), nxt.append(x2)
        x = x2
    # time-major -> trajectory-major, so trajectory_pairs sees each trajectory's steps in order
    o, a, o2 = (np.stack(v, 1).reshape(n * horizon, *np.shape(v[0])[1:]) for v in (obs, acts, nxt))
    episode = np.repeat(np.arange(n), horizon)
    return {"obs": o, "acts": a, "next_obs": o2, "dones": np.zeros(len(o), bool), "pairs": trajectory_pairs(episode)}


def preprocess_reward(
    net: RewardNet, env_id: str, objective: str, samples: int = 20_000, seed: int = 0, gamma: float | None = None
) -> tuple[ShapedRewardNet, dict[str, Any]]:
    """Preprocess any reward net (a file's, imitation's converted) on an environment `rewardlab compare` knows:
    the L1 objectives exactly (an LP with the canonical tie-break: a tabular potential on the mazes, a linear one
    on mountain car), the log objectives with Adam (tabular or MLP potential). Returns the shaped net and what
    was done (objective before and after, transitions, method)."""
    from rewardlab.interpret.distances import env_kind

    check_objective(objective)
    kind, info = env_kind(env_id)
    if gamma is None:
        from rewardlab.envs.mountain_car import GAMMA as MC_GAMMA
        from rewardlab.envs.tabular_maze import GAMMA as MAZE_GAMMA

        gamma = MAZE_GAMMA if kind == "maze" else MC_GAMMA
    data = coverage_transitions(env_id, samples, seed)
    s, a, s2, d, pairs = (data[k] for k in ("obs", "acts", "next_obs", "dones", "pairs"))
    net = net.eval()
    r = np.asarray(net.predict(s, a, s2, d), dtype=float)
    pr = torch.as_tensor(pairs)
    before = float(objective_value(torch.as_tensor(r), objective, pr))
    cfg = PreprocessConfig()
    if objective in ("sparse_l1", "smooth_l1"):
        if kind == "maze":
            res = solve_lp(r, s, s2, d, info.n_states, gamma, objective, pairs)
            shaped = shaped_net_from_lp(net, info.n_states, gamma, res["phi"], res["shift"])
            method = "exact LP, tabular potential (canonical tie-break)"
        else:
            res = solve_lp_features(r, linear_features(s, s2, d, gamma), objective, pairs)
            shaped = linear_net_from_lp(net, int(np.prod(s.shape[1:])), gamma, res["theta"])
            method = "exact LP, linear potential (canonical tie-break)"
    else:
        if kind == "maze":  # the study's tabular setting: full-batch steps
            n = len(pairs) if objective.startswith("smooth") else len(s)
            cfg = PreprocessConfig(epochs=cfg.tabular_steps, batch_size=max(n, 2))
        pot = make_potential("tabular" if kind == "maze" else "mlp", info.n_states if kind == "maze" else 2, cfg)
        shaped = preprocess_adam(net, s, s2, d, pairs, objective, pot, gamma, cfg, seed=seed, actions=a)
        method = (
            f"Adam ({cfg.tabular_steps} full-batch steps, lr {cfg.lr}), tabular potential"
            if kind == "maze"
            else f"Adam ({cfg.epochs} epochs of batch {cfg.batch_size}, lr {cfg.lr}), MLP potential"
        )
    after = float(objective_value(torch.as_tensor(shaped.predict(s, a, s2, d), dtype=torch.float64), objective, pr))
    return shaped, {
        "env": env_id,
        "objective": objective,
        "method": method,
        "transitions": int(len(s)),
        "gamma": float(gamma),
        "objective_before": before,
        "objective_after": after,
    }
