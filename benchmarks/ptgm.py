"""PTGM on the mini-kitchen: batched environment steps per second (target >= 50,000), one Gymnasium kitchen for
scale, high-level SAC updates per second (batch 256; the paper's 5-layer critics and the fast preset's 2-layer ones,
with the original's per-sample KL loop beside our batched KL), and, with --fast-preset, the wall time of
`rewardlab ptgm run --preset fast` (target <= 15 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from benchmarks.common import emit, median_time


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fast-preset", action="store_true", help="also time the whole fast preset (about 14 minutes)")
    args = p.parse_args(argv)
    import gymnasium as gym
    import torch

    from rewardlab.agents.hl_sac import HighLevelSAC, HLSACConfig, Replay
    from rewardlab.agents.ptgm import GoalMLP
    from rewardlab.core.runs import set_torch_threads
    from rewardlab.envs.mini_kitchen import OBS_DIM, BatchedMiniKitchen

    set_torch_threads(1)
    rng = np.random.default_rng(0)
    for n in (64, 1024):
        env = BatchedMiniKitchen(n, seed=0)
        acts = rng.uniform(-1, 1, (100, n, 3))

        def run() -> None:
            for a in acts:
                _, _, te, tr = env.step(a)
                if (te | tr).any():
                    env.reset(te | tr)

        t = median_time(run, repeats=5)
        emit("ptgm", "mini_kitchen_batched_steps_per_second", 100 * n / t, "steps/s", kitchens=n, target=50_000)
    single = gym.make("rewardlab/MiniKitchen-v0")
    single.reset(seed=0)
    acts = rng.uniform(-1, 1, (2000, 3)).astype(np.float32)

    def run_single() -> None:
        for a in acts:
            _, _, te, tr, _ = single.step(a)
            if te or tr:
                single.reset()

    t = median_time(run_single, repeats=3)
    emit(
        "ptgm",
        "mini_kitchen_gymnasium_steps_per_second",
        2000 / t,
        "steps/s",
        kitchens=1,
        note="one registered Gymnasium environment, a Python loop",
    )

    for layers in (5, 2):
        torch.manual_seed(0)
        prior = GoalMLP(OBS_DIM, 50).eval()
        agent = HighLevelSAC(HLSACConfig(critic_layers=layers), prior, OBS_DIM)
        rp = Replay(20_000, OBS_DIM, 50)
        s, s2 = torch.rand(20_000, OBS_DIM), torch.rand(20_000, OBS_DIM)
        rp.add(
            s=s,
            s2=s2,
            i=torch.randint(50, (20_000,)),
            r=torch.rand(20_000),
            d=torch.zeros(20_000),
            lp=agent.prior_logp(s),
            lp2=agent.prior_logp(s2),
        )
        g = torch.Generator().manual_seed(0)

        def updates() -> None:
            for _ in range(50):
                agent.update(rp.sample(256, g), g)

        t = median_time(updates, repeats=3)
        emit(
            "ptgm",
            "high_level_sac_updates_per_second",
            50 / t,
            "updates/s",
            batch=256,
            codes=50,
            critic_layers=layers,
            critic_hidden=256,
            threads=1,
        )
    # the divergence: batched against the original's per-sample loop over torch's kl_div
    logits, lp = torch.randn(256, 50), torch.log_softmax(torch.randn(256, 50), -1)
    t_vec = median_time(lambda: agent.divergence(logits, lp), repeats=20)

    def loop() -> None:
        torch.stack(
            [
                torch.nn.functional.kl_div(torch.log_softmax(logits[b], -1), lp[b].exp(), reduction="sum")
                for b in range(256)
            ]
        )

    t_loop = median_time(loop, repeats=5)
    emit("ptgm", "kl_speedup_batched_over_per_sample_loop", t_loop / t_vec, "x", batch=256, codes=50)

    if args.fast_preset:
        from rewardlab.cli import main as cli

        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            assert cli(["ptgm", "run", "--preset", "fast", "--out", f"{d}/fast"]) == 0
            emit("ptgm", "fast_preset_wall_seconds", time.perf_counter() - t0, "s", target=900)


if __name__ == "__main__":
    main()
