"""Reward nets by path: rewardlab's module checkpoints and (only when trusted) imitation's pickled nets."""

from __future__ import annotations

import os
from typing import Any

from rewardlab.core.modules import load_module


def load_reward(path: str | os.PathLike, trust_pickle: bool = False, map_location: Any = "cpu") -> Any:
    """A RewardNet from `path`: a rewardlab checkpoint (safe), or an imitation net saved with `torch.save` (read only
    with `trust_pickle`, then converted once to the safe format)."""
    from rewardlab.rewards.nets import RewardNet

    net, _ = load_module(path, expect=RewardNet, map_location=map_location)
    return net
