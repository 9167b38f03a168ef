"""Preprocessing speed: the exact LP against 10,000-step Adam on EmptyMaze-10 goal-dense (target: LP >= 10x
faster, LP objective <= Adam's), for sparse_l1 and smooth_l1; and continuous preprocessing throughput
(transitions/s) with the paper's 4x128 MLP potential on shaped mountain car transitions."""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import emit, median_time


def tabular() -> None:
    import torch

    from rewardlab.envs.tabular_maze import GAMMA, MAZES, reward_table
    from rewardlab.interpret.preprocess import (
        PreprocessConfig,
        objective_value,
        preprocess_tabular_adam,
        solve_lp,
        tabular_pairs,
    )
    from rewardlab.rewards.shaping import ShapedRewardNet, TabularPotential
    from rewardlab.rewards.tabular import TabularRewardNet

    spec = MAZES["EmptyMaze10"]
    s, _, s2 = spec.all_transitions()
    d = np.zeros(len(s), dtype=bool)
    pairs = tabular_pairs(s, s2)
    R = reward_table(spec, "goal", "dense")
    cfg = PreprocessConfig()
    for obj in ("sparse_l1", "smooth_l1"):
        lp = solve_lp(R[s, s2], s, s2, d, spec.n_states, GAMMA, obj, pairs)
        t_lp = median_time(lambda: solve_lp(R[s, s2], s, s2, d, spec.n_states, GAMMA, obj, pairs), repeats=5)
        t0 = time.perf_counter()
        adam = preprocess_tabular_adam(R[None], s, s2, d, pairs, obj, GAMMA, cfg)
        t_adam = time.perf_counter() - t0
        # the original's way: torch autograd through a ShapedRewardNet, Adam on the full batch
        torch.manual_seed(0)
        net = ShapedRewardNet(TabularRewardNet.from_table(R), TabularPotential(spec.n_states), GAMMA)
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
        st, st2, pr = torch.as_tensor(s), torch.as_tensor(s2), torch.as_tensor(pairs)
        t0 = time.perf_counter()
        for _ in range(cfg.tabular_steps):
            loss = objective_value(net(st, None, st2, None), obj, pr)
            opt.zero_grad()
            loss.backward()
            opt.step()
        t_torch = time.perf_counter() - t0
        with torch.no_grad():
            torch_obj = float(objective_value(net(st, None, st2, None), obj, pr))
        conf = {
            "maze": "EmptyMaze10",
            "reward": "goal",
            "shaping": "dense",
            "objective": obj,
            "adam_steps": cfg.tabular_steps,
            "lr": cfg.lr,
        }
        emit("preprocessing", f"{obj}_lp_seconds", t_lp, "s", **conf)
        emit("preprocessing", f"{obj}_adam_seconds", t_adam, "s", implementation="numpy sparse", **conf)
        emit("preprocessing", f"{obj}_torch_adam_seconds", t_torch, "s", implementation="torch autograd", **conf)
        emit("preprocessing", f"{obj}_speedup_lp_over_adam", t_adam / t_lp, "x", target=10, **conf)
        emit("preprocessing", f"{obj}_speedup_lp_over_torch_adam", t_torch / t_lp, "x", **conf)
        emit("preprocessing", f"{obj}_lp_objective", lp["objective"], "objective", **conf)
        emit("preprocessing", f"{obj}_adam_objective", float(adam["objective"][0]), "objective", **conf)
        emit("preprocessing", f"{obj}_torch_adam_objective", torch_obj, "objective", **conf)


def continuous(n: int) -> None:
    from rewardlab.data.rollouts import collect_trajectories
    from rewardlab.envs.mountain_car import BatchedMountainCar
    from rewardlab.interpret.preprocess import PreprocessConfig, make_potential, preprocess_adam, trajectory_pairs
    from rewardlab.rewards.mountain_car import MountainCarRewardNet

    rng = np.random.default_rng(0)
    data, episode = collect_trajectories(
        BatchedMountainCar(16, "dense", seeds=0), lambda o: rng.integers(0, 3, size=len(o)), n, random_prob=1.0, seed=0
    )
    pairs = trajectory_pairs(episode)
    cfg = PreprocessConfig(epochs=1)
    base = MountainCarRewardNet("dense")
    for obj in ("sparse_l1", "smooth_l1"):
        t0 = time.perf_counter()
        preprocess_adam(
            base, data.obs, data.next_obs, data.dones, pairs, obj, make_potential("mlp", (2,), cfg), 0.99, cfg
        )
        dt = time.perf_counter() - t0
        emit(
            "preprocessing",
            f"continuous_{obj}_transitions_per_second",
            n / dt,
            "transitions/s",
            potential="mlp 4x128",
            batch_size=cfg.batch_size,
            transitions=n,
            env="ShapedMountainCar-dense",
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--transitions", type=int, default=50_000, help="continuous transitions")
    args = p.parse_args(argv)
    tabular()
    continuous(args.transitions)


if __name__ == "__main__":
    main()
