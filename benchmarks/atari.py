"""Atari environment throughput (agent steps per second, random actions, episodes ending and resetting as they
come): `make_atari` on envpool (emulator in C++, our numpy preprocessing) and on ale-py (a Python loop over games),
against envpool alone, with its own preprocessing (grayscale 84x84, 4-frame stack) and with the raw RGB frames that
`make_atari` preprocesses: the gap between the raw-RGB and the make_atari figures is the cost of our preprocessing.
Medians of a few repetitions after a warm-up."""

from __future__ import annotations

import argparse
from typing import Any, Callable

import numpy as np

from benchmarks.common import emit, median_time

NAME = "atari"


def _rate(step: Callable[[np.ndarray], Any], actions: np.ndarray, repeats: int) -> float:
    """Agent steps per second of `step` fed the batched `actions` (steps, n), median of `repeats` after a warm-up."""

    def run() -> None:
        for a in actions:
            step(a)

    return actions.size / median_time(run, repeats=repeats, warmup=1)


def make_atari_rate(game: str, num_envs: int, steps: int, repeats: int, engine: str = "envpool") -> float:
    """Agent steps/s of `make_atari` (training protocol, plain variant) on `engine`."""
    from rewardlab.envs.atari import AtariSpec, make_atari

    env = make_atari(AtariSpec(game, "plain", train=True), num_envs, seed=0, engine=engine)
    env.reset()
    actions = np.random.default_rng(0).integers(0, env.single_action_space.n, (steps, num_envs))
    try:
        return _rate(env.step, actions, repeats)
    finally:
        env.close()


def envpool_rate(game: str, num_envs: int, steps: int, repeats: int, own_preprocessing: bool) -> float:
    """Agent steps/s of envpool alone, same protocol: with its own preprocessing (gray 84x84, 4-frame stack) or
    returning the raw max-pooled RGB frames that `make_atari` preprocesses (its autoreset: on the next step)."""
    import envpool

    frames = (
        {"img_height": 84, "img_width": 84, "gray_scale": True, "stack_num": 4}
        if own_preprocessing
        else {"img_height": 210, "img_width": 160, "gray_scale": False, "stack_num": 1}
    )
    pool = envpool.make(
        f"{game}-v5",
        env_type="gymnasium",
        num_envs=num_envs,
        seed=0,
        frame_skip=4,
        noop_max=30,
        repeat_action_probability=0.0,
        use_fire_reset=True,
        max_episode_steps=27000,
        episodic_life=True,
        reward_clip=True,
        **frames,
    )
    pool.reset()
    actions = np.random.default_rng(0).integers(0, pool.action_space.n, (steps, num_envs)).astype(np.int32)
    try:
        return _rate(pool.step, actions, repeats)
    finally:
        pool.close()


def env_throughput(game: str, envs: list[int], steps: int, ale_steps: int, repeats: int, engines: list[str]) -> None:
    """Emit the steps/s of every engine and reference, for every number of environments."""
    runs: list[tuple[str, str, Callable[[int, int], float], int]] = []
    if "envpool" in engines:
        runs += [
            ("env_steps_per_second", "make_atari/envpool", lambda n, s: make_atari_rate(game, n, s, repeats), steps),
            (
                "reference_steps_per_second",
                "envpool/raw_rgb",
                lambda n, s: envpool_rate(game, n, s, repeats, False),
                steps,
            ),
            (
                "reference_steps_per_second",
                "envpool/own_preprocessing",
                lambda n, s: envpool_rate(game, n, s, repeats, True),
                steps,
            ),
        ]
    if "ale" in engines:
        runs.append(
            (
                "env_steps_per_second",
                "make_atari/ale",
                lambda n, s: make_atari_rate(game, n, s, repeats, "ale"),
                ale_steps,
            )
        )
    for n in envs:
        for metric, what, fn, s in runs:
            emit(NAME, metric, fn(n, s), "steps/s", env=what, game=game, num_envs=n, batched_steps=s, repeats=repeats)


def ppo_throughput(game: str, steps: int, threads: list[int], device: str) -> None:
    """Env-steps/s of PPO training (the study's expert: SB3 CnnPolicy, the RL Zoo's Atari settings, 8 envs) for each
    number of torch threads, after a warm-up update."""
    import time

    import torch

    from rewardlab.agents.ppo import make_ppo
    from rewardlab.envs.atari import AtariSpec, make_atari
    from rewardlab.envs.vec import BatchedVecEnv
    from rewardlab.studies.atari import zoo_ppo

    for t in threads:
        torch.set_num_threads(t)
        cfg = zoo_ppo(steps)
        cfg.device = device
        venv = BatchedVecEnv(make_atari(AtariSpec(game), cfg.n_envs, 0))
        model = make_ppo(cfg, venv, 0)
        model.learn(cfg.n_steps * cfg.n_envs)  # warm-up: one update
        t0 = time.perf_counter()
        model.learn(steps, reset_num_timesteps=False)
        rate = steps / (time.perf_counter() - t0)
        venv.close()
        emit(NAME, "ppo_train_env_steps_per_s", rate, "env-steps/s", game=game, torch_threads=t, device=device)


def saliency_throughput(frames: int, repeats: int) -> None:
    """Occlusion saliency frames/s: all 289 perturbations of several frames batched, against the original's one
    forward pass per perturbation, in the same run (an untrained NatureCNN reward model: the cost does not depend on
    the weights)."""
    import torch

    from rewardlab.interpret.occlusion import occlusion_saliency, occlusion_saliency_loop
    from rewardlab.rewards.nets import AtariRewardCNN

    torch.manual_seed(0)
    net = AtariRewardCNN().eval()
    x = np.random.default_rng(0).integers(0, 256, (frames, 4, 84, 84), dtype=np.uint8)
    batched = frames / median_time(lambda: occlusion_saliency(net.frame_reward, x), repeats=repeats, warmup=1)
    loop = frames / median_time(lambda: occlusion_saliency_loop(net.frame_reward, x), repeats=repeats, warmup=1)
    diff = float(np.abs(occlusion_saliency(net.frame_reward, x) - occlusion_saliency_loop(net.frame_reward, x)).max())
    conf = dict(frames=frames, repeats=repeats, torch_threads=torch.get_num_threads(), max_abs_difference=diff)
    emit(NAME, "occlusion_saliency_frames_per_s_batched", batched, "frames/s", **conf)
    emit(NAME, "occlusion_saliency_frames_per_s_loop", loop, "frames/s", **conf)
    emit(NAME, "occlusion_saliency_speedup", batched / loop, "x", **conf)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--game", default="Breakout", help="ALE game (envpool name)")
    p.add_argument("--envs", default="8,64", help="comma-separated numbers of environments")
    p.add_argument("--steps", type=int, default=200, help="batched steps per repetition (envpool)")
    p.add_argument("--ale-steps", type=int, default=50, help="batched steps per repetition (ale-py, slower)")
    p.add_argument("--repeats", type=int, default=3, help="repetitions (median)")
    p.add_argument("--engines", default="envpool,ale", help="comma-separated: envpool, ale")
    p.add_argument("--ppo-steps", type=int, default=4096, help="PPO env-steps timed (0: skip)")
    p.add_argument("--ppo-threads", default="1,2", help="comma-separated torch thread counts for PPO")
    p.add_argument("--device", default="cpu", help="torch device of the PPO policy (cpu, cuda)")
    p.add_argument("--saliency-frames", type=int, default=4, help="frames for the saliency timing (0: skip)")
    p.add_argument("--only", default="", help="comma-separated subset: env, ppo, saliency")
    args = p.parse_args(argv)
    only = set(filter(None, args.only.split(","))) or {"env", "ppo", "saliency"}
    from rewardlab.envs.atari import check_engine

    engines = [e for e in args.engines.split(",") if e]
    for e in engines:
        check_engine(e)
    if "env" in only:
        envs = [int(n) for n in args.envs.split(",")]
        env_throughput(args.game, envs, args.steps, args.ale_steps, args.repeats, engines)
    if "ppo" in only and args.ppo_steps:
        ppo_throughput(args.game, args.ppo_steps, [int(t) for t in args.ppo_threads.split(",")], args.device)
    if "saliency" in only and args.saliency_frames:
        saliency_throughput(args.saliency_frames, args.repeats)


if __name__ == "__main__":
    main()
