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

    from rewardlab.envs import BatchedFourRooms, BatchedMaze, BatchedMountainCar, VectorMiniKitchen
    from rewardlab.envs.mini_kitchen import KitchenSpec
    from rewardlab.envs.vector import final_observations

    makers = [
        lambda: BatchedMaze(5, "CoinFlipGoal", max_episode_steps=4),
        lambda: BatchedMountainCar(5, "dense"),
        lambda: BatchedFourRooms(5, "small"),
        lambda: VectorMiniKitchen(5, KitchenSpec(max_steps=30), seed=0),
    ]
    for make in makers:
        env = make()
        assert isinstance(env, gym.vector.VectorEnv) and env.num_envs == 5
        assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
        assert env.observation_space.shape == (5, *env.single_observation_space.shape)
        first, _ = env.reset(seed=3)
        env.action_space.seed(0)
        actions = [env.action_space.sample() for _ in range(250)]
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


def test_the_four_room_env_is_the_batched_one_with_n_1():
    import numpy as np

    from rewardlab.envs import BatchedFourRooms
    from rewardlab.envs.vector import final_observations

    batched = BatchedFourRooms(3, "small")
    singles = [gym.make("rewardlab/FourRooms-small-v0") for _ in range(3)]
    obs_b, _ = batched.reset()
    assert obs_b.tolist() == [e.reset()[0] for e in singles]
    actions = np.random.default_rng(0).integers(0, 5, size=(40, 3))
    for a in actions:
        obs_b, r_b, term_b, trunc_b, infos = batched.step(a)
        final = final_observations(obs_b, infos)
        for i, e in enumerate(singles):
            o, r, term, trunc, _ = e.step(int(a[i]))
            assert (o, r, term, trunc) == (final[i], r_b[i], term_b[i], trunc_b[i])
            if term or trunc:
                assert e.reset()[0] == obs_b[i]
