"""Every registered environment, and the FrankaKitchen adapter, pass Gymnasium's own environment checker."""

import os
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import rewardlab.envs  # noqa: F401  (registers the ids)


def test_every_registered_env_passes_check_env():
    ids = sorted(k for k in gym.registry if k.startswith("rewardlab/"))
    assert len(ids) >= 16
    for env_id in ids:
        env = gym.make(env_id)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped)
        assert not [str(w.message) for w in caught], env_id
        env.close()


def test_the_franka_kitchen_adapter_passes_check_env():
    if os.environ.get("REWARDLAB_REQUIRE_EXTRAS") != "1":
        pytest.importorskip("mujoco")
    from rewardlab.envs.franka_kitchen import make_franka_kitchen

    env = make_franka_kitchen(seed=0)
    with warnings.catch_warnings():  # a wrapped env, and D4RL's unbounded observations: warned, both as intended
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)  # rendering needs a display (MUJOCO_GL=egl)
    env.close()
