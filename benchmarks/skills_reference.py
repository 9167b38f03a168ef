"""The skill-discovery kernels as they were before issue 19 (commit f37153e), kept verbatim as the speed reference
and the bit-for-bit reference of `rewardlab.agents.skills` (`python -m benchmarks irrl_skills`, tests); plus
`profile_iterations`, the same loop cut after a phase, for the profile."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from rewardlab.rewards.kinds import FORMULAS, TABLE

_FORMULA = np.array([FORMULAS.index(k.formula) for k in sorted(TABLE, key=lambda k: k.code)], dtype=np.int64)
_CLIPPED = np.array([k.clipped for k in sorted(TABLE, key=lambda k: k.code)])
_PM1 = np.array([k.plus_minus_one for k in sorted(TABLE, key=lambda k: k.code)])


# ------------------------------------------------------------------------------------------- random numbers
@nb.njit(inline="always", cache=True)
def _next(state: np.ndarray, i: int) -> float:
    """splitmix64: advance the stream `state[i]` and return a uniform double in [0, 1)."""
    s = (state[i] + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    state[i] = s
    z = s
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


# ------------------------------------------------------------------------------------------------- kernels
@nb.njit(inline="always", cache=True)
def _greedy(qs, qb, w, z, s):
    best, arg = -1e300, 0
    for a in range(qs.shape[2]):
        v = qs[z, s, a] + w * qb[z, s, a]
        if v > best:
            best, arg = v, a
    return arg


@nb.njit(inline="always", cache=True)
def _act(qs, qb, w, z, s, eps, rng, n):
    if eps > 0.0 and _next(rng, n) < eps:
        return min(int(_next(rng, n) * qs.shape[2]), qs.shape[2] - 1)
    return _greedy(qs, qb, w, z, s)


@nb.njit(inline="always", cache=True)
def _discriminate(D, sT, z, probs, logp):
    """Fill probs/logp (E, K) for final state sT; return (log q_avg(z), q_avg(z), argmax q_avg == z, bonus)."""
    E, _, K = D.shape
    for e in range(E):
        m = -1e300
        for k in range(K):
            v = D[e, sT, k] if sT > 0 else 0.0
            logp[e, k] = v
            if v > m:
                m = v
        tot = 0.0
        for k in range(K):
            p = math.exp(logp[e, k] - m)
            probs[e, k] = p
            tot += p
        lt = math.log(tot) + m
        for k in range(K):
            probs[e, k] /= tot
            logp[e, k] -= lt
    best, arg, h_avg, q_z = -1.0, 0, 0.0, 0.0
    for k in range(K):
        pa = 0.0
        for e in range(E):
            pa += probs[e, k]
        pa /= E
        if pa > best:
            best, arg = pa, k
        if E > 1 and pa > 0.0:
            h_avg -= pa * math.log(pa)
        if k == z:
            q_z = pa
    h_members = 0.0
    if E > 1:  # with one member the bonus is exactly 0
        for e in range(E):
            for k in range(K):
                if probs[e, k] > 0.0:
                    h_members -= probs[e, k] * logp[e, k]
        h_members /= E
    else:
        h_avg = h_members
    log_qz = math.log(q_z) if q_z > 0.0 else -745.0
    return log_qz, q_z, 1.0 if arg == z else 0.0, h_avg - h_members


@nb.njit(inline="always", cache=True)
def _skill_reward(code, log_qz, q_z, correct, K):
    """The reward of kind `code` (rewardlab.rewards.kinds) with the label prior 1/K."""
    formula = _FORMULA[code]
    if formula == 0:  # accuracy
        return 2.0 * correct - 1.0 if _PM1[code] else correct
    r = q_z - 1.0 / K if formula == 1 else log_qz + math.log(K)  # linear q - p, or log q - log p
    return max(r, 0.0) if _CLIPPED[code] else r


@nb.njit(cache=True)
def _rollout(nxt, qs, qb, w, z, T, eps, rng, n, states, actions):
    s = 0
    for t in range(T):
        states[t] = s
        a = _act(qs, qb, w, z, s, eps, rng, n)
        actions[t] = a
        s = nxt[s, a]
    states[T] = s


@nb.njit(cache=True)
def _td_grad(q, qs, qb, w, z, states, actions, r, T, gamma, lam, scale, gq):
    """Accumulate d/dq of sum_t (G_t - q[z, s_t, a_t])^2 * scale into gq; return the summed squared TD error."""
    G = r
    loss = 0.0
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            s1 = states[t + 1]
            a1 = _greedy(qs, qb, w, z, s1)
            G = gamma * ((1.0 - lam) * q[z, s1, a1] + lam * G)
        td = G - q[z, states[t], actions[t]]
        loss += td * td
        gq[z, states[t], actions[t]] -= 2.0 * td * scale
    return loss


@nb.njit(nogil=True, cache=True)
def train_iterations(nxt, qs, qb, d, rng, n_iter, T, code, w, eps, gamma, lam, lr, B, gqs, gqb, gd, stats):
    """Run n_iter SGD iterations of one seed (its tables qs, qb, d and its random stream rng[0]).

    stats accumulates (skill loss, bonus loss, discriminator loss, skill reward, bonus) sums over the iterations.
    """
    K = qs.shape[0]
    E = d.shape[0]
    n = 0
    if True:
        states = np.empty(T + 1, dtype=np.int64)
        actions = np.empty(T, dtype=np.int64)
        all_states = np.empty((B, T + 1), dtype=np.int64)
        all_actions = np.empty((B, T), dtype=np.int64)
        codes = np.empty(B, dtype=np.int64)
        probs = np.empty((E, K))
        logp = np.empty((E, K))
        for _ in range(n_iter):  # the gradient buffers are all zero here: each update zeroes what it applied
            for b in range(B):
                z = min(int(_next(rng, n) * K), K - 1)
                codes[b] = z
                _rollout(nxt, qs, qb, w, z, T, eps, rng, n, states, actions)
                all_states[b] = states
                all_actions[b] = actions
            for b in range(B):
                z = codes[b]
                sT = all_states[b, T]
                log_qz, q_z, correct, bonus = _discriminate(d, sT, z, probs, logp)
                r = _skill_reward(code, log_qz, q_z, correct, K)
                stats[0] += (
                    _td_grad(qs, qs, qb, w, z, all_states[b], all_actions[b], r, T, gamma, lam, 1.0 / B, gqs) / B
                )
                stats[1] += (
                    _td_grad(qb, qs, qb, w, z, all_states[b], all_actions[b], bonus, T, gamma, lam, 1.0 / B, gqb) / B
                )
                if sT > 0:  # the start state's logits are fixed at 0
                    for e in range(E):
                        for k in range(K):
                            gd[e, sT, k] += probs[e, k] / (E * B)
                        gd[e, sT, z] -= 1.0 / (E * B)
                stats[2] += -(logp[:, z].sum()) / (E * B)
                stats[3] += r / B
                stats[4] += bonus / B
            for b in range(B):  # apply only the touched entries
                z = codes[b]
                for t in range(T):
                    s, a = all_states[b, t], all_actions[b, t]
                    if gqs[z, s, a] != 0.0 or gqb[z, s, a] != 0.0:
                        qs[z, s, a] -= lr * gqs[z, s, a]
                        qb[z, s, a] -= lr * gqb[z, s, a]
                        gqs[z, s, a] = 0.0
                        gqb[z, s, a] = 0.0
                sT = all_states[b, T]
                if sT > 0:
                    for e in range(E):
                        for k in range(K):
                            if gd[e, sT, k] != 0.0:
                                d[e, sT, k] -= lr * gd[e, sT, k]
                                gd[e, sT, k] = 0.0


@nb.njit(nogil=True, cache=True)
def evaluate_batch(nxt, qs, qb, d, rng, T, w, eps, B, out_log, out_final, out_visits):
    """Roll out B trajectories of one seed; record unclipped log rewards, final states and state visit counts."""
    K = qs.shape[0]
    E = d.shape[0]
    n = 0
    if True:
        states = np.empty(T + 1, dtype=np.int64)
        actions = np.empty(T, dtype=np.int64)
        probs = np.empty((E, K))
        logp = np.empty((E, K))
        for b in range(B):
            z = min(int(_next(rng, n) * K), K - 1)
            _rollout(nxt, qs, qb, w, z, T, eps, rng, n, states, actions)
            log_qz, _, _, _ = _discriminate(d, states[T], z, probs, logp)
            out_log[b] = log_qz + math.log(K)
            out_final[b] = states[T]
            for t in range(T + 1):
                out_visits[states[t]] += 1


@nb.njit(nogil=True, cache=True)
def profile_iterations(nxt, qs, qb, d, rng, n_iter, T, code, w, eps, gamma, lam, lr, B, gqs, gqb, gd, stats, level):
    """`train_iterations` cut after a phase, to time the phases by difference: level 0 rollouts (with the random
    numbers), 1 + softmax and rewards, 2 + both Q(lambda) gradients, 3 + the discriminator gradient, 4 + the SGD
    updates (the whole iteration)."""
    K = qs.shape[0]
    E = d.shape[0]
    n = 0
    states = np.empty(T + 1, dtype=np.int64)
    actions = np.empty(T, dtype=np.int64)
    all_states = np.empty((B, T + 1), dtype=np.int64)
    all_actions = np.empty((B, T), dtype=np.int64)
    codes = np.empty(B, dtype=np.int64)
    probs = np.empty((E, K))
    logp = np.empty((E, K))
    for _ in range(n_iter):
        for b in range(B):
            z = min(int(_next(rng, n) * K), K - 1)
            codes[b] = z
            _rollout(nxt, qs, qb, w, z, T, eps, rng, n, states, actions)
            all_states[b] = states
            all_actions[b] = actions
        if level < 1:
            continue
        for b in range(B):
            z = codes[b]
            sT = all_states[b, T]
            log_qz, q_z, correct, bonus = _discriminate(d, sT, z, probs, logp)
            r = _skill_reward(code, log_qz, q_z, correct, K)
            if level >= 2:
                stats[0] += (
                    _td_grad(qs, qs, qb, w, z, all_states[b], all_actions[b], r, T, gamma, lam, 1.0 / B, gqs) / B
                )
                stats[1] += (
                    _td_grad(qb, qs, qb, w, z, all_states[b], all_actions[b], bonus, T, gamma, lam, 1.0 / B, gqb) / B
                )
            if level >= 3 and sT > 0:
                for e in range(E):
                    for k in range(K):
                        gd[e, sT, k] += probs[e, k] / (E * B)
                    gd[e, sT, z] -= 1.0 / (E * B)
            stats[2] += -(logp[:, z].sum()) / (E * B)
            stats[3] += r / B
            stats[4] += bonus / B
        if level < 4:
            continue
        for b in range(B):
            z = codes[b]
            for t in range(T):
                s, a = all_states[b, t], all_actions[b, t]
                if gqs[z, s, a] != 0.0 or gqb[z, s, a] != 0.0:
                    qs[z, s, a] -= lr * gqs[z, s, a]
                    qb[z, s, a] -= lr * gqb[z, s, a]
                    gqs[z, s, a] = 0.0
                    gqb[z, s, a] = 0.0
            sT = all_states[b, T]
            if sT > 0:
                for e in range(E):
                    for k in range(K):
                        if gd[e, sT, k] != 0.0:
                            d[e, sT, k] -= lr * gd[e, sT, k]
                            gd[e, sT, k] = 0.0
