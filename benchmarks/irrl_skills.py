"""Skill-discovery iterations per second (32 trajectories per iteration, large grid, K = 128, T = 20, clipped linear
reward): our numba learner against the kernels it replaced (benchmarks/skills_reference.py), in the same run,
alternating, on one thread and from the same tables (at the start of training and after `--trained` iterations,
where more trajectories end in different states); 8 seeds batched in threads; the same iteration in numpy; and
`--profile`: where an iteration's time goes, phase by phase, in both kernels.

For scale: the original JAX code on this 2-core CPU does about 83 iterations per second. Issue 19's target: 15,000
it/s for one seed (40M iterations in under 45 minutes).
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

from benchmarks import skills_reference as ref
from benchmarks.common import emit
from rewardlab.agents import skills as new
from rewardlab.agents.skills import _apply_d, _apply_q, _draw_iteration, _rollouts, _softmax_slots, _td_and_stats
from rewardlab.agents.skills import _work_buffers as _buffers


def numpy_iteration(nxt, qs, qb, d, rng, T=20, B=32, w=0.0, eps=0.001, gamma=0.99, lam=0.7, lr=0.004):
    """One iteration (clipped-linear reward), the straightforward numpy way."""
    K, S, A = qs.shape
    z = rng.integers(0, K, B)
    s = np.zeros(B, dtype=np.int64)
    states, actions = [s], []
    for _ in range(T):
        greedy = np.argmax(qs[z, s] + w * qb[z, s], axis=1)
        a = np.where(rng.random(B) < eps, rng.integers(0, A, B), greedy)
        s = nxt[s, a]
        actions.append(a)
        states.append(s)
    st, ac = np.stack(states, 1), np.stack(actions, 1)
    logits = d[:, st[:, -1]] * (st[:, -1] > 0)[None, :, None]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    q = p.mean(0)[np.arange(B), z]
    r = np.maximum(q - 1 / K, 0)
    G = r
    gq = np.zeros_like(qs)
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            s1 = st[:, t + 1]
            a1 = np.argmax(qs[z, s1] + w * qb[z, s1], axis=1)
            G = gamma * ((1 - lam) * qs[z, s1, a1] + lam * G)
        td = G - qs[z, st[:, t], ac[:, t]]
        np.add.at(gq, (z, st[:, t], ac[:, t]), -2 * td / B)
    gd = p.copy()
    gd[:, np.arange(B), z] -= 1
    gd *= (st[:, -1] > 0)[None, :, None] / (d.shape[0] * B)
    gD = np.zeros_like(d)
    for e in range(d.shape[0]):
        np.add.at(gD[e], st[:, -1], gd[e])
    qs -= lr * gq
    d -= lr * gD


@nb.njit(nogil=True, cache=True)
def profile_new(nxt, qs, qb, d, rng, n_iter, T, code, w, eps, gamma, lam, lr, B, gqs, gqb, stats, level):
    """The new `train_iterations` cut after a phase: level 0 random numbers and rollouts, 1 + softmax per distinct
    final state, 2 + rewards, Q(lambda) gradients and statistics, 3 + SGD on Q, 4 + discriminator gradient and SGD
    (the whole iteration)."""
    K, S_states, A = qs.shape
    E = d.shape[0]
    codes, explore, S, Act, Gr, slot_of_state, slot, slot_state, probs, pavg, lts, args, bonuses, acc = _buffers(
        S_states, K, E, T, B
    )
    for _ in range(n_iter):
        _draw_iteration(rng, 0, K, A, T, eps, B, codes, explore)
        _rollouts(nxt, qs, qb, w, T, B, codes, explore, S, Act, Gr)
        if level < 1:
            continue
        n_slots = _softmax_slots(d, S, T, B, slot_of_state, slot, slot_state, probs, pavg, lts, args, bonuses)
        if level >= 2:
            _td_and_stats(
                qs,
                qb,
                d,
                code,
                gamma,
                lam,
                T,
                B,
                codes,
                S,
                Act,
                Gr,
                slot,
                probs,
                pavg,
                lts,
                args,
                bonuses,
                gqs,
                gqb,
                stats,
            )
        if level >= 3:
            _apply_q(qs, qb, lr, T, B, codes, S, Act, gqs, gqb)
        if level >= 4:
            _apply_d(d, lr, B, n_slots, slot_of_state, slot, slot_state, codes, probs, acc)
        else:
            for j in range(n_slots):
                slot_of_state[slot_state[j]] = -1


CONF = dict(grid="large", skills=128, episode_length=20, batch_size=32, reward="linear_clipping", ensemble=1, threads=1)
NEW_PHASES = (
    "random numbers + rollouts",
    "softmax per distinct final state",
    "rewards + Q(lambda) gradients",
    "SGD on Q",
    "discriminator gradient + SGD",
)
REF_PHASES = (
    "random numbers + rollouts",
    "softmax per trajectory + rewards",
    "Q(lambda) gradients (two argmaxes)",
    "discriminator gradient",
    "SGD on Q and D",
)


def _state(iterations: int):
    """One seed's learner after `iterations` (new kernels), and the arguments of `train_iterations`."""
    from rewardlab.agents.skills import _REWARD_CODE, SkillConfig, SkillLearner
    from rewardlab.envs.four_rooms import four_rooms

    world = four_rooms("large")
    L = SkillLearner(SkillConfig(grid="large", skills=128, reward="linear_clipping"), world, [0], threads=1)
    L.train(iterations)
    c = L.cfg
    hyper = (L.T, _REWARD_CODE[c.reward], c.bonus_weight, c.epsilon, c.gamma, c.lam, c.lr, c.batch_size)
    return L, world.next_state, hyper


def _timed(kernel, L, nxt, hyper, n: int, *extra) -> float:
    """Iterations per second of `kernel` over n iterations from copies of L's tables (seed 0)."""
    qs, qb, d, rng = L.Qs[0].copy(), L.Qb[0].copy(), L.D[0].copy(), L.rng[:1].copy()
    grads = (np.zeros_like(qs), np.zeros_like(qb)) + (() if kernel is profile_new else (np.zeros_like(d),))
    t = time.perf_counter()
    kernel(nxt, qs, qb, d, rng, n, *hyper, *grads, np.zeros(5), *extra)
    return n / (time.perf_counter() - t)


def compare(trained: int, iterations: int, repeats: int) -> None:
    """New against reference, one thread, same tables, alternating which goes first; medians."""
    L, nxt, hyper = _state(trained)
    _timed(ref.train_iterations, L, nxt, hyper, 200)  # compile or load from the cache, warm up
    _timed(new.train_iterations, L, nxt, hyper, 200)
    rates = {"new": [], "reference": []}
    ratios = []
    for i in range(repeats):
        order = ("new", "reference") if i % 2 else ("reference", "new")
        r = {
            k: _timed(new.train_iterations if k == "new" else ref.train_iterations, L, nxt, hyper, iterations)
            for k in order
        }
        for k in r:
            rates[k].append(r[k])
        ratios.append(r["new"] / r["reference"])
    conf = dict(CONF, trained_iterations=trained, iterations=iterations, repeats=repeats)
    for k in ("new", "reference"):
        emit("irrl_skills", f"iterations_per_second_single_seed_{k}", statistics.median(rates[k]), "it/s", **conf)
    emit(
        "irrl_skills",
        "speedup_over_reference",
        statistics.median(ratios),
        "x",
        **conf,
        ratios=[round(x, 3) for x in ratios],
        target_iterations_per_second=15000,
    )


def profile(trained: int, iterations: int, repeats: int) -> None:
    """Microseconds per iteration of each phase: kernels cut after each phase, timed by difference (medians)."""
    L, nxt, hyper = _state(trained)
    for name, kernel, phases in (("new", profile_new, NEW_PHASES), ("reference", ref.profile_iterations, REF_PHASES)):
        for level in range(5):
            _timed(kernel, L, nxt, hyper, 200, level)
        us = {level: [] for level in range(5)}
        for _ in range(repeats):
            for level in range(5):
                us[level].append(1e6 / _timed(kernel, L, nxt, hyper, iterations, level))
        cum = [statistics.median(us[level]) for level in range(5)]
        for level, phase in enumerate(phases):
            value = cum[level] - (cum[level - 1] if level else 0.0)
            emit(
                "irrl_skills",
                f"profile_{name}_us_per_iteration",
                value,
                "us",
                phase=phase,
                level=level,
                **dict(CONF, trained_iterations=trained, iterations=iterations, whole_iteration_us=cum[-1]),
            )


def batched(seeds: int, iterations: int, repeats: int) -> None:
    """Seed-iterations per second, `seeds` seeds in threads over the cores, new and reference kernels."""
    from rewardlab.core.runs import available_cores

    L, nxt, hyper = _state(100)
    for name, kernel in (("new", new.train_iterations), ("reference", ref.train_iterations)):

        def one(_: int) -> float:
            return _timed(kernel, L, nxt, hyper, iterations)

        times = []
        with ThreadPoolExecutor(min(seeds, available_cores())) as pool:
            list(pool.map(one, range(seeds)))
            for _ in range(repeats):
                t = time.perf_counter()
                list(pool.map(one, range(seeds)))
                times.append(time.perf_counter() - t)
        emit(
            "irrl_skills",
            f"seed_iterations_per_second_batched_{name}",
            iterations * seeds / statistics.median(times),
            "seed-it/s",
            **dict(CONF, threads=min(seeds, available_cores()), seeds=seeds),
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--iterations", type=int, default=20_000, help="iterations per timing")
    p.add_argument("--repeats", type=int, default=7, help="timings per kernel (medians)")
    p.add_argument(
        "--trained",
        type=int,
        nargs="+",
        default=[100, 200_000],
        help="measure from the tables after these many iterations",
    )
    p.add_argument("--seeds", type=int, default=8, help="seeds in the batched measurement (0: skip)")
    p.add_argument("--profile", action="store_true", help="also time each phase of both kernels")
    args = p.parse_args(argv)
    for trained in args.trained:
        compare(trained, args.iterations, args.repeats)
        if args.profile:
            profile(trained, max(args.iterations // 4, 1000), args.repeats)
    if args.seeds:
        batched(args.seeds, args.iterations // 4, 3)
    from rewardlab.envs.four_rooms import four_rooms

    world = four_rooms("large")
    g = np.random.default_rng(0)
    qs, qb, d = g.random((128, 104, 5)), g.random((128, 104, 5)), g.random((1, 104, 128))
    numpy_iteration(world.next_state, qs, qb, d, g)
    n = 300
    t = time.perf_counter()
    for _ in range(n):
        numpy_iteration(world.next_state, qs, qb, d, g)
    emit(
        "irrl_skills",
        "numpy_iterations_per_second",
        n / (time.perf_counter() - t),
        "it/s",
        **CONF,
        note="the same iteration in numpy, vectorised over the batch",
    )


if __name__ == "__main__":
    main()
