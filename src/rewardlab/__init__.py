"""rewardlab: a toolkit for reward-centric reinforcement learning."""

from rewardlab.errors import RewardLabError

__all__ = ["RewardLabError"]
__version__ = "0.1.0"
