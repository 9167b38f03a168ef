"""PTGM on the mini-kitchen: batched environment steps per second (target >= 50,000), one Gymnasium kitchen for
scale, high-level SAC updates per second (batch 256; the paper's 5-layer critics and the fast preset's 2-layer ones)
for the current update and for the update as it was before issue 19 (benchmarks/ref_hl_sac.py), measured in the same
process with their ratio (target 3x), with --profile where an update's time goes and the floor its matrix products
alone set; the original's per-sample KL loop beside our batched KL; and, with --fast-preset, the wall time of
`rewardlab ptgm run --preset fast` (target <= 15 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import numpy as np

from benchmarks.common import emit, median_time

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def _sac_pair(layers: int) -> dict[str, tuple[Any, Any]]:
    """The current high-level SAC and the reference (benchmarks/ref_hl_sac.py) from the same seed and weights,
    each with its own replay holding the same 20,000 transitions."""
    import torch

    from benchmarks.ref_hl_sac import RefHighLevelSAC, RefReplay
    from rewardlab.agents.hl_sac import HighLevelSAC, HLSACConfig, Replay
    from rewardlab.agents.ptgm import GoalMLP
    from rewardlab.envs.mini_kitchen import OBS_DIM

    torch.manual_seed(0)
    prior = GoalMLP(OBS_DIM, 50).eval()
    cfg = HLSACConfig(critic_layers=layers)
    g = torch.Generator().manual_seed(0)
    s, s2 = torch.rand(20_000, OBS_DIM, generator=g), torch.rand(20_000, OBS_DIM, generator=g)
    data = {"s": s, "s2": s2, "i": torch.randint(50, (20_000,), generator=g), "r": torch.rand(20_000, generator=g)}
    pair = {}
    for name, agent_cls, replay_cls in (("new", HighLevelSAC, Replay), ("reference", RefHighLevelSAC, RefReplay)):
        agent = agent_cls(cfg, prior, OBS_DIM)
        rp = replay_cls(20_000, OBS_DIM, 50)
        rp.add(**data, d=torch.zeros(20_000), lp=agent.prior_logp(s), lp2=agent.prior_logp(s2))
        pair[name] = (agent, rp)
    return pair


def sac_updates(layers: int, threads: int, repeats: int, profile: bool) -> None:
    """High-level SAC updates per second (batch 256, sampling included), the current update against the
    reference in the same process, rounds of 20 updates interleaved (order alternating), median after warm-up."""
    import statistics

    import torch

    from rewardlab.core.runs import set_torch_threads

    set_torch_threads(threads)
    pair = _sac_pair(layers)
    gens = {k: torch.Generator().manual_seed(1) for k in pair}

    def rounds(name: str, n: int = 20) -> None:
        agent, rp = pair[name]
        for _ in range(n):
            agent.update(rp.sample(256, gens[name]), gens[name])

    for name in pair:
        rounds(name, 10)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in pair}
    order = list(pair)
    for r in range(repeats):
        for name in order if r % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            rounds(name)
            times[name].append((time.perf_counter() - t) / 20)
    med = {k: statistics.median(v) for k, v in times.items()}
    common = dict(batch=256, codes=50, critic_layers=layers, critic_hidden=256, threads=threads, repeats=repeats)
    for name in pair:
        emit("ptgm", f"high_level_sac_updates_per_second_{name}", 1 / med[name], "updates/s", **common)
    emit("ptgm", "high_level_sac_speedup_over_reference", med["reference"] / med["new"], "x", **common, target=3)
    if profile:
        for name in pair:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                rounds(name)
            ops = prof.key_averages()
            total = sum(e.self_cpu_time_total for e in ops) / 20 / 1e3
            mm = sum(e.self_cpu_time_total for e in ops if e.key in MATMUL_OPS) / 20 / 1e3
            top = sorted(ops, key=lambda e: -e.self_cpu_time_total)[:8]
            emit(
                "ptgm",
                f"high_level_sac_profile_ms_per_update_{name}",
                total,
                "ms",
                **common,
                matmul_ms=mm,
                other_ms=total - mm,
                top_ops={e.key: round(e.self_cpu_time_total / 20 / 1e3, 3) for e in top},
                note="torch.profiler self CPU time (the profiler adds its own overhead)",
            )
        floor = matmul_floor(layers)
        emit(
            "ptgm",
            "high_level_sac_matmul_floor_ms_per_update",
            floor * 1e3,
            "ms",
            **common,
            gflop_per_update=sac_gflop(layers),
            note="the update's matrix products alone (critics: online forward and backward, target forward; "
            "policy: forward on s and s', backward), as bare torch.bmm / torch.mm calls",
        )


def _mlp_dims(layers: int) -> tuple[list[int], list[int]]:
    from rewardlab.envs.mini_kitchen import OBS_DIM

    return [OBS_DIM] + [256] * (layers + 1) + [50], [OBS_DIM, 128, 128, 128, 128, 50]


def sac_gflop(layers: int) -> float:
    """Floating-point operations of the matrix products in one update (batch 256, twin critics)."""
    dims, pdims = _mlp_dims(layers)
    macs = lambda d: sum(a * b for a, b in zip(d[:-1], d[1:]))  # noqa: E731
    critic = 2 * 256 * (2 * macs(dims) + macs(dims) + macs(dims[1:]))  # online fwd, target fwd, weight and input grads
    policy = 256 * (2 * macs(pdims) + macs(pdims) + macs(pdims[1:]))
    return 2 * (critic + policy) / 1e9


def matmul_floor(layers: int, repeats: int = 9) -> float:
    """Median seconds of the update's matrix products alone."""
    import statistics

    import torch

    dims, pdims = _mlp_dims(layers)
    ws = [torch.randn(2, a, b) for a, b in zip(dims[:-1], dims[1:])]
    pws = [torch.randn(a, b) for a, b in zip(pdims[:-1], pdims[1:])]
    x = torch.randn(2, 256, dims[0])

    def products() -> None:
        for _ in range(2):  # online and target critics
            acts, h = [], x
            for w in ws:
                acts.append(h)
                h = torch.bmm(h, w)
        g = h
        for j in reversed(range(len(ws))):
            torch.bmm(acts[j].transpose(1, 2), g)
            if j:
                g = torch.bmm(g, ws[j].transpose(1, 2))
        for _ in range(2):  # policy on s and s'
            pacts, h = [], x[0]
            for w in pws:
                pacts.append(h)
                h = h @ w
        g = h
        for j in reversed(range(len(pws))):
            pacts[j].T @ g
            if j:
                g = g @ pws[j].T

    for _ in range(5):
        products()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(10):
            products()
        times.append((time.perf_counter() - t) / 10)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fast-preset", action="store_true", help="also time the whole fast preset (about 14 minutes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the SAC updates (the trainer uses 1)")
    p.add_argument("--repeats", type=int, default=9, help="timed rounds of 20 updates per SAC implementation")
    p.add_argument("--profile", action="store_true", help="also say where an update's time goes (torch profiler)")
    p.add_argument("--sac-only", action="store_true", help="only the high-level SAC updates")
    args = p.parse_args(argv)
    if args.sac_only:
        for layers in (5, 2):
            sac_updates(layers, args.threads, args.repeats, args.profile)
        return
    import gymnasium as gym
    import torch

    from rewardlab.agents.hl_sac import HighLevelSAC, HLSACConfig
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
        sac_updates(layers, args.threads, args.repeats, args.profile)
    set_torch_threads(1)
    agent = HighLevelSAC(HLSACConfig(critic_layers=2), GoalMLP(OBS_DIM, 50).eval(), OBS_DIM)
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
