"""RAM training-step time (batch 256, 18 glimpses, forward + backward + Adam), measured in the same run, interleaved,
against the previous step (benchmarks/ram_reference.py: autograd step by step) and against a step written the
original's way (per-sample patch loop, padding every step, one module call per head per step); the step's FLOP count
and the time of its matmuls alone (the same shapes, in the same run: the floor at this machine's matmul rate); DT-RAM
step time; a whole training epoch on Cluttered MNIST; test-set evaluation throughput. `--profile` prints where the
new step's time goes (torch.profiler, to stderr).

For scale: the original code on this 2-core CPU takes about 0.13 s per step (29 s per epoch).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import emit, median_time


def reference_step(model, opt, x, y, std: float = 0.05) -> None:
    """One update the way the original trainer does it (same maths, its code structure)."""
    from rewardlab.agents.ram import reference_glimpses

    B, T = x.shape[0], model.cfg.num_glimpses
    s, r = model.sensor, model.rnn
    h = torch.zeros(B, model.cfg.hidden_size)
    loc = torch.rand(B, 2) * 2 - 1
    log_pis, baselines = [], []
    for t in range(T):
        phi = reference_glimpses(x, loc, model.cfg)
        g = F.relu(s.fc3(F.relu(s.fc1(phi))) + s.fc4(F.relu(s.fc2(loc))))
        h = F.relu(r.i2h(g) + r.h2h(h))
        mu = torch.tanh(model.locator(h.detach())[:, :2])
        sample = torch.distributions.Normal(mu, std).rsample().detach()
        log_pis.append(torch.distributions.Normal(mu, std).log_prob(sample).sum(1))
        loc = sample.clamp(-1, 1)
        baselines.append(model.baseliner(h.detach()).squeeze(1))
    log_probs = F.log_softmax(model.classifier(h), 1)
    p = log_probs.gather(1, y[:, None]).squeeze(1).exp()
    R = torch.clamp(p - 0.1, min=0)[:, None].repeat(1, T)
    b = torch.stack(baselines, 1)
    lp = torch.stack(log_pis, 1)
    loss = F.nll_loss(log_probs, y) + F.mse_loss(b, R) + 0.01 * torch.sum(-lp * (R - b.detach()), 1).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def step_flops(cfg, batch: int) -> dict[str, float]:
    """Multiply-add FLOPs (2 per multiply-add) of one RAM training step that runs all its glimpses."""
    B, T, n, gh, lh = batch, cfg.num_glimpses, cfg.hidden_size, cfg.glimpse_hidden, cfg.loc_hidden
    d, k, f, c = cfg.num_patches * cfg.patch_size**2 * cfg.channels, 2, n // 2, cfg.num_classes
    weights = d * gh + 2 * lh + (gh + lh) * n + 2 * n * n + n * f + f * k  # glimpse net, core, location head
    fwd = 2 * B * T * weights + 2 * B * n * c + 2 * B * T * n  # + classifier, baselines
    bwd = (
        2 * B * (T - 1) * n * n  # dL/dh through time
        + 2 * B * T * weights  # every weight gradient
        + 2 * B * T * (n * n + n * (gh + lh) + k * f)  # dL/dg, dL/d[what, where], the head's hidden layer
        + 2 * B * n * c * 2
        + 2 * B * T * n
    )
    return {"forward": fwd, "backward": bwd, "total": fwd + bwd}


def gemm_skeleton(cfg, batch: int):
    """The step's matmuls alone, same shapes and order (forward step by step; backward as the new step does it)."""
    B, T, n, gh, lh = batch, cfg.num_glimpses, cfg.hidden_size, cfg.glimpse_hidden, cfg.loc_hidden
    d, f = cfg.num_patches * cfg.patch_size**2 * cfg.channels, n // 2
    e = torch.randn
    phi, loc, WW, X, A = e(T, B, d), e(T, B, 2), e(T, B, gh + lh), e(T, B, 2 * n), e(T, B, f)
    w1, w2, w34, wr, wf, wl = e(gh, d), e(lh, 2), e(n, gh + lh), e(n, 2 * n), e(f, n), e(2, f)
    dP, dG, dWW, dA, dO = e(T * B, n), e(T * B, n), e(T * B, gh + lh), e(T * B, f), e(T * B, 2)

    def run() -> None:
        for t in range(T):
            phi[t] @ w1.t(), loc[t] @ w2.t(), WW[t] @ w34.t(), X[t] @ wr.t(), X[t, :, n:] @ wf.t(), A[t] @ wl.t()
        for _ in range(T - 1):
            dP[:B] @ wr[:, n:]
        dP.t() @ X.reshape(-1, 2 * n), torch.mm(dP, wr[:, :n], out=dG), dG.t() @ WW.reshape(-1, gh + lh)
        torch.mm(dG, w34, out=dWW), dWW[:, :gh].t() @ phi.reshape(-1, d), dWW[:, gh:].t() @ loc.reshape(-1, 2)
        dO.t() @ A.reshape(-1, f), torch.mm(dO, wl, out=dA), dA.t() @ X[..., n:].reshape(-1, n)

    return run


def matmul_gflops(m: int, k: int, n: int, repeats: int = 20) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    return 2 * m * k * n / median_time(lambda: a @ b, repeats=repeats, warmup=3) / 1e9


def interleaved(fns: dict, repeats: int, warmup: int) -> dict[str, list[float]]:
    """Wall times of each function, run in turn, `repeats` rounds after `warmup` rounds."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(warmup + repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            if i >= warmup:
                times[k].append(time.perf_counter() - t)
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the machine has 2 cores)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--no-epoch", action="store_true", help="skip the whole-epoch and test-set figures (need MNIST)")
    p.add_argument("--no-original", action="store_true", help="skip the slow step written the original's way")
    p.add_argument("--profile", action="store_true", help="print the new step's torch.profiler table to stderr")
    args = p.parse_args(argv)
    from benchmarks.ram_reference import reference_train_step
    from rewardlab.agents.ram import RAM, LossConfig, RAMConfig
    from rewardlab.agents.ram_train import adam, train_step

    torch.set_num_threads(args.threads)
    B = 256
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 1, 60, 60, generator=g)
    y = torch.randint(0, 10, (B,), generator=g)
    cfg = dict(threads=args.threads, batch_size=B, glimpses=18, patch=4)

    def setup(model_name: str = "ram", never_stop: bool = False, fused_adam: bool = True):
        torch.manual_seed(0)
        m = RAM(RAMConfig(model=model_name))
        if never_stop:
            with torch.no_grad():
                m.locator.fc_lt.bias[2] = -50.0
        m.train()
        opt = adam(list(m.parameters()), 3e-4) if fused_adam else torch.optim.Adam(m.parameters(), lr=3e-4)
        return m, opt, torch.Generator().manual_seed(1)

    (m1, o1, g1), (m0, o0, g0) = setup(), setup(fused_adam=False)
    skeleton = gemm_skeleton(m1.cfg, B)
    fns = {
        "new": lambda: train_step(m1, o1, x, y, LossConfig(), g1),
        "previous": lambda: reference_train_step(m0, o0, x, y, LossConfig(), g0),
        "gemm_only": skeleton,
    }
    if not args.no_original:
        m2, o2, _ = setup(fused_adam=False)
        fns["original_way"] = lambda: reference_step(m2, o2, x, y)
    times = interleaved(fns, repeats=args.repeats, warmup=3)
    med = {k: statistics.median(v) for k, v in times.items()}
    pair = statistics.median([b / a for a, b in zip(times["new"], times["previous"])])
    flops = step_flops(m1.cfg, B)
    emit("irrl_digits", "ram_train_step_seconds", med["new"], "s", **cfg, repeats=args.repeats)
    emit(
        "irrl_digits",
        "previous_train_step_seconds",
        med["previous"],
        "s",
        **cfg,
        note="benchmarks/ram_reference.py: the step before the hand-written backward, interleaved in this run",
    )
    emit(
        "irrl_digits",
        "speedup_over_previous",
        med["previous"] / med["new"],
        "x",
        **cfg,
        median_of_pairwise_ratios=pair,
    )
    emit("irrl_digits", "step_flops", flops["total"], "FLOP", **cfg, forward=flops["forward"], bwd=flops["backward"])
    emit(
        "irrl_digits",
        "gemm_only_seconds",
        med["gemm_only"],
        "s",
        **cfg,
        gflops=flops["total"] / med["gemm_only"] / 1e9,
        note="the step's matmuls alone (same shapes), interleaved in this run: the floor at this matmul rate",
    )
    emit("irrl_digits", "step_gflops", flops["total"] / med["new"] / 1e9, "GFLOP/s", **cfg)
    for shape in [(B, 512, 256), (B * 18, 256, 256)]:
        emit("irrl_digits", "matmul_gflops", matmul_gflops(*shape), "GFLOP/s", **cfg, shape=list(shape))
    if not args.no_original:
        emit(
            "irrl_digits",
            "reference_train_step_seconds",
            med["original_way"],
            "s",
            **cfg,
            note="the original's per-sample glimpse loop and per-step heads, re-written here",
        )
        emit("irrl_digits", "speedup_over_reference", med["original_way"] / med["new"], "x", **cfg)
    m3, o3, g3 = setup("dtram", never_stop=True)
    emit(
        "irrl_digits",
        "dtram_train_step_seconds_18_glimpses",
        median_time(lambda: train_step(m3, o3, x, y, LossConfig(), g3), repeats=args.repeats, warmup=3),
        "s",
        **cfg,
        note="stop output forced off: 18 glimpses plus the final one",
    )
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(5):
                fns["new"]()
        table = prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=25)
        print(table, file=sys.stderr)
    if args.no_epoch:
        return

    from rewardlab.agents.ram_train import TrainConfig, evaluate, train_ram
    from rewardlab.data.cluttered_mnist import generate_cluttered
    from rewardlab.data.mnist import load_mnist

    data = generate_cluttered(load_mnist())
    tr, va = data.split(0.1, 1)
    torch.manual_seed(1)
    m = RAM(RAMConfig())
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        train_ram(
            m,
            LossConfig(),
            TrainConfig(epochs=1, threads=args.threads),
            data.x_train[tr],
            data.y_train[tr],
            data.x_train[va],
            data.y_train[va],
            Path(d),
            seed=1,
        )
        epoch = time.perf_counter() - t0
    steps = math.ceil(len(tr) / B)
    emit(
        "irrl_digits",
        "epoch_wall_seconds",
        epoch,
        "s",
        **cfg,
        train_images=len(tr),
        valid_images=len(va),
        steps=steps,
        note="one epoch of train_ram: 211 updates, validation, checkpoints",
    )
    torch.set_num_threads(args.threads)
    t = median_time(lambda: evaluate(m, data.x_test, data.y_test, batch_size=1000), repeats=3, warmup=1)
    emit("irrl_digits", "test_eval_images_per_second", len(data.y_test) / t, "images/s", **cfg, images=len(data.y_test))


if __name__ == "__main__":
    main()
