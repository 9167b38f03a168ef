"""CoinRun study throughput: environment steps/s (envpool batched against a Python loop over single envs, the
registered `rewardlab/CoinRun-v0`), PPO training env-steps/s (NatureCNN and the IMPALA CNN of the Procgen paper),
reward-model training samples/s (imitation's CnnRewardNet, batch 128) and feature-visualisation steps/s. Medians of a
few repetitions after a warm-up; run with nothing else on the machine."""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import emit, median_time

NAME = "coinrun"


def env_throughput(envs: list[int], steps: int, single_steps: int, repeats: int) -> None:
    """Steps/s of `make_coinrun` with N envs, and of N registered single envs stepped one by one in Python."""
    import gymnasium as gym

    import rewardlab.envs  # noqa: F401  (registers the ids)
    from rewardlab.envs.coinrun import CoinRunSpec, make_coinrun

    for n in envs:
        env = make_coinrun(CoinRunSpec("easy", 200), n, 0)
        env.reset()
        acts = np.random.default_rng(0).integers(0, 15, (steps, n))

        def batched() -> None:
            for a in acts:
                env.step(a)

        rate = steps * n / median_time(batched, repeats=repeats, warmup=1)
        env.close()
        emit(NAME, "env_steps_per_second", rate, "steps/s", env="make_coinrun (envpool, batched)", num_envs=n)
        singles = [gym.make("rewardlab/CoinRun-v0") for _ in range(n)]
        for s in singles:
            s.reset(seed=0)
        acts1 = acts[:single_steps]

        def loop() -> None:
            for a in acts1:
                for s, ai in zip(singles, a):
                    _, _, term, trunc, _ = s.step(int(ai))
                    if term or trunc:
                        s.reset()

        rate1 = single_steps * n / median_time(loop, repeats=repeats, warmup=1)
        for s in singles:
            s.close()
        emit(NAME, "reference_steps_per_second", rate1, "steps/s", env="loop over single envs", num_envs=n)


def ppo_throughput(steps: int, policies: list[str], device: str) -> None:
    """Env-steps/s of PPO training with the Procgen paper's settings (64 envs x 256 steps, 8 minibatches, 3 epochs)
    for each policy network, after a warm-up update."""
    import torch

    from rewardlab.agents.ppo import make_ppo
    from rewardlab.envs.coinrun import CoinRunSpec, make_coinrun
    from rewardlab.envs.vec import BatchedVecEnv
    from rewardlab.studies.coinrun import procgen_ppo

    for policy in policies:
        cfg = procgen_ppo(steps)
        cfg.policy, cfg.device = policy, device
        venv = BatchedVecEnv(make_coinrun(CoinRunSpec("easy", 200), cfg.n_envs, 0))
        model = make_ppo(cfg, venv, 0)
        model.learn(cfg.n_steps * cfg.n_envs)  # warm-up: one update
        t0 = time.perf_counter()
        model.learn(steps, reset_num_timesteps=False)
        rate = steps / (time.perf_counter() - t0)
        venv.close()
        emit(
            NAME,
            "ppo_train_env_steps_per_s",
            rate,
            "env-steps/s",
            policy=policy,
            steps=steps,
            torch_threads=torch.get_num_threads(),
            device=device,
        )


def reward_model_throughput(batches: int, repeats: int, hid: tuple[int, ...]) -> None:
    """Training samples/s of imitation's CnnRewardNet on R(s') (Adam, batch 128, 64x64 RGB)."""
    import torch

    from rewardlab.rewards.nets import CnnRewardNet

    torch.manual_seed(0)
    net = CnnRewardNet(use_state=False, use_action=False, use_next_state=True, hid_channels=hid)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.randint(0, 256, (batches, 128, 3, 64, 64), dtype=torch.uint8)
    y = torch.rand(batches, 128)

    def train() -> None:
        for b in range(batches):
            loss = torch.nn.functional.mse_loss(net(None, None, x[b], None), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()

    rate = batches * 128 / median_time(train, repeats=repeats, warmup=1)
    conf = dict(hid_channels=list(hid), batch_size=128, torch_threads=torch.get_num_threads())
    emit(NAME, "reward_model_train_samples_per_s", rate, "samples/s", **conf)


def featvis_throughput(steps: int, channels: int, hid: tuple[int, ...]) -> None:
    """Feature-visualisation Adam steps/s: the reward (maximised and minimised, 2 images) and `channels` channels of
    the last conv layer at once, on an untrained CnnRewardNet (the cost does not depend on the weights)."""
    import torch

    from rewardlab.interpret import featvis as fv
    from rewardlab.rewards.nets import CnnRewardNet

    torch.manual_seed(0)
    net = CnnRewardNet(use_state=False, use_action=False, use_next_state=True, hid_channels=hid)

    def fn(x):
        return net(None, None, x, None)

    for what, obj in (
        ("reward (2 images)", fv.reward_objective()),
        (f"{channels} channels of cnn.act1", fv.channel_objective("cnn.act1", list(range(channels)))),
    ):
        fv.visualise(fn, net, obj, (3, 64, 64), steps=2, seed=0)  # warm-up
        vis = fv.visualise(fn, net, obj, (3, 64, 64), steps=steps, seed=0)
        emit(
            NAME,
            "featvis_steps_per_s",
            steps / vis.seconds,
            "steps/s",
            objective=what,
            steps=steps,
            torch_threads=torch.get_num_threads(),
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--envs", default="4,64", help="comma-separated numbers of environments")
    p.add_argument("--steps", type=int, default=200, help="batched steps per repetition (envpool)")
    p.add_argument("--single-steps", type=int, default=50, help="steps per repetition of the single-env loop")
    p.add_argument("--repeats", type=int, default=3, help="repetitions (median)")
    p.add_argument("--ppo-steps", type=int, default=32768, help="PPO env-steps timed (0: skip)")
    p.add_argument("--policies", default="CnnPolicy,ImpalaCnnPolicy", help="comma-separated PPO policies")
    p.add_argument("--device", default="cpu", help="torch device of the PPO policy (cpu, cuda)")
    p.add_argument("--rm-batches", type=int, default=10, help="reward-model batches per repetition (0: skip)")
    p.add_argument("--featvis-steps", type=int, default=32, help="feature-visualisation steps timed (0: skip)")
    p.add_argument("--only", default="", help="comma-separated subset: env, ppo, reward_model, featvis")
    args = p.parse_args(argv)
    only = set(filter(None, args.only.split(","))) or {"env", "ppo", "reward_model", "featvis"}
    from rewardlab.envs.coinrun import check_procgen

    check_procgen()
    if "env" in only:
        env_throughput([int(n) for n in args.envs.split(",")], args.steps, args.single_steps, args.repeats)
    if "ppo" in only and args.ppo_steps:
        ppo_throughput(args.ppo_steps, [s for s in args.policies.split(",") if s], args.device)
    if "reward_model" in only and args.rm_batches:
        reward_model_throughput(args.rm_batches, args.repeats, (32, 64))
    if "featvis" in only and args.featvis_steps:
        featvis_throughput(args.featvis_steps, 16, (32, 64))


if __name__ == "__main__":
    main()
