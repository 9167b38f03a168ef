"""Batched maze agent-steps per second (target: >= 1,000,000 with 1024 mazes on 2 cores), against
stepping 1024 single Gymnasium mazes in a Python loop (the original's way)."""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import emit, median_time


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=1024, help="mazes")
    p.add_argument("--steps", type=int, default=1000, help="batched steps per repetition")
    args = p.parse_args(argv)
    from rewardlab.envs.maze import BatchedMaze, MazeEnv

    env = BatchedMaze(args.n, "CoinFlipGoal", seeds=0)
    env.reset()
    actions = np.random.default_rng(0).integers(0, 4, size=(args.steps, args.n))

    def batched() -> None:
        for a in actions:
            env.step(a)

    t = median_time(batched, repeats=5)
    batched_rate = args.n * args.steps / t
    emit(
        "maze_env",
        "batched_agent_steps_per_second",
        batched_rate,
        "steps/s",
        n_mazes=args.n,
        steps=args.steps,
        target=1_000_000,
    )

    singles = [MazeEnv("CoinFlipGoal") for _ in range(args.n)]
    for i, e in enumerate(singles):
        e.reset(seed=i)
    loop_steps = max(1, args.steps // 50)

    def loop() -> None:
        for a in actions[:loop_steps]:
            for e, ai in zip(singles, a):
                _, _, term, trunc, _ = e.step(int(ai))
                if term or trunc:
                    e.reset()

    t_loop = median_time(loop, repeats=3)
    loop_rate = args.n * loop_steps / t_loop
    emit("maze_env", "single_env_loop_agent_steps_per_second", loop_rate, "steps/s", n_mazes=args.n)
    emit("maze_env", "speedup_batched_over_loop", batched_rate / loop_rate, "x", n_mazes=args.n)


if __name__ == "__main__":
    main()
