"""Reward models and transforms: the RewardNet protocol, nets, reward-replacing wrappers."""

from rewardlab.rewards.nets import MazeRewardMLP, RewardNet, build_reward_net, load_reward_net, save_reward_net

__all__ = ["RewardNet", "MazeRewardMLP", "build_reward_net", "load_reward_net", "save_reward_net"]
