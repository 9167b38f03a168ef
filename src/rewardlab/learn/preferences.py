"""Reward learning from preferences (DRLHP, Christiano et al. 2017) with synthetic Bradley-Terry labels.

Fragments are short state sequences from a uniformly random policy started in uniformly random states of a
tabular MDP (imitation's DRLHP instead samples fragments from an agent trained alongside; on these small
mazes a random policy covers every transition, which is what the preprocessing study needs). A synthetic
oracle prefers fragment 1 over 2 with probability sigmoid((G1 - G2) / temperature), G the undiscounted true
return; the reward net is trained by cross-entropy on the same Bradley-Terry model.
"""

from __future__ import annotations

import numpy as np
import torch

from rewardlab.core.runs import progress
from rewardlab.errors import RewardLabError
from rewardlab.learn.configs import PreferenceConfig  # noqa: F401
from rewardlab.rewards.tabular import TabularRewardNet


def sample_fragments(next_state: np.ndarray, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """`n` fragments of `length` transitions under a uniform random policy: states (n, length + 1)."""
    n_states, n_actions = next_state.shape
    states = np.empty((n, length + 1), dtype=np.int64)
    states[:, 0] = rng.integers(0, n_states, size=n)
    actions = rng.integers(0, n_actions, size=(n, length))
    for t in range(length):
        states[:, t + 1] = next_state[states[:, t], actions[:, t]]
    return states


def synthetic_labels(
    true_table: np.ndarray, f1: np.ndarray, f2: np.ndarray, cfg: PreferenceConfig, rng: np.random.Generator
) -> np.ndarray:
    """Probability-1 labels (1.0 if fragment 1 is preferred) from the true reward table."""
    g1 = true_table[f1[:, :-1], f1[:, 1:]].sum(1)
    g2 = true_table[f2[:, :-1], f2[:, 1:]].sum(1)
    p = 1.0 / (1.0 + np.exp(-(g1 - g2) / cfg.temperature))
    return (
        (rng.random(len(p)) < p).astype(np.float32) if cfg.sample else (g1 > g2).astype(np.float32) + 0.5 * (g1 == g2)
    )


def learn_tabular_reward(
    next_state: np.ndarray, true_table: np.ndarray, cfg: PreferenceConfig, seed: int = 0
) -> TabularRewardNet:
    """Train a TabularRewardNet R[s, s'] from synthetic preferences over random-policy fragments."""
    n_states = next_state.shape[0]
    if true_table.shape != (n_states, n_states):
        raise RewardLabError(f"the reward table {true_table.shape} does not fit an MDP with {n_states} states")
    rng = np.random.default_rng(seed)
    f1 = sample_fragments(next_state, cfg.comparisons, cfg.fragment_length, rng)
    f2 = sample_fragments(next_state, cfg.comparisons, cfg.fragment_length, rng)
    labels = torch.as_tensor(synthetic_labels(true_table, f1, f2, cfg, rng))
    torch.manual_seed(seed)
    net = TabularRewardNet(n_states)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    a1, b1 = torch.as_tensor(f1[:, :-1]).reshape(-1), torch.as_tensor(f1[:, 1:]).reshape(-1)
    a2, b2 = torch.as_tensor(f2[:, :-1]).reshape(-1), torch.as_tensor(f2[:, 1:]).reshape(-1)
    shape = (cfg.comparisons, cfg.fragment_length)
    for _ in progress(range(cfg.epochs), desc="preference learning"):
        g1 = net(a1, None, b1, None).reshape(shape).sum(1)
        g2 = net(a2, None, b2, None).reshape(shape).sum(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits((g1 - g2) / cfg.temperature, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()
