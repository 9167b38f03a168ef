"""RAM training-step time (batch 256, 18 glimpses, forward + backward + Adam) against a reference step written the
original's way (per-sample patch loop, padding every step, one module call per head per step), measured in the
same run; DT-RAM step time; a whole training epoch on Cluttered MNIST; test-set evaluation throughput.

For scale: the original code on this 2-core CPU takes about 0.137 s per step (29 s per epoch). Target: <= 0.05 s.
"""

from __future__ import annotations

import argparse
import math
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the machine has 2 cores)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--no-epoch", action="store_true", help="skip the whole-epoch and test-set figures (need MNIST)")
    args = p.parse_args(argv)
    from rewardlab.agents.ram import RAM, LossConfig, RAMConfig
    from rewardlab.agents.ram_train import train_step

    torch.set_num_threads(args.threads)
    B = 256
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 1, 60, 60, generator=g)
    y = torch.randint(0, 10, (B,), generator=g)
    cfg = dict(threads=args.threads, batch_size=B, glimpses=18, patch=4)

    def timed(model_name: str, reference: bool = False, never_stop: bool = False) -> float:
        torch.manual_seed(0)
        m = RAM(RAMConfig(model=model_name))
        if never_stop:
            with torch.no_grad():
                m.locator.fc_lt.bias[2] = -50.0
        m.train()
        opt = torch.optim.Adam(m.parameters(), lr=3e-4)
        gen = torch.Generator().manual_seed(1)
        if reference:
            return median_time(lambda: reference_step(m, opt, x, y), repeats=max(3, args.repeats // 2), warmup=1)
        return median_time(lambda: train_step(m, opt, x, y, LossConfig(), gen), repeats=args.repeats, warmup=3)

    ours = timed("ram")
    ref = timed("ram", reference=True)
    emit("irrl_digits", "ram_train_step_seconds", ours, "s", **cfg, target=0.05)
    emit(
        "irrl_digits",
        "reference_train_step_seconds",
        ref,
        "s",
        **cfg,
        note="the original's per-sample glimpse loop and per-step heads, re-written here",
    )
    emit("irrl_digits", "speedup_over_reference", ref / ours, "x", **cfg)
    emit(
        "irrl_digits",
        "dtram_train_step_seconds_18_glimpses",
        timed("dtram", never_stop=True),
        "s",
        **cfg,
        note="stop output forced off: 18 glimpses plus the final one",
    )
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
