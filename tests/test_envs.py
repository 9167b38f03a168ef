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


def test_batched_envs_are_gymnasium_vector_envs_with_same_step_autoreset():
    import numpy as np

    from rewardlab.envs import BatchedMaze, BatchedMountainCar
    from rewardlab.envs.vector import final_observations

    for make, n_actions in (
        (lambda: BatchedMaze(5, "CoinFlipGoal", max_episode_steps=4), 4),
        (lambda: BatchedMountainCar(5, "dense"), 3),
    ):
        env = make()
        assert isinstance(env, gym.vector.VectorEnv) and env.num_envs == 5
        assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
        assert env.observation_space.shape == (5, *env.single_observation_space.shape)
        first, _ = env.reset(seed=3)
        actions = np.random.default_rng(0).integers(0, n_actions, size=(250, 5))
        runs = []
        for _ in range(2):  # reset(seed=...) starts the same streams again
            obs, _ = env.reset(seed=3)
            np.testing.assert_array_equal(obs, first)
            trace, ends = [], 0
            for a in actions:
                obs, r, term, trunc, infos = env.step(a)
                done = term | trunc
                final = final_observations(obs, infos)
                if done.any():
                    ends += 1
                    assert (infos["_final_obs"] == done).all() and infos["final_obs"][~done].tolist() == [None] * (
                        ~done
                    ).sum()
                else:
                    assert infos == {} and final is obs
                trace.append((obs.copy(), r.copy(), final.copy()))
            assert ends > 0
            runs.append(trace)
        for (o1, r1, f1), (o2, r2, f2) in zip(*runs):
            (
                np.testing.assert_array_equal(o1, o2),
                np.testing.assert_array_equal(r1, r2),
                np.testing.assert_array_equal(f1, f2),
            )
