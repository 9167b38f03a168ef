"""Tabular unsupervised skill discovery with a discriminator reward (and DISDAIN), several seeds at once.

The DISDAIN Colab setup used by the IRRL paper (docs/originals.md, skill discovery): skills z ~ U{0..K-1}; a tabular
discriminator ensemble q_e(z | s_T) over the final state only (logits E x S x K, U[0,1), the start state's row
held at 0); rewards on the final transition (log q(z|s_T) + log K, q - 1/K, each clipped or not, accuracy, and the
DISDAIN bonus H(mean_e q_e) - mean_e H(q_e)); two tabular Q tables (skill and bonus, K x S x 5, U[0,1));
epsilon-greedy on Q_skill + w Q_bonus; Q(lambda) targets whose bootstrap action is the argmax of that sum, with no
bootstrap after s_T; one plain SGD step per iteration on the summed squared TD errors (averaged over the batch)
plus the discriminator's mean cross-entropy.

Implementation: numba. Measured on 2 cores (`python -m benchmarks irrl_skills`), a compiled loop beats numpy (one
call per time step) by far at these sizes; seeds run side by side in threads (the kernels release the GIL). Every seed
has its own random stream (splitmix64), so a seed's run does not depend on which seeds run beside it.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from rewardlab.agents.configs import SKILL_REWARDS, SkillConfig  # noqa: F401
from rewardlab.envs.four_rooms import FourRooms
from rewardlab.errors import RewardLabError
from rewardlab.rewards.kinds import FORMULAS, KINDS, TABLE

_REWARD_CODE = {k: KINDS[k].code for k in SKILL_REWARDS}
# The reward table as arrays indexed by a kind's code (compile-time constants of the kernels).
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


# ------------------------------------------------------------------------------------------------ learner
class SkillLearner:
    """Q tables, discriminators and random streams of several seeds, trained side by side."""

    def __init__(self, cfg: SkillConfig, world: FourRooms, seeds: list[int], threads: int = 0):
        from rewardlab.core.runs import available_cores

        cfg.validate()
        self.threads = threads or available_cores()
        if not seeds:
            raise RewardLabError("give at least one seed")
        self.cfg, self.world, self.seeds = cfg, world, list(seeds)
        N, K, S, E = len(seeds), cfg.skills, world.n_states, cfg.ensemble
        self.T = cfg.horizon(world)
        self.Qs = np.empty((N, K, S, 5))
        self.Qb = np.empty((N, K, S, 5))
        self.D = np.empty((N, E, S, K))
        for i, seed in enumerate(seeds):
            g = np.random.default_rng(seed)
            self.Qs[i], self.Qb[i], self.D[i] = g.random((K, S, 5)), g.random((K, S, 5)), g.random((E, S, K))
        self.D[:, :, 0, :] = 0.0
        seq = [np.random.SeedSequence(s).generate_state(2, dtype=np.uint64) for s in seeds]
        self.rng = np.array([s[0] for s in seq], dtype=np.uint64)
        self.eval_rng = np.array([s[1] for s in seq], dtype=np.uint64)
        self.iterations = 0
        self._grads = (np.zeros_like(self.Qs), np.zeros_like(self.Qb), np.zeros_like(self.D))

    def _map(self, fn) -> None:
        """Run fn(i) for every seed, in parallel threads (the kernels release the GIL)."""
        workers = min(len(self.seeds), self.threads)
        if workers <= 1:
            for i in range(len(self.seeds)):
                fn(i)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fn, range(len(self.seeds))))

    def train(self, n_iter: int) -> dict[str, np.ndarray]:
        """Run n_iter iterations for every seed; returns per-seed means of the losses, reward and bonus."""
        c = self.cfg
        stats = np.zeros((len(self.seeds), 5))
        if n_iter > 0:
            gqs, gqb, gd = self._grads

            def one(i: int) -> None:
                train_iterations(
                    self.world.next_state,
                    self.Qs[i],
                    self.Qb[i],
                    self.D[i],
                    self.rng[i : i + 1],
                    int(n_iter),
                    self.T,
                    _REWARD_CODE[c.reward],
                    float(c.bonus_weight),
                    float(c.epsilon),
                    float(c.gamma),
                    float(c.lam),
                    float(c.lr),
                    int(c.batch_size),
                    gqs[i],
                    gqb[i],
                    gd[i],
                    stats[i],
                )

            self._map(one)
            stats /= n_iter
        self.iterations += n_iter
        keys = ("skill_loss", "bonus_loss", "discriminator_loss", "mean_reward", "mean_bonus")
        return {k: stats[:, i] for i, k in enumerate(keys)}

    def evaluate(self, batch: int | None = None) -> dict[str, np.ndarray]:
        """Effective skills exp(mean unclipped log reward) per seed, final-state and all-step occupancies."""
        B = batch or self.cfg.eval_batch_size
        N, S = len(self.seeds), self.world.n_states
        logs = np.empty((N, B))
        finals = np.empty((N, B), dtype=np.int64)
        visits = np.zeros((N, S))

        def one(i: int) -> None:
            evaluate_batch(
                self.world.next_state,
                self.Qs[i],
                self.Qb[i],
                self.D[i],
                self.eval_rng[i : i + 1],
                self.T,
                float(self.cfg.bonus_weight),
                float(self.cfg.eval_epsilon),
                int(B),
                logs[i],
                finals[i],
                visits[i],
            )

        self._map(one)
        final_occ = np.stack([np.bincount(f, minlength=S) for f in finals]) / B
        return {
            "effective_skills": np.exp(logs.mean(axis=1)),
            "final_occupancy": final_occ,
            "occupancy": visits / visits.sum(axis=1, keepdims=True),
        }

    def greedy_skills(self) -> dict[str, np.ndarray]:
        """Per seed: how many skills, run greedily (no exploration), end in a state that the discriminator decodes
        as that skill (`skills_learned`), and how many distinct final states the K skills reach."""
        N, K = len(self.seeds), self.cfg.skills
        z = np.arange(K)
        learned, distinct = np.zeros(N, dtype=np.int64), np.zeros(N, dtype=np.int64)
        for n in range(N):
            s = np.zeros(K, dtype=np.int64)
            combined = self.Qs[n] + self.cfg.bonus_weight * self.Qb[n]
            for _ in range(self.T):
                s = self.world.next_state[s, combined[z, s].argmax(1)]
            logits = self.D[n][:, s, :] * (s > 0)[None, :, None]  # (E, K, K): the start state's logits are 0
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs = (probs / probs.sum(-1, keepdims=True)).mean(0)
            learned[n] = int((probs.argmax(1) == z).sum())
            distinct[n] = len(np.unique(s))
        return {"skills_learned": learned, "distinct_final_states": distinct}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "Qs": self.Qs,
            "Qb": self.Qb,
            "D": self.D,
            "rng": self.rng,
            "eval_rng": self.eval_rng,
            "iterations": np.array(self.iterations),
            "seeds": np.array(self.seeds),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for k in ("Qs", "Qb", "D", "rng", "eval_rng"):
            if state[k].shape != getattr(self, k).shape:
                raise RewardLabError(f"saved {k} has shape {state[k].shape}, this learner {getattr(self, k).shape}")
            getattr(self, k)[...] = state[k]
        self.iterations = int(state["iterations"])
