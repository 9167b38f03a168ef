"""CoinRun on envpool: the batched env's protocol, the registered single env, and a missing Qt5 runtime."""

import sys

import numpy as np
import pytest

from rewardlab.envs.coinrun import COIN_REWARD, CoinRunSpec, check_procgen, make_coinrun
from rewardlab.errors import RewardLabError


@pytest.fixture
def procgen():
    from conftest import require_procgen

    require_procgen()


def test_episodes_end_at_the_coin_with_the_final_frame_and_a_fresh_level(procgen):
    env = make_coinrun(CoinRunSpec(num_levels=0), 8, seed=0)
    assert env.single_observation_space.shape == (3, 64, 64) and env.single_action_space.n == 15
    obs, _ = env.reset()
    rng = np.random.default_rng(0)
    ended = successes = 0
    for _ in range(2500):
        obs, r, term, trunc, infos = env.step(rng.integers(0, 15, 8))
        assert set(np.unique(r)) <= {0.0, COIN_REWARD}
        np.testing.assert_array_equal(infos["success"], term & (r > 0))
        if "_final_obs" in infos:
            for i in np.flatnonzero(infos["_final_obs"]):
                assert not np.array_equal(infos["final_obs"][i], obs[i])  # the next level's first frame came back
                ended += 1
            successes += int(infos["success"].sum())
    assert ended > 5 and 0 < successes < ended  # random play reaches the coin in some episodes, not all
    env.close()


def test_same_seed_same_frames_and_one_level_repeats(procgen):
    a, b = (make_coinrun(CoinRunSpec(num_levels=1, start_level=7), 2, seed=5) for _ in range(2))
    oa, _ = a.reset()
    ob, _ = b.reset()
    np.testing.assert_array_equal(oa, ob)
    rng = np.random.default_rng(1)
    levels = set()
    for _ in range(1500):
        act = rng.integers(0, 15, 2)
        oa, _, _, _, ia = a.step(act)
        ob, _, _, _, _ = b.step(act)
        np.testing.assert_array_equal(oa, ob)
        levels |= set(ia["level_seed"].tolist())
    assert levels == {7}


def test_registered_single_env_passes_gymnasiums_checker(procgen):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import rewardlab.envs  # noqa: F401  (registers the ids)

    env = gym.make("rewardlab/CoinRun-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 64, 64) and env.render().shape == (64, 64, 3)
    env.close()


def test_missing_qt_runtime_is_one_line_naming_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "envpool.procgen", None)
    with pytest.raises(RewardLabError, match="apt-get install -y libqt5gui5") as e:
        check_procgen()
    assert "\n" not in str(e.value)
    with pytest.raises(RewardLabError, match="distribution"):
        make_coinrun(CoinRunSpec(distribution="medium"), 2)
