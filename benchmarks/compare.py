"""Reward-comparison speed: exact tabular EPIC and DARD on EmptyMaze10 and KeyMaze10 (building the R[s, a, s']
tables from reward nets, and the distance from the tables), and sampled EPIC throughput (coverage transitions
canonicalised per second, and reward evaluations per second) for an MLP reward on mountain car observations and a
CNN reward on 3x64x64 images. Medians of a few repetitions after a warm-up; run with nothing else on the machine."""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import emit, median_time

NAME = "compare"


def tabular(repeats: int) -> None:
    """Seconds for the exact distance between two maze rewards, from nets (tables built) and from tables."""
    from rewardlab.envs.tabular_maze import GAMMA, MAZES, reward_table
    from rewardlab.interpret.distances import (
        dard_distance,
        epic_distance,
        maze_transitions,
        reward_tensor,
    )
    from rewardlab.rewards.tabular import TabularRewardNet

    for maze in ("EmptyMaze10", "KeyMaze10"):
        spec = MAZES[maze]
        nets = [TabularRewardNet.from_table(reward_table(spec, k, "dense")) for k in ("goal", "path")]
        trans = maze_transitions(spec)
        tables = [reward_tensor(n, spec.n_states, 5) for n in nets]
        t_tables = median_time(lambda: [reward_tensor(n, spec.n_states, 5) for n in nets], repeats=repeats)
        conf = dict(maze=maze, n_states=spec.n_states, n_actions=5, rewards=2, triples=spec.n_states**2 * 5)
        emit(
            NAME,
            "tabular_tables_seconds",
            t_tables,
            "s",
            what="2 reward nets -> R[s, a, s'] (one predict each)",
            **conf,
        )
        for method, fn in (
            ("epic", lambda: epic_distance(*tables, GAMMA)),
            ("dard", lambda: dard_distance(*tables, trans, GAMMA)),
        ):
            value = fn()
            emit(NAME, f"{method}_exact_seconds", median_time(fn, repeats=repeats), "s", distance=value, **conf)


def sampled(name: str, nets: list, obs: np.ndarray, acts: np.ndarray, m: int, repeats: int, **conf) -> None:
    """Coverage transitions/s and reward evaluations/s of sampled EPIC on `obs` with `m` canonical samples."""
    import torch

    from rewardlab.interpret.distances import epic_canonical_sampled

    rng = np.random.default_rng(0)
    n = len(obs) // 2
    states, actions = obs[n : n + m], acts[n : n + m]
    cov = obs[:n], acts[:n], obs[rng.permutation(n)]
    batch = conf.pop("batch_size")
    t = median_time(
        lambda: epic_canonical_sampled(nets, *cov, states, actions, 0.99, batch_size=batch), repeats=repeats
    )
    evals = len(nets) * (n + (2 * n + m) * m)
    conf = dict(conf, coverage=n, canonical_samples=m, batch_size=batch, torch_threads=torch.get_num_threads())
    emit(NAME, f"sampled_epic_{name}_transitions_per_second", n / t, "transitions/s", seconds=t, **conf)
    emit(NAME, f"sampled_epic_{name}_evaluations_per_second", evals / t, "evaluations/s", **conf)


def mlp(n: int, m: int, repeats: int) -> None:
    """A mountain car reward with the preprocessing's 4x128 MLP potential: R = r_unshaped + gamma Phi(s') - Phi(s)."""
    import torch

    from rewardlab.envs.mountain_car import OBS_HIGH, OBS_LOW
    from rewardlab.rewards.mountain_car import MountainCarRewardNet
    from rewardlab.rewards.shaping import MLPPotential, ShapedRewardNet

    torch.manual_seed(0)
    nets = [ShapedRewardNet(MountainCarRewardNet("unshaped"), MLPPotential(2), 0.99) for _ in range(2)]
    rng = np.random.default_rng(0)
    obs = rng.uniform(OBS_LOW, OBS_HIGH, size=(2 * n, 2)).astype(np.float32)
    acts = rng.integers(0, 3, 2 * n)
    sampled(
        "mlp",
        nets,
        obs,
        acts,
        m,
        repeats,
        reward="ShapedRewardNet(MountainCar, MLPPotential 4x128)",
        rewards=2,
        batch_size=2048,
    )


def cnn(n: int, m: int, repeats: int) -> None:
    """imitation's CnnRewardNet (widths 32, 32) on 3x64x64 uint8 images, R(s, a)."""
    import torch

    from rewardlab.rewards.nets import CnnRewardNet

    torch.manual_seed(0)
    nets = [CnnRewardNet((3, 64, 64), n_actions=15) for _ in range(2)]
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, size=(2 * n, 3, 64, 64), dtype=np.uint8)
    acts = rng.integers(0, 15, 2 * n)
    sampled("cnn", nets, obs, acts, m, repeats, reward="CnnRewardNet 3x64x64, hid (32, 32)", rewards=2, batch_size=512)


def lp_tie_break(n: int) -> None:
    """The preprocessing LP with its canonical tie-break against without, on the same n random rewards and random
    shaped copies per maze: time per solve and the largest difference between the two copies' r' (centred for
    smooth_l1, whose objective ignores constants)."""
    from rewardlab.envs.tabular_maze import GAMMA, MAZES
    from rewardlab.interpret.preprocess import solve_lp, tabular_pairs

    for name in ("EmptyMaze4", "KeyMaze6", "EmptyMaze10", "KeyMaze10"):
        spec = MAZES[name]
        s, _, s2 = spec.all_transitions()
        d, pairs = np.zeros(len(s), dtype=bool), tabular_pairs(s, s2)
        for obj in ("sparse_l1", "smooth_l1"):
            for tb in ("canonical", "none"):
                rng = np.random.default_rng(0)
                gap, secs = 0.0, 0.0
                for _ in range(n):
                    R = rng.normal(size=(spec.n_states, spec.n_states))
                    phi = rng.normal(scale=3.0, size=spec.n_states)
                    r = R[s, s2]
                    t0 = time.perf_counter()
                    a, b = (
                        solve_lp(x, s, s2, d, spec.n_states, GAMMA, obj, pairs, tie_break=tb)["shaped"]
                        for x in (r, r + GAMMA * phi[s2] - phi[s] - rng.normal())
                    )
                    secs += time.perf_counter() - t0
                    if obj == "smooth_l1":
                        a, b = a - a.mean(), b - b.mean()
                    gap = max(gap, float(np.abs(a - b).max()))
                conf = {"maze": name, "objective": obj, "tie_break": tb, "rewards": n, "transitions": len(s)}
                emit(NAME, "lp_seconds_per_solve", secs / (2 * n), "s", **conf)
                emit(NAME, "lp_shaping_gap", gap, "max |r1 - r2|", **conf)


def main(argv: list[str] | None = None) -> None:
    from rewardlab.core.runs import set_torch_threads

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions after one warm-up")
    p.add_argument("--mlp", default="2048,128", help="coverage transitions, canonical samples for the MLP reward")
    p.add_argument("--cnn", default="64,8", help="coverage transitions, canonical samples for the CNN reward")
    p.add_argument("--lp-rewards", type=int, default=100, help="random rewards per maze for the LP tie-break")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, the project's default)")
    args = p.parse_args(argv)
    set_torch_threads(args.threads)
    tabular(args.repeats)
    mlp(*(int(x) for x in args.mlp.split(",")), args.repeats)
    cnn(*(int(x) for x in args.cnn.split(",")), args.repeats)
    lp_tie_break(args.lp_rewards)


if __name__ == "__main__":
    main()
