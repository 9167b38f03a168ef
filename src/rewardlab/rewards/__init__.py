"""Reward models and transforms: the RewardNet protocol, nets, reward-replacing wrappers.

The nets are imported on first use (`rewardlab.rewards.RewardNet`), so that `rewardlab.rewards.kinds` (the reward
kinds a config names) imports no torch."""

from typing import Any

__all__ = ["RewardNet", "MazeRewardMLP"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rewardlab.rewards import nets

        return getattr(nets, name)
    raise AttributeError(f"module 'rewardlab.rewards' has no attribute '{name}'")
