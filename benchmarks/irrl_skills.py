"""Skill-discovery iterations per second (32 trajectories per iteration, large grid, K = 128, T = 20): our numba
learner with one seed and with 8 seeds batched (seed-iterations per second), against the same iteration written
in numpy (vectorised over the batch, a Python loop over time steps), measured in the same run.

For scale: the original JAX code on this 2-core CPU does about 83 iterations per second. Target: >= 5,000.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import emit


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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--iterations", type=int, default=100_000, help="iterations per timing (numba)")
    p.add_argument("--seeds", type=int, default=8, help="seeds in the batched measurement")
    args = p.parse_args(argv)
    from rewardlab.agents.skills import SkillConfig, SkillLearner
    from rewardlab.envs.four_rooms import four_rooms

    world = four_rooms("large")
    cfg = SkillConfig(grid="large", skills=128, reward="linear_clipping")
    conf = dict(grid="large", skills=128, episode_length=20, batch_size=32, reward="linear_clipping")

    def rate(seeds: list[int]) -> float:
        L = SkillLearner(cfg, world, seeds)
        L.train(100)  # compile (cached after the first run) and warm up
        times = []
        for _ in range(3):
            t = time.perf_counter()
            L.train(args.iterations)
            times.append(time.perf_counter() - t)
        return args.iterations * len(seeds) / float(np.median(times))

    single = rate([0])
    emit("irrl_skills", "iterations_per_second_single_seed", single, "it/s", **conf, target=5000)
    batched = rate(list(range(args.seeds)))
    emit("irrl_skills", "seed_iterations_per_second_batched", batched, "seed-it/s", **conf, seeds=args.seeds)
    g = np.random.default_rng(0)
    qs, qb, d = g.random((128, 104, 5)), g.random((128, 104, 5)), g.random((1, 104, 128))
    numpy_iteration(world.next_state, qs, qb, d, g)
    n = 300
    t = time.perf_counter()
    for _ in range(n):
        numpy_iteration(world.next_state, qs, qb, d, g)
    numpy_rate = n / (time.perf_counter() - t)
    emit(
        "irrl_skills",
        "numpy_iterations_per_second",
        numpy_rate,
        "it/s",
        **conf,
        note="the same iteration in numpy, vectorised over the batch",
    )
    emit("irrl_skills", "speedup_over_numpy", single / numpy_rate, "x", **conf)


if __name__ == "__main__":
    main()
