"""Environments (registered Gymnasium ids) and their batched twins, Gymnasium VectorEnvs with same-step autoreset
(`rewardlab.envs.vector`)."""

from rewardlab.envs.atari import AtariEnv, AtariSpec, make_atari
from rewardlab.envs.atari import register as register_atari
from rewardlab.envs.coinrun import CoinRunEnv, CoinRunSpec, make_coinrun
from rewardlab.envs.coinrun import register as register_coinrun
from rewardlab.envs.four_rooms import BatchedFourRooms, FourRooms, FourRoomsEnv, four_rooms
from rewardlab.envs.four_rooms import register as register_four_rooms
from rewardlab.envs.maze import BatchedMaze, MazeEnv, env_id, register_mazes
from rewardlab.envs.mini_kitchen import BatchedMiniKitchen, MiniKitchenEnv, VectorMiniKitchen
from rewardlab.envs.mini_kitchen import register as register_mini_kitchen
from rewardlab.envs.mountain_car import BatchedMountainCar, ShapedMountainCarEnv, mc_env_id, register_mountain_cars
from rewardlab.envs.tabular_maze import TabularMazeEnv, register_tabular_mazes

register_mazes()
register_mountain_cars()
register_tabular_mazes()
register_four_rooms()
register_mini_kitchen()
register_atari()
register_coinrun()

__all__ = [
    "AtariEnv",
    "AtariSpec",
    "make_atari",
    "register_atari",
    "CoinRunEnv",
    "CoinRunSpec",
    "make_coinrun",
    "register_coinrun",
    "BatchedFourRooms",
    "VectorMiniKitchen",
    "MiniKitchenEnv",
    "BatchedMiniKitchen",
    "register_mini_kitchen",
    "MazeEnv",
    "BatchedMaze",
    "TabularMazeEnv",
    "env_id",
    "register_mazes",
    "register_tabular_mazes",
    "ShapedMountainCarEnv",
    "FourRooms",
    "FourRoomsEnv",
    "four_rooms",
    "register_four_rooms",
    "BatchedMountainCar",
    "mc_env_id",
    "register_mountain_cars",
]
