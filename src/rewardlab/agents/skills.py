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
has its own random stream (splitmix64), so a seed's run does not depend on which seeds run beside it. The training
kernel does each iteration's B trajectories side by side, one softmax per distinct final state and the rollout's
greedy actions as the bootstrap actions; it is bit for bit the plain loop it replaced (benchmarks/skills_reference.py,
tested).
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


@nb.njit(inline="always", cache=True)
def _draw_iteration(rng, n, K, A, T, eps, B, codes, explore):
    """The iteration's random numbers, drawn in the order a trajectory-by-trajectory rollout draws them: per
    trajectory its skill, then per step the exploration test (only when eps > 0) and, if exploring, the action.
    explore[b, t] is the random action, or -1 where the step acts greedily."""
    for b in range(B):
        codes[b] = min(int(_next(rng, n) * K), K - 1)
        for t in range(T):
            if eps > 0.0 and _next(rng, n) < eps:
                explore[b, t] = min(int(_next(rng, n) * A), A - 1)
            else:
                explore[b, t] = -1


@nb.njit(inline="always", cache=True)
def _rollouts(nxt, qs, qb, w, T, B, codes, explore, S, Act, Gr):
    """All B trajectories side by side, one step of each at a time (independent chains the CPU overlaps).
    S: states (B, T+1); Act: actions taken; Gr: the greedy action at each visited state (the Q(lambda) bootstrap)."""
    A = qs.shape[2]
    for b in range(B):
        S[b, 0] = 0
    for t in range(T):
        for b in range(B):
            z, s = codes[b], S[b, t]
            best, arg = -1e300, 0
            for a in range(A):
                v = qs[z, s, a] + w * qb[z, s, a]
                better = v > best
                best = v if better else best
                arg = a if better else arg
            Gr[b, t] = arg
            e = explore[b, t]
            a = e if e >= 0 else arg
            Act[b, t] = a
            S[b, t + 1] = nxt[s, a]


@nb.njit(inline="always", cache=True)
def _row_softmax(d, sT, e, probs):
    """probs[:] = softmax of member e's logits at sT (0 at the start state), exactly as `_discriminate` computes
    it; returns log of the normaliser (logp = logit - returned value)."""
    K = probs.shape[0]
    m = -1e300
    if sT > 0:
        for k in range(K):
            v = d[e, sT, k]
            m = v if v > m else m
    else:
        m = 0.0
    tot = 0.0
    for k in range(K):
        p = math.exp((d[e, sT, k] if sT > 0 else 0.0) - m)
        probs[k] = p
        tot += p
    for k in range(K):
        probs[k] /= tot
    return math.log(tot) + m


@nb.njit(inline="always", cache=True)
def _softmax_slots(d, S, T, B, slot_of_state, slot, slot_state, probs, pavg, lts, args, bonuses):
    """One softmax per distinct final state (a slot), as `_discriminate` computes it; slot[b] is trajectory b's.
    Per slot: members' probs, ensemble mean pavg (E > 1), log normalisers, argmax of the mean, DISDAIN bonus.
    Returns the number of slots."""
    E, _, K = d.shape
    n_slots = 0
    for b in range(B):
        sT = S[b, T]
        j = slot_of_state[sT]
        if j < 0:
            j = n_slots
            n_slots += 1
            slot_of_state[sT] = j
            slot_state[j] = sT
            for e in range(E):
                lts[j, e] = _row_softmax(d, sT, e, probs[j, e])
            best, arg, h_avg = -1.0, 0, 0.0
            if E == 1:
                for k in range(K):
                    pa = probs[j, 0, k]
                    if pa > best:
                        best, arg = pa, k
                bonuses[j] = 0.0
            else:
                for k in range(K):
                    pa = 0.0
                    for e in range(E):
                        pa += probs[j, e, k]
                    pa /= E
                    pavg[j, k] = pa
                    if pa > best:
                        best, arg = pa, k
                    if pa > 0.0:
                        h_avg -= pa * math.log(pa)
                h_members = 0.0
                for e in range(E):
                    lt = lts[j, e]
                    for k in range(K):
                        p = probs[j, e, k]
                        if p > 0.0:
                            h_members -= p * ((d[e, sT, k] if sT > 0 else 0.0) - lt)
                h_members /= E
                bonuses[j] = h_avg - h_members
            args[j] = arg
        slot[b] = j
    return n_slots


@nb.njit(inline="always", cache=True)
def _td_and_stats(
    qs, qb, d, code, gamma, lam, T, B, codes, S, Act, Gr, slot, probs, pavg, lts, args, bonuses, gqs, gqb, stats
):
    """Rewards, the Q(lambda) gradients of both tables (the bootstrap action being the rollout's greedy one) and the
    statistics, trajectory by trajectory as `_td_grad` and the reference loop do them."""
    E, _, K = d.shape
    scale = 1.0 / B
    for b in range(B):
        z, j = codes[b], slot[b]
        sT = S[b, T]
        q_z = probs[j, 0, z] if E == 1 else pavg[j, z]
        log_qz = math.log(q_z) if q_z > 0.0 else -745.0
        correct = 1.0 if args[j] == z else 0.0
        bonus = bonuses[j]
        r = _skill_reward(code, log_qz, q_z, correct, K)
        Gs, Gb, loss_s, loss_b = r, bonus, 0.0, 0.0
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                s1, a1 = S[b, t + 1], Gr[b, t + 1]
                Gs = gamma * ((1.0 - lam) * qs[z, s1, a1] + lam * Gs)
                Gb = gamma * ((1.0 - lam) * qb[z, s1, a1] + lam * Gb)
            s, a = S[b, t], Act[b, t]
            td = Gs - qs[z, s, a]
            loss_s += td * td
            gqs[z, s, a] -= 2.0 * td * scale
            td = Gb - qb[z, s, a]
            loss_b += td * td
            gqb[z, s, a] -= 2.0 * td * scale
        stats[0] += loss_s / B
        stats[1] += loss_b / B
        lsum = 0.0
        for e in range(E):
            lsum += (d[e, sT, z] if sT > 0 else 0.0) - lts[j, e]
        stats[2] += -lsum / (E * B)
        stats[3] += r / B
        stats[4] += bonus / B


@nb.njit(inline="always", cache=True)
def _apply_q(qs, qb, lr, T, B, codes, S, Act, gqs, gqb):
    """SGD on the touched Q entries; zeroes the gradient buffers again."""
    for b in range(B):
        z = codes[b]
        for t in range(T):
            s, a = S[b, t], Act[b, t]
            if gqs[z, s, a] != 0.0 or gqb[z, s, a] != 0.0:
                qs[z, s, a] -= lr * gqs[z, s, a]
                qb[z, s, a] -= lr * gqb[z, s, a]
                gqs[z, s, a] = 0.0
                gqb[z, s, a] = 0.0


@nb.njit(inline="always", cache=True)
def _apply_d(d, lr, B, n_slots, slot_of_state, slot, slot_state, codes, probs, acc):
    """SGD on the discriminator rows of the slots, each row's gradient summed in trajectory order; frees the slots."""
    E, _, K = d.shape
    for j in range(n_slots):
        sT = slot_state[j]
        slot_of_state[sT] = -1
        if sT == 0:  # the start state's logits are fixed at 0
            continue
        for e in range(E):
            acc[:] = 0.0
            for b in range(B):
                if slot[b] == j:
                    for k in range(K):
                        acc[k] += probs[j, e, k] / (E * B)
                    acc[codes[b]] -= 1.0 / (E * B)
            for k in range(K):
                if acc[k] != 0.0:
                    d[e, sT, k] -= lr * acc[k]


@nb.njit(cache=True)
def _work_buffers(S_states, K, E, T, B):
    """Per-iteration work arrays of `train_iterations`, allocated once per call."""
    return (
        np.empty(B, dtype=np.int64),  # codes
        np.empty((B, T), dtype=np.int64),  # explore
        np.empty((B, T + 1), dtype=np.int64),  # S
        np.empty((B, T), dtype=np.int64),  # Act
        np.empty((B, T), dtype=np.int64),  # Gr
        np.full(S_states, -1, dtype=np.int64),  # slot_of_state
        np.empty(B, dtype=np.int64),  # slot
        np.empty(B, dtype=np.int64),  # slot_state
        np.empty((B, E, K)),  # probs
        np.empty((B, K)),  # pavg
        np.empty((B, E)),  # lts
        np.empty(B, dtype=np.int64),  # args
        np.empty(B),  # bonuses
        np.empty(K),  # acc
    )


@nb.njit(nogil=True, cache=True)
def train_iterations(nxt, qs, qb, d, rng, n_iter, T, code, w, eps, gamma, lam, lr, B, gqs, gqb, gd, stats):
    """Run n_iter SGD iterations of one seed (its tables qs, qb, d and its random stream rng[0]).

    stats accumulates (skill loss, bonus loss, discriminator loss, skill reward, bonus) sums over the iterations.
    Bit for bit the straightforward iteration (benchmarks/skills_reference.py): the same random numbers in the same
    order and the same float operations in the same order; only work whose result is already known is skipped (the
    tables do not change within an iteration, so the bootstrap action is the one the rollout computed, and
    trajectories ending in the same state share one softmax). gd is not used (kept for the signature).
    """
    K, S_states, A = qs.shape
    E = d.shape[0]
    codes, explore, S, Act, Gr, slot_of_state, slot, slot_state, probs, pavg, lts, args, bonuses, acc = _work_buffers(
        S_states, K, E, T, B
    )
    for _ in range(n_iter):  # gqs, gqb are all zero here: each update zeroes what it applied
        _draw_iteration(rng, 0, K, A, T, eps, B, codes, explore)
        _rollouts(nxt, qs, qb, w, T, B, codes, explore, S, Act, Gr)
        n_slots = _softmax_slots(d, S, T, B, slot_of_state, slot, slot_state, probs, pavg, lts, args, bonuses)
        _td_and_stats(
            qs, qb, d, code, gamma, lam, T, B, codes, S, Act, Gr, slot, probs, pavg, lts, args, bonuses, gqs, gqb, stats
        )
        _apply_q(qs, qb, lr, T, B, codes, S, Act, gqs, gqb)
        _apply_d(d, lr, B, n_slots, slot_of_state, slot, slot_state, codes, probs, acc)


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
