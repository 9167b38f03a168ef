import numpy as np
import pytest

from rewardlab.data.rollouts import collect_transitions, run_episodes
from rewardlab.data.transitions import Transitions, read_meta, read_transitions, write_transitions
from rewardlab.envs.maze import GOAL, BatchedMaze
from rewardlab.errors import RewardLabError


def random_policy(seed=0):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(0, 4, size=len(obs))


def test_collect_transitions_final_observation_on_done():
    t = collect_transitions(BatchedMaze(8, "CoinFlipGoal", seeds=0), random_policy(), 3000)
    assert len(t) == 3000 and t.obs.dtype == np.uint8 and t.rewards.dtype == np.float32
    assert t.dones.any()
    # every rewarding transition ends the episode and its s' hides the reached goal
    np.testing.assert_array_equal(t.rewards == 1, t.dones)
    assert not (t.next_obs[t.dones] == GOAL).any()
    assert (t.obs[t.dones] == GOAL).all(axis=(1, 2)).sum() == 0 and (t.obs[t.dones] == GOAL).any()


def test_run_episodes_counts():
    r = run_episodes(BatchedMaze(4, "CoinFlipGoal", seeds=1), random_policy(), 10)
    assert len(r["returns"]) == 10 and ((r["lengths"] >= 1) & (r["lengths"] <= 200)).all()
    np.testing.assert_array_equal(r["returns"], r["successes"].astype(float))


def test_hdf5_round_trip(tmp_path):
    t = collect_transitions(BatchedMaze(4, seeds=0), random_policy(), 500)
    meta = {"env_id": "rewardlab/EmptyMaze-10x10-CoinFlipGoal-v0", "seed": 0}
    path = tmp_path / "d.h5"
    write_transitions(path, {"train": t, "test": t.take(slice(0, 100))}, meta)
    assert read_meta(path) == meta
    back = read_transitions(path, "train", env_id=meta["env_id"], obs_shape=(11, 11))
    for k in ("obs", "next_obs", "rewards", "dones"):
        np.testing.assert_array_equal(getattr(back, k), getattr(t, k))
        assert getattr(back, k).dtype == getattr(t, k).dtype
    assert len(read_transitions(path, "test")) == 100


def test_hdf5_bad_inputs(tmp_path):
    with pytest.raises(RewardLabError, match="does not exist"):
        read_transitions(tmp_path / "missing.h5", "train")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(RewardLabError, match="corrupt or not an HDF5"):
        read_transitions(bad, "train")
    t = collect_transitions(BatchedMaze(2, seeds=0), random_policy(), 50)
    path = tmp_path / "d.h5"
    write_transitions(path, {"train": t}, {"env_id": "rewardlab/EmptyMaze-10x10-TwoGoals-v0"})
    with pytest.raises(RewardLabError, match="made on rewardlab/EmptyMaze-10x10-TwoGoals-v0"):
        read_transitions(path, "train", env_id="rewardlab/EmptyMaze-10x10-CoinFlipGoal-v0")
    with pytest.raises(RewardLabError, match="no 'test' split"):
        read_transitions(path, "test")
    with pytest.raises(RewardLabError, match="shape"):
        read_transitions(path, "train", obs_shape=(84, 84))


def test_transitions_length_mismatch():
    with pytest.raises(RewardLabError):
        Transitions(
            np.zeros((3, 11, 11), np.uint8), None, np.zeros((2, 11, 11), np.uint8), np.zeros(3), np.zeros(3, bool)
        )
