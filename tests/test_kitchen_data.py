"""Real-Kitchen support: D4RL observation mapping, the Minari loader, and the FrankaKitchen-v1 adapter (optional)."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from rewardlab.data.minari import read_minari, write_minari
from rewardlab.data.offline import read_d4rl, write_d4rl
from rewardlab.envs.franka_kitchen import (
    KITCHEN_GOAL_IDX,
    KITCHEN_TARGET_TASKS,
    KITCHEN_TASKS,
    OBS_ELEMENT_GOALS,
    OBS_ELEMENT_INDICES,
    d4rl_obs_from_v1,
    goal_features,
    kitchen_goal_vector,
    make_franka_kitchen,
)
from rewardlab.errors import RewardLabError

GOAL_SIZES = {"microwave": 1, "kettle": 7, "bottom burner": 2, "light switch": 2}
EXPECTED_GOAL = np.zeros(30)
EXPECTED_GOAL[[11, 12]] = [-0.88, -0.01]
EXPECTED_GOAL[[17, 18]] = [-0.69, -0.05]
EXPECTED_GOAL[22] = -0.75
EXPECTED_GOAL[23:30] = [-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06]


# ---------------------------------------------------------------- observation layout


def test_d4rl_obs_from_v1_layout():
    rng = np.random.default_rng(0)
    for shape in [(59,), (7, 59), (2, 3, 59)]:
        v1 = rng.normal(size=shape)
        out = d4rl_obs_from_v1(v1)
        assert out.shape == shape[:-1] + (60,)
        np.testing.assert_array_equal(out[..., 0:9], v1[..., 0:9])
        np.testing.assert_array_equal(out[..., 9:30], v1[..., 18:39])
        np.testing.assert_array_equal(out[..., 30:], np.broadcast_to(EXPECTED_GOAL, shape[:-1] + (30,)))
    assert d4rl_obs_from_v1(np.zeros((4, 59), np.float32)).dtype == np.float32
    # the goal vector follows the target tasks, as D4RL's _get_task_goal does
    g = kitchen_goal_vector(["slide cabinet"])
    assert g[19] == 0.37 and np.count_nonzero(g) == 1
    for bad in [np.zeros(60), np.zeros((3, 58)), np.float64(1.0)]:
        with pytest.raises(RewardLabError, match="59"):
            d4rl_obs_from_v1(bad)
    with pytest.raises(RewardLabError, match="unknown Kitchen task"):
        kitchen_goal_vector(["oven"])


def test_goal_feature_indices_map_to_the_target_objects():
    assert KITCHEN_GOAL_IDX.tolist() == [*range(9), 11, 12, 17, 18, 22, *range(23, 30)]
    obj = sorted(int(i) for t in KITCHEN_TARGET_TASKS for i in OBS_ELEMENT_INDICES[t])
    assert KITCHEN_GOAL_IDX.tolist() == [*range(9), *obj]
    owner = {int(i): t for t in KITCHEN_TASKS for i in OBS_ELEMENT_INDICES[t]}
    counts: dict[str, int] = {}
    for i in KITCHEN_GOAL_IDX.tolist():
        name = "robot" if i < 9 else owner[i]
        counts[name] = counts.get(name, 0) + 1
    assert counts == {"robot": 9, **GOAL_SIZES}
    # through the v1 mapping: D4RL object index q is v1 index q - 9 + 18
    v1 = np.arange(59.0)
    feats = goal_features(d4rl_obs_from_v1(v1))
    assert feats.shape == (21,)
    assert feats.tolist() == [*range(9), *(q - 9 + 18 for q in obj)]
    assert goal_features(np.zeros((5, 4, 60))).shape == (5, 4, 21)
    with pytest.raises(RewardLabError, match="60"):
        goal_features(np.zeros((2, 59)))


def test_modules_do_not_import_mujoco():
    code = (
        "import sys, rewardlab.envs.franka_kitchen, rewardlab.data.minari; "
        "assert not {'mujoco', 'gymnasium_robotics', 'minari'} & set(sys.modules), sys.modules.keys()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_extra_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco", None)  # makes `import mujoco` raise ImportError
    with pytest.raises(RewardLabError, match=r"kitchen extra.*mujoco==3\.11\.0"):
        make_franka_kitchen()
    with pytest.raises(RewardLabError, match="tasks="):
        make_franka_kitchen(tasks_to_complete=["kettle"])


# ---------------------------------------------------------------- Minari loader


def _kitchen_episode(rng: np.random.Generator, T: int, end: str) -> dict:
    obs = {
        "observation": rng.normal(size=(T + 1, 59)),
        "achieved_goal": {t: rng.normal(size=(T + 1, n)) for t, n in GOAL_SIZES.items()},
        "desired_goal": {t: np.tile(OBS_ELEMENT_GOALS[t], (T + 1, 1)) for t in GOAL_SIZES},
    }
    term = np.zeros(T, bool)
    trunc = np.zeros(T, bool)
    if end == "term":
        term[-1] = True
    elif end == "trunc":
        trunc[-1] = True
    return dict(
        observations=obs,
        actions=rng.uniform(-1, 1, (T, 9)),
        rewards=rng.integers(0, 2, T).astype(float),
        terminations=term,
        truncations=trunc,
        seed=T,
    )


@pytest.fixture
def kitchen_minari(tmp_path):
    rng = np.random.default_rng(1)
    eps = [_kitchen_episode(rng, 6, "trunc"), _kitchen_episode(rng, 4, "term"), _kitchen_episode(rng, 5, "none")]
    path = write_minari(
        tmp_path / "kitchen" / "mixed-v0",
        eps,
        "FrankaKitchen-v1",
        dataset_id="kitchen/mixed-v0",
        env_kwargs={"tasks_to_complete": list(KITCHEN_TARGET_TASKS)},
        max_episode_steps=280,
    )
    return path, eps


def test_read_minari_kitchen_dict_obs(kitchen_minari):
    path, eps = kitchen_minari
    for p in [path, path / "data", path / "data" / "main_data.hdf5"]:
        ds = read_minari(p)
        assert (ds.obs_dim, ds.act_dim, len(ds)) == (60, 9, 15)
    assert ds.meta["env"] == "FrankaKitchen-v1" and ds.meta["obs_layout"] == "d4rl-kitchen-60"
    assert ds.meta["kitchen_tasks"] == list(KITCHEN_TARGET_TASKS) and ds.meta["n_episodes"] == 3
    assert ds.episode_bounds().tolist() == [[0, 6], [6, 10], [10, 15]]
    v1 = np.concatenate([e["observations"]["observation"][:-1] for e in eps])  # the final obs of each is dropped
    np.testing.assert_allclose(ds.observations, d4rl_obs_from_v1(v1), rtol=1e-6)
    np.testing.assert_allclose(ds.actions, np.concatenate([e["actions"] for e in eps]), rtol=1e-6)
    np.testing.assert_array_equal(ds.rewards, np.concatenate([e["rewards"] for e in eps]))
    assert np.flatnonzero(ds.terminals).tolist() == [9]
    assert np.flatnonzero(ds.timeouts).tolist() == [5, 14]  # 14: the episode with neither flag gets a timeout
    assert goal_features(ds.observations).shape == (15, 21)
    ds.check_dims(60, 9)
    # kitchen=False keeps the raw 59-d observation
    assert read_minari(path, kitchen=False).obs_dim == 59


def test_read_minari_box_obs(tmp_path):
    rng = np.random.default_rng(2)
    eps = [
        dict(
            observations=rng.normal(size=(T + 1, 3)).astype(np.float32),
            actions=rng.integers(0, 3, T),
            rewards=rng.normal(size=T),
            terminations=np.arange(T) == T - 1,
            truncations=np.zeros(T, bool),
        )
        for T in (3, 5)
    ]
    eps.append(
        dict(
            observations=np.zeros((1, 3), np.float32),
            actions=np.zeros(0, int),
            rewards=np.zeros(0),
            terminations=np.zeros(0, bool),
            truncations=np.zeros(0, bool),
        )
    )  # an empty episode is skipped
    path = write_minari(tmp_path / "box", eps, "Pendulum-v1")
    ds = read_minari(path)
    assert (ds.obs_dim, ds.act_dim, len(ds)) == (3, 1, 8) and "obs_layout" not in ds.meta
    assert ds.meta["env"] == "Pendulum-v1"
    np.testing.assert_array_equal(ds.observations, np.concatenate([e["observations"][:-1] for e in eps[:2]]))
    np.testing.assert_array_equal(ds.actions[:, 0], np.concatenate([e["actions"] for e in eps[:2]]))
    assert np.flatnonzero(ds.terminals).tolist() == [2, 7] and not ds.timeouts.any()
    assert ds.episode_bounds().tolist() == [[0, 3], [3, 8]]


def test_read_minari_bad_inputs(tmp_path, kitchen_minari):
    with pytest.raises(RewardLabError, match="does not exist"):
        read_minari(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RewardLabError, match="not a Minari dataset folder"):
        read_minari(tmp_path / "empty")
    (tmp_path / "noeps" / "data").mkdir(parents=True)
    with h5py.File(tmp_path / "noeps" / "data" / "main_data.hdf5", "w") as f:
        f.create_dataset("observations", data=np.zeros((3, 2)))
    with pytest.raises(RewardLabError, match="no episodes"):
        read_minari(tmp_path / "noeps")
    (tmp_path / "bad" / "data").mkdir(parents=True)
    with h5py.File(tmp_path / "bad" / "data" / "main_data.hdf5", "w") as f:
        g = f.create_group("episode_0")
        g["observations"] = np.zeros((4, 2))  # T rows instead of T + 1
        g["actions"] = np.zeros((4, 1))
        for k in ("rewards", "terminations", "truncations"):
            g[k] = np.zeros(4)
    with pytest.raises(RewardLabError, match="episode_0 .*inconsistent lengths: observations 4 .*expected.* 5"):
        read_minari(tmp_path / "bad")
    (tmp_path / "corrupt" / "data").mkdir(parents=True)
    (tmp_path / "corrupt" / "data" / "main_data.hdf5").write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(RewardLabError, match="corrupt"):
        read_minari(tmp_path / "corrupt")
    (tmp_path / "arrow" / "data").mkdir(parents=True)
    (tmp_path / "arrow" / "data" / "metadata.json").write_text(json.dumps({"data_format": "arrow"}))
    with pytest.raises(RewardLabError, match="'arrow'.*hdf5"):
        read_minari(tmp_path / "arrow")
    path, eps = kitchen_minari
    with pytest.raises(RewardLabError, match="already exists"):
        write_minari(path, eps)
    with pytest.raises(RewardLabError, match="T\\+1"):
        write_minari(tmp_path / "w", [dict(eps[0], actions=eps[0]["actions"][:-1])])


def test_write_minari_loads_in_real_minari(kitchen_minari):
    minari = pytest.importorskip("minari")
    path, eps = kitchen_minari
    d = minari.MinariDataset(path / "data")
    assert (d.total_episodes, d.total_steps) == (3, 15)
    assert d.env_spec.id == "FrankaKitchen-v1"
    for got, ref in zip(d.iterate_episodes(), eps):
        np.testing.assert_array_equal(got.observations["observation"], ref["observations"]["observation"])
        np.testing.assert_array_equal(
            got.observations["desired_goal"]["kettle"], ref["observations"]["desired_goal"]["kettle"]
        )
        np.testing.assert_array_equal(got.actions, ref["actions"])
        np.testing.assert_array_equal(got.truncations, ref["truncations"])


# ---------------------------------------------------------------- the real FrankaKitchen-v1 (optional extra)


def test_constants_match_gymnasium_robotics():
    pytest.importorskip("gymnasium_robotics")
    from gymnasium_robotics.envs.franka_kitchen import kitchen_env as ke

    assert set(ke.OBS_ELEMENT_GOALS) == set(KITCHEN_TASKS)
    for t in KITCHEN_TASKS:
        np.testing.assert_array_equal(ke.OBS_ELEMENT_GOALS[t], OBS_ELEMENT_GOALS[t])
        np.testing.assert_array_equal(ke.OBS_ELEMENT_INDICES[t], OBS_ELEMENT_INDICES[t])


def test_franka_kitchen_adapter_random_episode():
    pytest.importorskip("gymnasium_robotics")
    env = make_franka_kitchen(seed=0)
    assert env.observation_space.shape == (60,) and env.action_space.shape == (9,)
    assert env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    obs, info = env.reset()
    assert obs.shape == (60,) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert info["completed_tasks"] == []
    np.testing.assert_allclose(obs[30:], EXPECTED_GOAL, atol=1e-6)
    n, total = 0, 0.0
    while True:
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        n += 1
        total += r
        assert obs.shape == (60,) and obs.dtype == np.float32 and isinstance(r, float)
        if term or trunc:
            break
    assert (n, trunc, term) == (280, True, False) and total == len(info["completed_tasks"]) == 0
    env.close()


def test_franka_kitchen_completion_rewards_once():
    pytest.importorskip("gymnasium_robotics")
    import mujoco

    env = make_franka_kitchen(seed=0)
    env.reset()
    u = env.unwrapped
    zero = np.zeros(9, np.float32)

    def force(task: str) -> None:
        u.data.qpos[OBS_ELEMENT_INDICES[task]] = OBS_ELEMENT_GOALS[task]
        mujoco.mj_forward(u.model, u.data)

    force("microwave")
    obs, r, term, trunc, info = env.step(zero)
    assert r == 1.0 and not term and info["completed_tasks"] == ["microwave"]
    assert abs(obs[22] - (-0.75)) < 0.3  # the microwave dim of the 60-d obs
    for _ in range(2):  # the door stays open, but a completed task is removed: no second reward
        obs, r, term, trunc, info = env.step(zero)
        assert r == 0.0 and info["completed_tasks"] == ["microwave"]
    for t in ("kettle", "bottom burner", "light switch"):
        force(t)
    obs, r, term, trunc, info = env.step(zero)
    assert r == 3.0 and term and not trunc
    assert sorted(info["completed_tasks"]) == sorted(KITCHEN_TARGET_TASKS)
    obs, info = env.reset()
    assert info["completed_tasks"] == []
    env.close()


def test_record_kitchen_dataset_roundtrip(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    from rewardlab.envs.franka_kitchen import record_kitchen_dataset

    ds = record_kitchen_dataset(2, 30, seed=0)
    assert (len(ds), ds.obs_dim, ds.act_dim) == (60, 60, 9)
    assert ds.meta["env"] == "FrankaKitchen-v1" and ds.meta["tasks"] == list(KITCHEN_TARGET_TASKS)
    assert ds.episode_bounds().tolist() == [[0, 30], [30, 60]]
    assert np.flatnonzero(ds.timeouts).tolist() == [29, 59] and not ds.terminals.any()
    assert np.abs(ds.actions).max() <= 1.0
    assert ds.observations[..., KITCHEN_GOAL_IDX].shape == (60, 21)
    np.testing.assert_allclose(ds.observations[:, 30:], np.tile(EXPECTED_GOAL, (60, 1)), atol=1e-6)
    write_d4rl(tmp_path / "kitchen.hdf5", ds)
    back = read_d4rl(tmp_path / "kitchen.hdf5")
    for k in ("observations", "actions", "rewards", "terminals", "timeouts"):
        np.testing.assert_array_equal(getattr(back, k), getattr(ds, k))
    assert back.meta["env"] == "FrankaKitchen-v1"
    again = record_kitchen_dataset(1, 30, seed=0)  # same seed, same episode
    np.testing.assert_array_equal(again.observations, ds.observations[:30])


def test_the_ptgm_pretraining_pipeline_runs_on_recorded_kitchen_data(tmp_path, capsys):
    """Data, codebook and pre-training of the ptgm study on a small dataset recorded from FrankaKitchen-v1."""
    pytest.importorskip("gymnasium_robotics")
    import json

    from rewardlab.cli import main
    from rewardlab.data.offline import write_d4rl
    from rewardlab.envs.franka_kitchen import record_kitchen_dataset

    write_d4rl(tmp_path / "kitchen.hdf5", record_kitchen_dataset(3, 40, seed=0))
    out = tmp_path / "run"
    assert (
        main(
            [
                "ptgm",
                "run",
                "--out",
                str(out),
                f"data.source={tmp_path / 'kitchen.hdf5'}",
                "codebook.n_codes=4",
                "codebook.stride=2",
                "codebook.offset=0",
                "pretrain.steps=20",
                "pretrain.log_every=10",
                "pretrain.batch=8",
                "methods=[ptgm]",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset_steps"] == 120 and summary["dataset_episodes"] == 3
    with np.load(out / "codebook" / "codebook.npz") as z:
        assert z["features"].shape == (4, 21) and z["states"].shape == (4, 60)
        assert np.array_equal(z["goal_idx"], KITCHEN_GOAL_IDX)
    assert (out / "pretrain" / "pretrain.pt").exists() and not (out / "rl").exists()
