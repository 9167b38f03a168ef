"""The hot paths on an accelerator (issue 19; the PPO update for issue 16): one short script, the same code the CPU
figures time, run with `--device cuda` where a GPU is lent (`python -m benchmarks device --device cuda`), or with
`--device cpu` for the comparison on the machine at hand.

- RAM training step (batch 256, 18 glimpses; rollout, hybrid loss, backward, Adam) and the DT-RAM step (its stop
  output forced off, so it runs all its glimpses), as `benchmarks/irrl_digits.py` times them on CPU; also at batch
  2,048, to show how far batch 256 is from filling the device.
- High-level SAC of PTGM: updates/s at batch 256 with the 2x256 and 5x256 critics (sampling from the replay on the
  device included), as `benchmarks/ptgm.py` times them.
- PPO's update on Atari frames (SB3 CnnPolicy, the RL Zoo's settings: a rollout of 8 envs x 128 steps, 4 epochs at
  batch 256): seconds per update and the env-steps/s the update alone allows. No emulator is needed: the rollout
  buffer is filled with random frames, which costs the update what real ones do.

Each figure is a median over timed rounds after warm-up rounds, with the device synchronised around each round.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

from benchmarks.common import emit

NAME = "device"


def _timer(device: str) -> Callable[[Callable[[], Any], int, int], float]:
    import torch

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def median(fn: Callable[[], Any], repeats: int, warmup: int) -> float:
        for _ in range(warmup):
            fn()
        sync()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    return median


def ram_steps(device: str, repeats: int, cfg: dict[str, Any]) -> None:
    import torch

    from rewardlab.agents.ram import RAM, LossConfig, RAMConfig
    from rewardlab.agents.ram_train import adam, train_step

    median = _timer(device)
    for batch in (256, 2048):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 1, 60, 60, generator=g).to(device)
        y = torch.randint(0, 10, (batch,), generator=g).to(device)
        for model_name in ("ram", "dtram"):
            torch.manual_seed(0)
            m = RAM(RAMConfig(model=model_name)).to(device)
            if model_name == "dtram":
                with torch.no_grad():
                    m.locator.fc_lt.bias[2] = -50.0  # never stop: all 18 glimpses, as the CPU benchmark
            m.train()
            opt = adam(list(m.parameters()), 3e-4)
            gen = torch.Generator(device=device).manual_seed(1)
            sec = median(lambda: train_step(m, opt, x, y, LossConfig(), gen), repeats, 5)
            emit(NAME, f"{model_name}_train_step_seconds", sec, "s", **cfg, batch_size=batch, glimpses=18)


def hl_sac_updates(device: str, repeats: int, cfg: dict[str, Any]) -> None:
    import torch

    from rewardlab.agents.hl_sac import HighLevelSAC, HLSACConfig, Replay
    from rewardlab.agents.ptgm import GoalMLP
    from rewardlab.envs.mini_kitchen import OBS_DIM

    median = _timer(device)
    for layers in (2, 5):
        torch.manual_seed(0)
        prior = GoalMLP(OBS_DIM, 50).eval()
        agent = HighLevelSAC(HLSACConfig(critic_layers=layers), prior, OBS_DIM, device=device)
        g = torch.Generator().manual_seed(0)
        n = 20_000
        s, s2 = torch.rand(n, OBS_DIM, generator=g).to(device), torch.rand(n, OBS_DIM, generator=g).to(device)
        rp = Replay(n, OBS_DIM, 50, device=device)
        rp.add(
            s=s,
            s2=s2,
            i=torch.randint(50, (n,), generator=g).to(device),
            r=torch.rand(n, generator=g).to(device),
            d=torch.zeros(n, device=device),
            lp=agent.prior_logp(s),
            lp2=agent.prior_logp(s2),
        )
        gen = torch.Generator(device=device).manual_seed(1)

        def twenty() -> None:
            for _ in range(20):
                agent.update(rp.sample(256, gen), gen)

        sec = median(twenty, repeats, 2)
        emit(NAME, "hl_sac_updates_per_s", 20 / sec, "updates/s", **cfg, batch_size=256, critic=f"{layers}x256")


def ppo_update(device: str, repeats: int, cfg: dict[str, Any]) -> None:
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3.common.logger import configure

    import rewardlab.agents.ppo  # noqa: F401  (registers PPO with build_sb3)
    from rewardlab.agents.sb3 import build_sb3
    from rewardlab.studies.atari import zoo_ppo

    pc = zoo_ppo(1_000_000)
    pc.device = device
    obs_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    model = build_sb3("PPO", pc, spaces=(obs_space, gym.spaces.Discrete(4)))
    model.set_logger(configure(None, []))
    model._current_progress_remaining = 1.0
    # a rollout of n_envs x n_steps random frames, as collect_rollouts would leave it
    from stable_baselines3.common.buffers import RolloutBuffer

    buf = RolloutBuffer(
        pc.n_steps, obs_space, model.action_space, device=model.device, gamma=pc.gamma, n_envs=pc.n_envs
    )
    rng = np.random.default_rng(0)
    for _ in range(pc.n_steps):
        obs = rng.integers(0, 256, (pc.n_envs, 4, 84, 84), dtype=np.uint8)
        with torch.no_grad():
            a, v, lp = model.policy(torch.as_tensor(obs, device=model.device))
        buf.add(obs, a.cpu().numpy(), rng.random(pc.n_envs).astype(np.float32), np.zeros(pc.n_envs), v, lp)
    with torch.no_grad():
        last = model.policy.predict_values(torch.as_tensor(obs, device=model.device))
    buf.compute_returns_and_advantage(last, np.zeros(pc.n_envs))
    model.rollout_buffer = buf
    sec = _timer(device)(model.train, repeats, 2)
    steps = pc.n_steps * pc.n_envs
    kw = dict(cfg, n_envs=pc.n_envs, n_steps=pc.n_steps, n_epochs=pc.n_epochs, batch_size=pc.batch_size)
    emit(NAME, "ppo_update_seconds", sec, "s", **kw, note="one update: 4 epochs over 1,024 frames (4x84x84)")
    emit(NAME, "ppo_update_env_steps_per_s", steps / sec, "env-steps/s", **kw, note="the update alone, no emulator")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="auto", help="torch device (auto: cuda where present, else cpu)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (CPU work)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--only", default="ram,sac,ppo", help="comma-separated: ram, sac, ppo")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg: dict[str, Any] = {"device": args.device, "threads": args.threads, "torch": torch.__version__}
    if args.device.startswith("cuda"):
        cfg["gpu"] = torch.cuda.get_device_name(0)
    parts = {"ram": ram_steps, "sac": hl_sac_updates, "ppo": ppo_update}
    for part in args.only.split(","):
        parts[part](args.device, args.repeats, cfg)


if __name__ == "__main__":
    main()
