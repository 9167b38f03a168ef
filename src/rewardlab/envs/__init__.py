"""Environments (registered Gymnasium ids) and their batched twins."""

from rewardlab.envs.maze import BatchedMaze, MazeEnv, env_id, register_mazes

register_mazes()

__all__ = ["MazeEnv", "BatchedMaze", "env_id", "register_mazes"]
