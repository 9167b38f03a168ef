"""Internal rewards: a policy rewarded by a discriminator's (classifier's) belief in the true label.

With q = q(y_true | trajectory) and the label prior p(y) (0.1 for ten digits, 1/K for K skills), as in Li et al.
(ICML 2023), "Internally Rewarded Reinforcement Learning", docs/originals.md: the prior is subtracted
*before* clipping.
"""

from __future__ import annotations

import math

import torch

from rewardlab.errors import RewardLabError
from rewardlab.rewards.kinds import REWARD_KINDS, check_reward_kind  # noqa: F401


def internal_reward(log_q_true: torch.Tensor, correct: torch.Tensor, kind: str, prior: float) -> torch.Tensor:
    """The reward for each sample.

    log_q_true: log q(y_true | trajectory); correct: whether argmax q is the true label (bool); prior: p(y).
    accuracy: 1[correct]; accuracy_pm1: +-1; linear_*: q - prior; log_*: log q - log prior; *_clipping: max(., 0).
    """
    check_reward_kind(kind)
    if not 0.0 < prior < 1.0:
        raise RewardLabError(f"the label prior must be in (0, 1), got {prior}")
    if kind == "accuracy":
        return correct.to(log_q_true.dtype)
    if kind == "accuracy_pm1":
        return correct.to(log_q_true.dtype) * 2.0 - 1.0
    if kind.startswith("linear"):
        r = log_q_true.exp() - prior
    else:
        r = log_q_true - math.log(prior)
    return r.clamp(min=0.0) if kind.endswith("_clipping") else r
