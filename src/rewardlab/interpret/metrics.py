"""Interpretability measured: sparsity, smoothness, shaping invariance, and optimal-policy preservation."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def sparsity(r: np.ndarray, scale: float) -> dict[str, float]:
    """Fraction of transitions with |r| <= 1% of `scale` (the original reward's max |r|), and mean |r|."""
    r = np.asarray(r, dtype=float)
    thr = 0.01 * scale
    return {"sparsity": float((np.abs(r) <= thr).mean()), "mean_abs": float(np.abs(r).mean())}


def smoothness(r: np.ndarray, pairs: np.ndarray) -> float:
    """Mean |r_i - r_j| over adjacent pairs (lower is smoother)."""
    r = np.asarray(r, dtype=float)
    return float(np.abs(r[pairs[:, 0]] - r[pairs[:, 1]]).mean()) if len(pairs) else float("nan")


def invariance_gap(rewards: Sequence[np.ndarray], center: bool = False) -> float:
    """Largest absolute difference between any two reward vectors on the same transitions (0 = identical).

    With `center`, each is mean-centred first (smooth objectives leave the constant offset free)."""
    rs = [np.asarray(r, dtype=float) - (np.mean(r) if center else 0.0) for r in rewards]
    return float(max((np.abs(a - b).max() for i, a in enumerate(rs) for b in rs[i + 1 :]), default=0.0))


def q_values(
    next_state: np.ndarray, table: np.ndarray, gamma: float, tol: float = 1e-10, max_iter: int = 100_000
) -> np.ndarray:
    """Optimal Q (n_states, n_actions) of a deterministic MDP with reward table R[s, s'] by value iteration."""
    n, k = next_state.shape
    rew = table[np.arange(n)[:, None], next_state]
    v = np.zeros(n)
    for _ in range(max_iter):
        q = rew + gamma * v[next_state]
        v_new = q.max(1)
        if np.abs(v_new - v).max() < tol:
            v = v_new
            break
        v = v_new
    return rew + gamma * v[next_state]


def optimal_action_sets(q: np.ndarray, rel_tol: float = 1e-6) -> np.ndarray:
    """Boolean (n_states, n_actions): actions within rel_tol * max|Q| of the best."""
    tol = rel_tol * max(1.0, float(np.abs(q).max()))
    return q >= q.max(1, keepdims=True) - tol


def same_optimal_policy(next_state: np.ndarray, table_a: np.ndarray, table_b: np.ndarray, gamma: float) -> bool:
    """Whether two reward tables have the same optimal actions in every state (value iteration)."""
    return bool(
        (
            optimal_action_sets(q_values(next_state, table_a, gamma))
            == optimal_action_sets(q_values(next_state, table_b, gamma))
        ).all()
    )
