"""Reward distances: EPIC (Gleave et al., ICLR 2021, "Quantifying Differences in Reward Functions") and DARD
(Wulfe et al. 2022, "Dynamics-Aware Comparison of Learned Reward Functions").

Both canonicalise each reward so that potential shaping cancels, then take the Pearson distance
sqrt((1 - rho) / 2) between the canonical rewards under a coverage distribution D over transitions (s, a, s'):

- EPIC: C(R)(s,a,s') = R(s,a,s') + E[gamma R(s',A,S') - R(s,A,S') - gamma R(S,A,S')], S, S' ~ D_S independent,
  A ~ D_A.
- DARD: C(R)(s,a,s') = R(s,a,s') + E[gamma R(s',A,S'') - R(s,A,S') - gamma R(S',A,S'')], A ~ D_A,
  S' ~ T(.|s,A), S'' ~ T(.|s',A): the expectation follows the dynamics instead of arbitrary states. For a shaping
  F(x,a,y) = gamma Phi(y) - Phi(x) and any one draw of (A, S', S''), the three terms add up to
  Phi(s) - gamma Phi(s'), which cancels F(s,a,s'); so shaping cancels whether S' and S'' are drawn independently
  (as here) or not, and the sampled version, which uses the same draws in the three terms, cancels it exactly.

The Pearson distance is invariant to positive rescaling and constant shifts, so two rewards that differ by potential
shaping, a constant and a positive scale are at distance 0; R and -R are at distance 1; it is a pseudometric.

Tabular rewards are compared exactly (`epic_canonical`, `dard_canonical`, `distance_matrix` over tables
R[s, a, s'] built with `reward_tensor`, all matrix products in float64). Continuous and pixel rewards are compared
by sampling (`epic_canonical_sampled`, `dard_canonical_sampled`): the expectations are means over M canonical
samples shared by every evaluated transition (so shaping still cancels exactly, up to the reward's own float
precision), evaluated on the (transitions x samples) grid in chunks of many transitions per forward pass; the
interval is a percentile bootstrap over the coverage transitions (`bootstrap_distance_matrix`).

How `done` enters: rewards are evaluated with done = terminal(s'), a deterministic function of the next state
(`terminal`; None means no state is terminal, which is the case for the tabular mazes, whose goal loops on itself,
and for the shaped mountain car, which absorbs). A reward shaped the project's way,
r'(s,a,s') = (r - c) + gamma Phi(s') (1 - done) - Phi(s), is then r - c + gamma Phi~(s') - Phi~(s) with
Phi~ = Phi (1 - terminal) on every transition that starts in a non-terminal state (transitions out of a terminal
state never happen in an episode): ordinary potential shaping with a potential that is 0 on terminal states. For the
environments here no state is terminal, so such a copy is exactly potential-shaped and at distance 0.

`compare_rewards` is what `rewardlab compare` runs: exact on the tabular mazes' ids, sampled on the shaped mountain
car's ids (coverage: states uniform over the observation box, actions uniform, s' from the dynamics).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from rewardlab.core.runs import one_blas_thread
from rewardlab.errors import RewardLabError

METHODS = ("epic", "dard")
Terminal = Callable[[np.ndarray], np.ndarray]
Step = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------------------------- Pearson


def _dist(p: np.ndarray | None, n: int, what: str) -> np.ndarray:
    """A probability vector of length n (uniform when None), checked."""
    if p is None:
        return np.full(n, 1.0 / n)
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (n,) or (p < 0).any() or not np.isclose(p.sum(), 1.0):
        raise RewardLabError(f"{what} must be a probability vector of length {n} (non-negative, summing to 1)")
    return p


def _weights(weights: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Coverage weights over rewards of `shape`, flattened and normalised (uniform when None)."""
    n = int(np.prod(shape))
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size != n or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise RewardLabError(f"coverage weights must be non-negative, finite, not all zero, of shape {shape}")
    return w / w.sum()


def _standardise(
    canonical: np.ndarray, weights: np.ndarray | None, names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(z (K, N), w (N,)): K canonical rewards flattened, centred and scaled to unit variance under the weights."""
    c = np.asarray(canonical, dtype=np.float64)
    k = c.shape[0]
    w = _weights(weights, c.shape[1:])
    c = c.reshape(k, -1)
    c = c - (c @ w)[:, None]
    std = np.sqrt(np.maximum((c * c) @ w, 0.0))
    flat = std <= 1e-12 * np.maximum(1.0, np.abs(c).max(axis=1))
    if flat.any():
        i = int(np.flatnonzero(flat)[0])
        who = f"'{names[i]}'" if names is not None else f"number {i + 1}"
        raise RewardLabError(
            f"reward {who} is constant up to potential shaping on the coverage distribution, so its distance to "
            "any reward is undefined; compare rewards that vary"
        )
    return c / std[:, None], w


def _pair_distances(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson distances (R, K, K) of rewards z (K, N) under R weightings w (R, N) (rows sum to 1).

    sqrt((1 - rho) / 2) is half the weighted standard deviation of u = z_k / s_k - z_l / s_l; it is computed from
    the moments of z_k and of the difference z_l - z_k, so that it stays accurate (about 1e-15, not the 1e-8 that
    1 - rho in float64 allows) when two rewards are nearly equivalent."""
    k = z.shape[0]
    mu = w @ z.T
    var = w @ (z * z).T - mu * mu
    out = np.zeros((w.shape[0], k, k))
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(k):
            for j in range(i + 1, k):
                delta = z[j] - z[i]
                m = w @ np.stack([delta, delta * delta, z[i] * delta], axis=1)
                mu_d = m[:, 0]
                var_d = np.maximum(m[:, 1] - mu_d * mu_d, 0.0)
                cov = m[:, 2] - mu[:, i] * mu_d
                vi = var[:, i]
                vj = vi + 2.0 * cov + var_d
                si, sj = np.sqrt(vi), np.sqrt(vj)
                c = (2.0 * cov + var_d) / ((si + sj) * si * sj)  # 1/s_i - 1/s_j
                var_u = c * c * vi - 2.0 * c * cov / sj + var_d / vj
                d = np.sqrt(np.clip(var_u / 4.0, 0.0, 1.0))
                d[~((vi > 0) & (vj > 0))] = np.nan  # a resample in which a reward is constant
                out[:, i, j] = out[:, j, i] = d
    return out


def distance_matrix(
    canonical: np.ndarray, weights: np.ndarray | None = None, names: Sequence[str] | None = None
) -> np.ndarray:
    """Pairwise Pearson distances sqrt((1 - rho) / 2) (K, K) of K canonical rewards (K, ...) under coverage
    `weights` (uniform when None)."""
    z, w = _standardise(canonical, weights, names)
    return _pair_distances(z, w[None])[0]


def pearson_distance(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The Pearson distance sqrt((1 - rho) / 2) between two canonical rewards of one shape under `weights`."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise RewardLabError(f"canonical rewards of different shapes {x.shape} and {y.shape}")
    return float(distance_matrix(np.stack([x, y]), weights)[0, 1])


# ---------------------------------------------------------------------------------------------------- tabular


@contextlib.contextmanager
def _evaluating(nets: Sequence[Any]) -> Iterator[None]:
    """Put torch nets in eval mode for the block and restore their modes after (as imitation's `evaluating`)."""
    modes = [getattr(n, "training", None) for n in nets]
    for n in nets:
        if hasattr(n, "eval"):
            n.eval()
    try:
        yield
    finally:
        for n, m in zip(nets, modes):
            if m is not None:
                n.train(m)


def reward_tensor(net: Any, n_states: int, n_actions: int, terminal: np.ndarray | None = None) -> np.ndarray:
    """R[s, a, s'] (n_states, n_actions, n_states) float64 of a reward net on integer states and actions, by one
    batched `predict`; done = terminal[s'] (all False when None)."""
    s, a, s2 = (
        x.reshape(-1) for x in np.meshgrid(*(np.arange(n) for n in (n_states, n_actions, n_states)), indexing="ij")
    )
    done = np.zeros(len(s), dtype=bool) if terminal is None else np.asarray(terminal, dtype=bool)[s2]
    with _evaluating([net]):
        r = np.asarray(net.predict(s, a, s2, done), dtype=np.float64)
    return r.reshape(n_states, n_actions, n_states)


def observation_reward_tensor(
    nets: Sequence[Any],
    states: np.ndarray,
    n_actions: int,
    terminal: np.ndarray | None = None,
    batch_size: int = 16384,
) -> np.ndarray:
    """R[k, i, a, j] (K, n, n_actions, n) float64 of K reward nets on every triple of n enumerated state
    observations `states` (n, ...) and integer actions, by batched `predict`; done = terminal[j] (all False when
    None)."""
    states = np.asarray(states)
    n = len(states)
    done = np.zeros(n, dtype=bool) if terminal is None else np.asarray(terminal, dtype=bool)
    if done.shape != (n,):
        raise RewardLabError(f"terminal must be one flag per state ({n}), got shape {done.shape}")
    flat = np.arange(n * n_actions * n)
    out = np.empty((len(nets), flat.size))
    with _evaluating(nets):
        for i in range(0, flat.size, batch_size):
            s, a, s2 = np.unravel_index(flat[i : i + batch_size], (n, n_actions, n))
            out[:, i : i + batch_size] = _predict_all(nets, states[s], a, states[s2], done[s2])
    return out.reshape(len(nets), n, n_actions, n)


def _check_table(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 3 or r.shape[0] != r.shape[2]:
        raise RewardLabError(
            f"a reward table must be R[s, a, s'] of shape (n_states, n_actions, n_states), got {r.shape}"
        )
    return r


def epic_canonical(
    r: np.ndarray, gamma: float, state_dist: np.ndarray | None = None, action_dist: np.ndarray | None = None
) -> np.ndarray:
    """EPIC's canonical reward of a table R[s, a, s'] with D_S = `state_dist`, D_A = `action_dist` (uniform)."""
    r = _check_table(r)
    ds, da = _dist(state_dist, r.shape[0], "state_dist"), _dist(action_dist, r.shape[1], "action_dist")
    m = np.einsum("sat,a,t->s", r, da, ds)  # E[R(x, A, S')]
    return r + gamma * m[None, None, :] - m[:, None, None] - gamma * (ds @ m)


def dard_canonical(
    r: np.ndarray, transitions: np.ndarray, gamma: float, action_dist: np.ndarray | None = None
) -> np.ndarray:
    """DARD's canonical reward of a table R[s, a, s'] under a transition model T[s, a, s'] (probabilities) and
    D_A = `action_dist` (uniform)."""
    r = _check_table(r)
    t = np.asarray(transitions, dtype=np.float64)
    if t.shape != r.shape or (t < 0).any() or not np.allclose(t.sum(-1), 1.0):
        raise RewardLabError(f"transitions must be probabilities T[s, a, s'] of shape {r.shape} summing to 1 over s'")
    da = _dist(action_dist, r.shape[1], "action_dist")
    m = np.einsum("sat,sat,a->s", r, t, da)  # E[R(x, A, X')], X' ~ T(x, A)
    ra, ta = (np.ascontiguousarray(x.transpose(1, 0, 2)) for x in (r, t))  # (A, S, S): BLAS needs contiguous
    # E[R(S', A, S'')] for S' ~ T(s, A), S'' ~ T(s', A): sum_a D_A[a] T_a R_a T_a^T
    with one_blas_thread():  # small batched matmuls: one BLAS thread is ~10x faster on 2 busy cores
        cross = np.tensordot(da, ta @ (ra @ np.ascontiguousarray(ta.transpose(0, 2, 1))), axes=1)
    return r + gamma * m[None, None, :] - m[:, None, None] - gamma * cross[:, None, :]


def epic_distance(
    ra: np.ndarray,
    rb: np.ndarray,
    gamma: float,
    state_dist: np.ndarray | None = None,
    action_dist: np.ndarray | None = None,
    coverage: np.ndarray | None = None,
) -> float:
    """Exact EPIC distance of two tables R[s, a, s'] (coverage: weights over (s, a, s'), uniform by default)."""
    c = [epic_canonical(r, gamma, state_dist, action_dist) for r in (ra, rb)]
    return float(distance_matrix(np.stack(c), coverage)[0, 1])


def dynamics_coverage(transitions: np.ndarray, state_dist: np.ndarray | None = None) -> np.ndarray:
    """Weights D(s) / n_A * T[s, a, s'] over (s, a, s'): every state-action pair (D_S uniform) and its successors."""
    t = np.asarray(transitions, dtype=np.float64)
    ds = _dist(state_dist, t.shape[0], "state_dist")
    return ds[:, None, None] * t / t.shape[1]


def dard_distance(
    ra: np.ndarray,
    rb: np.ndarray,
    transitions: np.ndarray,
    gamma: float,
    action_dist: np.ndarray | None = None,
    coverage: np.ndarray | None = None,
) -> float:
    """Exact DARD distance of two tables R[s, a, s'] under T[s, a, s'] (coverage: the dynamics-consistent
    transitions, uniform over (s, a), by default)."""
    c = [dard_canonical(r, transitions, gamma, action_dist) for r in (ra, rb)]
    return float(distance_matrix(np.stack(c), dynamics_coverage(transitions) if coverage is None else coverage)[0, 1])


def maze_transitions(spec: Any) -> np.ndarray:
    """A tabular maze's deterministic dynamics as probabilities T[s, a, s'] (n_states, 5, n_states)."""
    t = np.zeros((spec.n_states, 5, spec.n_states))
    s, a = np.meshgrid(np.arange(spec.n_states), np.arange(5), indexing="ij")
    t[s, a, spec.next_state] = 1.0
    return t


# ---------------------------------------------------------------------------------------------------- sampled


def _predict_all(nets: Sequence[Any], s: Any, a: Any, s2: Any, d: Any) -> np.ndarray:
    """Rewards (K, B) float64 of K nets on one batch."""
    return np.stack([np.asarray(n.predict(s, a, s2, d), dtype=np.float64).reshape(-1) for n in nets])


def _dones(terminal: Terminal | None, next_states: np.ndarray) -> np.ndarray:
    if terminal is None:
        return np.zeros(len(next_states), dtype=bool)
    return np.asarray(terminal(next_states), dtype=bool).reshape(len(next_states))


def _coverage_rewards(
    nets: Sequence[Any],
    obs: np.ndarray,
    acts: np.ndarray,
    next_obs: np.ndarray,
    dones: np.ndarray | None,
    terminal: Terminal | None,
    batch_size: int,
) -> np.ndarray:
    """R(s, a, s', done) (K, N) on the coverage transitions, in chunks of `batch_size`."""
    n = len(obs)
    if not (len(acts) == len(next_obs) == n) or (dones is not None and len(dones) != n) or n < 2:
        raise RewardLabError("coverage transitions need at least 2 of them and equally many s, a, s' (and done)")
    d = _dones(terminal, next_obs) if dones is None else np.asarray(dones, dtype=bool)
    out = []
    for i in range(0, n, batch_size):
        b = slice(i, i + batch_size)
        out.append(_predict_all(nets, obs[b], acts[b], next_obs[b], d[b]))
    return np.concatenate(out, axis=1)


def _rows(total: int, per_row: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """Row ranges [i, j) with about `batch_size` evaluations each (at least one row), under a quiet progress bar."""
    from rewardlab.core.runs import progress

    step = max(1, batch_size // per_row)
    starts = range(0, total, step)
    for i in progress(starts, total=len(starts), desc="rewards"):
        yield i, min(i + step, total)


def mean_rewards(
    nets: Sequence[Any],
    states: np.ndarray,
    actions: np.ndarray,
    next_states: np.ndarray,
    terminal: Terminal | None = None,
    batch_size: int = 4096,
) -> np.ndarray:
    """m(x) = mean_j R(x, A_j, S'_j) (K, len(states)) over the paired samples (A_j, S'_j), evaluated on the
    (states x samples) grid in chunks; integer state indices are deduplicated first."""
    states = np.asarray(states)
    inverse = None
    if states.ndim == 1 and np.issubdtype(states.dtype, np.integer):
        states, inverse = np.unique(states, return_inverse=True)
    m_samples = len(actions)
    d = _dones(terminal, next_states)
    out = np.empty((len(nets), len(states)))
    for i, j in _rows(len(states), m_samples, batch_size):
        s = np.repeat(states[i:j], m_samples, axis=0)
        reps = (j - i,) + (1,) * (np.ndim(actions) - 1)
        a = np.tile(actions, reps)
        s2 = np.tile(next_states, (j - i,) + (1,) * (next_states.ndim - 1))
        r = _predict_all(nets, s, a, s2, np.tile(d, j - i))
        out[:, i:j] = r.reshape(len(nets), j - i, m_samples).mean(-1)
    return out if inverse is None else out[:, inverse.reshape(-1)]


def epic_canonical_sampled(
    nets: Sequence[Any],
    obs: np.ndarray,
    acts: np.ndarray,
    next_obs: np.ndarray,
    states: np.ndarray,
    actions: np.ndarray,
    gamma: float,
    dones: np.ndarray | None = None,
    terminal: Terminal | None = None,
    batch_size: int = 4096,
) -> np.ndarray:
    """EPIC canonical rewards (K, N) of K nets on N coverage transitions, the expectations estimated from M
    samples: `states` S_j ~ D_S paired with `actions` A_j ~ D_A, shared by all transitions."""
    if len(states) != len(actions) or len(states) < 1:
        raise RewardLabError("the canonical samples need as many states as actions (at least one)")
    with _evaluating(nets):
        raw = _coverage_rewards(nets, obs, acts, next_obs, dones, terminal, batch_size)
        n = len(obs)
        xs = np.concatenate([np.asarray(next_obs), np.asarray(obs), np.asarray(states)]).astype(
            np.result_type(next_obs, obs, states), copy=False
        )
        m = mean_rewards(nets, xs, actions, states, terminal, batch_size)
    m_next, m_obs, m_total = m[:, :n], m[:, n : 2 * n], m[:, 2 * n :].mean(1, keepdims=True)
    return raw + gamma * m_next - m_obs - gamma * m_total


def dard_canonical_sampled(
    nets: Sequence[Any],
    obs: np.ndarray,
    acts: np.ndarray,
    next_obs: np.ndarray,
    actions: np.ndarray,
    step: Step,
    gamma: float,
    dones: np.ndarray | None = None,
    terminal: Terminal | None = None,
    batch_size: int = 4096,
) -> np.ndarray:
    """DARD canonical rewards (K, N) of K nets on N coverage transitions: for each of the M `actions` A_j ~ D_A,
    S' = step(s, A_j) and S'' = step(s', A_j) (batched dynamics, one sample each when stochastic)."""
    obs, next_obs, actions = np.asarray(obs), np.asarray(next_obs), np.asarray(actions)
    if len(actions) < 1:
        raise RewardLabError("DARD needs at least one canonical action sample")
    m_samples = len(actions)
    with _evaluating(nets):
        raw = _coverage_rewards(nets, obs, acts, next_obs, dones, terminal, batch_size)
        shift = np.empty_like(raw)
        for i, j in _rows(len(obs), 3 * m_samples, batch_size):
            s = np.repeat(obs[i:j], m_samples, axis=0)
            s2 = np.repeat(next_obs[i:j], m_samples, axis=0)
            a = np.tile(actions, (j - i,) + (1,) * (actions.ndim - 1))
            x1, x2 = np.asarray(step(s, a)), np.asarray(step(s2, a))
            d1, d2 = _dones(terminal, x1), _dones(terminal, x2)
            r = _predict_all(
                nets,
                np.concatenate([s2, s, x1]),
                np.concatenate([a, a, a]),
                np.concatenate([x2, x1, x2]),
                np.concatenate([d2, d1, d2]),
            ).reshape(len(nets), 3, j - i, m_samples)
            r = r.mean(-1)
            shift[:, i:j] = gamma * r[:, 0] - r[:, 1] - gamma * r[:, 2]
    return raw + shift


def bootstrap_distance_matrix(
    canonical: np.ndarray, reps: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval (low, high), each (K, K), of the pairwise Pearson distances of K canonical
    rewards (K, N) on N sampled coverage transitions, resampling the transitions (`rewardlab.stats` resampling)."""
    from rewardlab.stats import bootstrap_indices

    if reps < 1 or not 0 < confidence < 1:
        raise RewardLabError(f"bootstrap needs reps >= 1 and confidence in (0, 1), got {reps} and {confidence}")
    z, _ = _standardise(canonical, None, None)
    n = z.shape[1]
    block = max(1, (1 << 22) // n)  # replicates per block: about 32 MB of resampling weights
    seeds = np.random.SeedSequence(seed).generate_state(-(-reps // block))
    dists = []
    for b, s in enumerate(seeds):
        r = min(block, reps - b * block)
        idx = bootstrap_indices(n, 1, r, int(s))[..., 0]  # (r, n) transition indices drawn with replacement
        counts = np.bincount((idx + n * np.arange(r)[:, None]).reshape(-1), minlength=r * n).reshape(r, n)
        dists.append(_pair_distances(z, counts / n))
    d = np.concatenate(dists)
    a = (1 - confidence) / 2
    with warnings.catch_warnings():  # a pair constant in every resample has no interval (NaN), and no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(d, [100 * a, 100 * (1 - a)], axis=0)
    for x in (lo, hi):
        np.fill_diagonal(x, 0.0)
    return lo, hi


# ---------------------------------------------------------------------------------------------------- environments


def mountain_car_transition(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The shaped mountain car's next observations (B, 2) float32 from observations and actions (absorbing at the
    goal, as the env: a car whose observed position is >= 0.5 stays)."""
    from rewardlab.envs.mountain_car import GOAL_POS, mc_step

    o = np.asarray(obs, dtype=np.float64).reshape(-1, 2)
    pos, vel = mc_step(o[:, 0], o[:, 1], np.asarray(actions).reshape(-1))
    moving = o[:, 0] < np.float32(GOAL_POS)
    return np.stack([np.where(moving, pos, o[:, 0]), np.where(moving, vel, o[:, 1])], 1).astype(np.float32)


def env_kind(env_id: str) -> tuple[str, Any]:
    """('maze', MazeSpec) for a tabular maze id, ('mountain_car', shaping) for a shaped mountain car id, else a
    RewardLabError naming the ids `compare` knows."""
    from rewardlab.envs.mountain_car import SHAPINGS, mc_env_id
    from rewardlab.envs.tabular_maze import MAZES, maze_spec

    mazes = [f"rewardlab/{m}-v0" for m in MAZES]
    cars = [mc_env_id(s) for s in SHAPINGS]
    if env_id in mazes or env_id in MAZES:
        return "maze", maze_spec(env_id)
    if env_id in cars:
        return "mountain_car", SHAPINGS[cars.index(env_id)]
    raise RewardLabError(
        f"unknown environment '{env_id}' for reward distances; choose one of {', '.join(mazes + cars)}"
    )


def env_spaces(env_id: str) -> tuple[Any, Any]:
    """(observation_space, action_space) of an environment `compare` knows."""
    from gymnasium import spaces

    kind, info = env_kind(env_id)
    if kind == "maze":
        return spaces.Discrete(info.n_states), spaces.Discrete(5)
    from rewardlab.envs.mountain_car import OBS_HIGH, OBS_LOW

    return spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32), spaces.Discrete(3)


def true_reward(env_id: str, name: str) -> Any:
    """The environment's own reward as a net: on a tabular maze `goal` or `path`, optionally `-<shaping>`
    (e.g. `path-dense`); on the shaped mountain car a shaping (`unshaped`, `dense`, `antidense`, `random`)."""
    kind, info = env_kind(env_id)
    if kind == "maze":
        from rewardlab.envs.tabular_maze import REWARD_KINDS, SHAPINGS, reward_table
        from rewardlab.rewards.tabular import TabularRewardNet

        base, _, shaping = name.partition("-")
        if base not in REWARD_KINDS or (shaping or "unshaped") not in SHAPINGS:
            raise RewardLabError(
                f"unknown maze reward 'true:{name}'; use true:<{'|'.join(REWARD_KINDS)}>[-<{'|'.join(SHAPINGS)}>], "
                "e.g. true:path-dense"
            )
        return TabularRewardNet.from_table(reward_table(info, base, shaping or "unshaped"))
    from rewardlab.envs.mountain_car import SHAPINGS
    from rewardlab.rewards.mountain_car import MountainCarRewardNet

    if name not in SHAPINGS:
        raise RewardLabError(f"unknown mountain car reward 'true:{name}'; use true:<{'|'.join(SHAPINGS)}>")
    return MountainCarRewardNet(name)


def check_spaces(nets: Sequence[Any], names: Sequence[str], env_id: str) -> None:
    """Refuse rewards on different spaces, or on spaces other than the environment's."""
    spaces_of = [(getattr(n, "observation_space", None), getattr(n, "action_space", None)) for n in nets]
    for i in range(1, len(nets)):
        if spaces_of[i] != spaces_of[0]:
            raise RewardLabError(
                f"'{names[0]}' and '{names[i]}' are rewards on different spaces (observations {spaces_of[0][0]} vs "
                f"{spaces_of[i][0]}, actions {spaces_of[0][1]} vs {spaces_of[i][1]}); compare rewards of one "
                "environment"
            )
    obs_space, act_space = env_spaces(env_id)
    if spaces_of and spaces_of[0] != (obs_space, act_space):
        raise RewardLabError(
            f"'{names[0]}' is a reward on observations {spaces_of[0][0]} and actions {spaces_of[0][1]}, but {env_id} "
            f"has observations {obs_space} and actions {act_space}; give that environment's --env"
        )


def compare_rewards(
    nets: Sequence[Any],
    env_id: str,
    method: str = "epic",
    samples: int = 4096,
    canonical_samples: int | None = None,
    seed: int = 0,
    gamma: float | None = None,
    reps: int = 1000,
    confidence: float = 0.95,
    names: Sequence[str] | None = None,
    batch_size: int = 4096,
) -> dict[str, Any]:
    """Pairwise EPIC or DARD distances of reward nets on an environment: exact on a tabular maze, sampled with a
    bootstrap interval on the shaped mountain car. Returns the matrix, its interval (None when exact) and what
    was computed."""
    if method not in METHODS:
        raise RewardLabError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
    names = [f"reward {i + 1}" for i in range(len(nets))] if names is None else list(names)
    if len(nets) < 2:
        raise RewardLabError(f"comparing rewards needs at least two, got {len(nets)}")
    check_spaces(nets, names, env_id)
    kind, info = env_kind(env_id)
    out: dict[str, Any] = {"env": env_id, "method": method, "rewards": names}
    if kind == "maze":
        from rewardlab.envs.tabular_maze import GAMMA

        gamma = GAMMA if gamma is None else float(gamma)
        tables = [reward_tensor(n, info.n_states, 5) for n in nets]
        if method == "epic":
            canon = np.stack([epic_canonical(t, gamma) for t in tables])
            coverage, cov_text = None, "uniform over all (s, a, s') triples; D_S, D_A uniform"
        else:
            trans = maze_transitions(info)
            canon = np.stack([dard_canonical(t, trans, gamma) for t in tables])
            coverage = dynamics_coverage(trans)
            cov_text = "uniform over (s, a), s' = T(s, a) (the maze's dynamics); D_A uniform"
        d = distance_matrix(canon, coverage, names)
        none = dict.fromkeys(("ci_low", "ci_high", "confidence", "samples", "canonical_samples", "seed"))
        return {**out, "mode": "exact", "gamma": gamma, "coverage": cov_text, "distance": d, **none}
    from rewardlab.envs.mountain_car import GAMMA, OBS_HIGH, OBS_LOW

    gamma = GAMMA if gamma is None else float(gamma)
    if samples < 2:
        raise RewardLabError(f"--samples must be at least 2, got {samples}")
    rng = np.random.default_rng(seed)
    obs = rng.uniform(OBS_LOW, OBS_HIGH, size=(samples, 2)).astype(np.float32)
    acts = rng.integers(0, 3, size=samples)
    next_obs = mountain_car_transition(obs, acts)
    cov_text = (
        "states uniform over the observation box [-1.2, 0.6] x [-0.07, 0.07], actions uniform, s' = T(s, a) "
        "(the mountain car's dynamics)"
    )
    if method == "epic":
        m = min(samples, 1024) if canonical_samples is None else int(canonical_samples)
        states = rng.uniform(OBS_LOW, OBS_HIGH, size=(m, 2)).astype(np.float32)
        actions = rng.integers(0, 3, size=m)
        canon = epic_canonical_sampled(nets, obs, acts, next_obs, states, actions, gamma, batch_size=batch_size)
        cov_text += f"; D_S uniform over the box, D_A uniform, {m} canonical samples"
    else:
        m = 3
        canon = dard_canonical_sampled(
            nets, obs, acts, next_obs, np.arange(3), mountain_car_transition, gamma, batch_size=batch_size
        )
        cov_text += "; D_A uniform, its expectation exact over the 3 actions"
    d = distance_matrix(canon, None, names)
    lo, hi = bootstrap_distance_matrix(canon, reps, confidence, seed)
    out.update(mode="sampled", gamma=gamma, coverage=cov_text, distance=d, ci_low=lo, ci_high=hi)
    out.update(confidence=confidence, samples=samples, canonical_samples=m, seed=seed)
    return out


def distance_heatmap(
    matrix: np.ndarray, names: Sequence[str], path: str | os.PathLike, title: str, label: str = "distance"
) -> Any:
    """A labelled heatmap PNG of a pairwise distance matrix (0 to 1), values written in the cells."""
    from rewardlab.interpret.plots import plt, save_figure

    d = np.asarray(matrix, dtype=float)
    k = len(names)
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * k, 1.2 + 0.8 * k))
    im = ax.imshow(d, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{d[i, j]:.3f}", ha="center", va="center", color="white" if d[i, j] < 0.5 else "black")
    ax.set_xlabel("reward")
    ax.set_ylabel("reward")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=label)
    return save_figure(fig, path, pdf=False)
