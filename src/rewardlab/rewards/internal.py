"""Internal rewards: a policy rewarded by a discriminator's (classifier's) belief in the true label.

With q = q(y_true | trajectory) and the label prior p(y) (0.1 for ten digits, 1/K for K skills), as in Li et al.
(ICML 2023), "Internally Rewarded Reinforcement Learning", docs/originals.md: the prior is subtracted
*before* clipping.
"""

from __future__ import annotations

import math

import torch

from rewardlab.errors import RewardLabError
from rewardlab.rewards.kinds import KINDS, REWARD_KINDS, check_reward_kind  # noqa: F401


def internal_reward(log_q_true: torch.Tensor, correct: torch.Tensor, kind: str, prior: float) -> torch.Tensor:
    """The reward for each sample, by the kind's row of `rewardlab.rewards.kinds.TABLE`.

    log_q_true: log q(y_true | trajectory); correct: whether argmax q is the true label (bool); prior: p(y).
    """
    k = KINDS[check_reward_kind(kind)]
    if not 0.0 < prior < 1.0:
        raise RewardLabError(f"the label prior must be in (0, 1), got {prior}")
    if k.formula == "accuracy":
        c = correct.to(log_q_true.dtype)
        return c * 2.0 - 1.0 if k.plus_minus_one else c
    r = log_q_true.exp() - prior if k.formula == "linear" else log_q_true - math.log(prior)
    return r.clamp(min=0.0) if k.clipped else r
