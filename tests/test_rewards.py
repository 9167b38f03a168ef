import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.core.modules import load_module, save_module
from rewardlab.data.rollouts import collect_transitions
from rewardlab.envs.maze import BatchedMaze
from rewardlab.envs.vec import BatchedVecEnv
from rewardlab.errors import RewardLabError
from rewardlab.learn.regression import RegressionConfig, mse_report, train_regression
from rewardlab.rewards.nets import MazeRewardMLP
from rewardlab.rewards.wrappers import LearnedRewardVecEnv


def random_transitions(n, seed, greedy=0.0):
    """Transitions from a policy that steps towards the visible goal with probability `greedy`, else at random."""
    rng = np.random.default_rng(seed)

    def act(obs):
        flat = obs.reshape(len(obs), -1)
        agent = np.stack(np.unravel_index((flat == 2).argmax(1), (11, 11)), 1)
        goal = np.stack(np.unravel_index((flat == 3).argmax(1), (11, 11)), 1)
        d = goal - agent
        towards = np.where(d[:, 0] < 0, 0, np.where(d[:, 0] > 0, 1, np.where(d[:, 1] < 0, 2, 3)))
        return np.where(rng.random(len(obs)) < greedy, towards, rng.integers(0, 4, size=len(obs)))

    return collect_transitions(BatchedMaze(16, seeds=seed), act, n)


def test_architecture_matches_paper():
    net = MazeRewardMLP()
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(64, 242), (64,), (64, 64), (64,), (1, 64)]  # last layer has no bias
    s = torch.zeros(5, 11, 11, dtype=torch.uint8)
    out = net(s, None, s, None)
    assert out.shape == (5,) and out.dtype == torch.float32


def test_wrong_shape_is_a_clear_error():
    net = MazeRewardMLP()
    with pytest.raises(RewardLabError, match="expects states of shape"):
        net(torch.zeros(2, 10, 10), None, torch.zeros(2, 10, 10), None)


def test_save_load_identical_outputs(tmp_path):
    torch.manual_seed(0)
    net = MazeRewardMLP(hidden=(32, 16))
    t = random_transitions(200, 0)
    before = net.predict(t.obs, None, t.next_obs, None)
    save_module(tmp_path / "m.pt", net, {"note": "x"})
    back, meta = load_module(tmp_path / "m.pt")
    assert meta == {"note": "x"}
    np.testing.assert_array_equal(back.predict(t.obs, None, t.next_obs, None), before)


def test_load_refuses_other_architecture_and_corrupt_files(tmp_path):
    save_module(tmp_path / "m.pt", MazeRewardMLP(hidden=(32,)))
    with pytest.raises(RewardLabError, match="config asks for"):
        load_module(tmp_path / "m.pt", expect_config={"obs_shape": (11, 11), "hidden": (64, 64)})
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(RewardLabError, match="corrupt"):
        load_module(tmp_path / "bad.pt")
    with pytest.raises(RewardLabError, match="does not exist"):
        load_module(tmp_path / "none.pt")


def test_regression_learns_and_resumes(tmp_path):
    """Regression on random-policy maze data drives the test MSE far below the reward variance."""
    torch.manual_seed(0)
    train, test = random_transitions(6000, 1, 0.7), random_transitions(3000, 2, 0.7)
    cfg = RegressionConfig(epochs=2, batch_size=20)
    net = MazeRewardMLP()
    res = train_regression(net, train, test, cfg, tmp_path / "rm", seed=0, device="cpu")
    var = float(np.var(test.rewards))
    assert var > 0.02 and res["test_mse"] < 0.3 * var
    # a rerun with more epochs resumes from the saved epoch-2 checkpoint and keeps improving
    cfg3 = RegressionConfig(epochs=3, batch_size=20)
    net2 = MazeRewardMLP()
    res3 = train_regression(net2, train, test, cfg3, tmp_path / "rm", seed=0, device="cpu")
    assert res3["train_mse"] <= res["train_mse"] * 1.5
    assert mse_report(net2, test, "cpu")["mse"] == pytest.approx(res3["test_mse"])


def test_learned_reward_vec_env_replaces_reward_and_keeps_true():
    torch.manual_seed(0)
    net = MazeRewardMLP()
    inner = BatchedVecEnv(BatchedMaze(4, seeds=0))
    venv = LearnedRewardVecEnv(inner, net)
    obs = venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = rng.integers(0, 4, size=4)
        venv.step_async(a)
        nxt, r, dones, infos = venv.step_wait()
        s2 = nxt.copy()
        for i in np.flatnonzero(dones):
            s2[i] = infos[i]["terminal_observation"]
        expected = net.predict(obs, a, s2, dones)
        np.testing.assert_allclose(r, expected, rtol=1e-6, atol=1e-6)
        assert all("true_reward" in info for info in infos)
        obs = nxt


def test_one_module_format_records_constructor_arguments_and_refuses_the_wrong_kind(tmp_path):
    """Every torch module rewardlab saves goes through save_module / load_module: the class registered by kind, its
    constructor arguments recorded (nested modules included), never written by hand."""
    from rewardlab.agents.ram import RAM, RAMConfig, load_ram
    from rewardlab.core.modules import module_config
    from rewardlab.rewards.shaping import MLPPotential, ShapedRewardNet
    from rewardlab.rewards.tabular import TabularRewardNet

    net = MazeRewardMLP(hidden=(8,))
    assert net.config == MazeRewardMLP.Config(obs_shape=(11, 11), hidden=(8,))
    shaped = ShapedRewardNet(MazeRewardMLP(hidden=(4,)), MLPPotential(121, hidden=5, layers=1), gamma=0.9)
    assert module_config(shaped) == {
        "base": {"kind": "reward.maze_mlp", "config": {"obs_shape": [11, 11], "hidden": [4], "use_action": False}},
        "potential": {"kind": "potential.mlp", "config": {"obs_dim": 121, "hidden": 5, "layers": 1}},
        "gamma": 0.9,
        "learn_shift": True,
    }
    with torch.no_grad():
        shaped.shift.fill_(0.3)
    save_module(tmp_path / "s.pt", shaped)
    back, _ = load_module(tmp_path / "s.pt", expect=ShapedRewardNet)
    x = torch.rand(5, 11, 11)
    torch.testing.assert_close(back(x, None, x.flip(0), None), shaped(x, None, x.flip(0), None), rtol=0, atol=0)
    with pytest.raises(RewardLabError, match="holds a reward.shaped, not a reward.tabular"):
        load_module(tmp_path / "s.pt", expect=TabularRewardNet)
    with pytest.raises(RewardLabError, match="holds a reward.shaped, not a ram"):
        load_ram(tmp_path / "s.pt")
    save_module(tmp_path / "ram.pt", RAM(RAMConfig(num_glimpses=3)))
    with pytest.raises(RewardLabError, match="holds a ram, not a reward.maze_mlp"):
        load_module(tmp_path / "ram.pt", expect=MazeRewardMLP)


def test_files_of_the_older_formats_still_load(tmp_path):
    """Reward nets and RAM saved before the one format ({kind, spec, state_dict, meta}) load as before."""
    import tarfile
    from pathlib import Path

    from rewardlab.agents.ram import RAM, RAMConfig, load_ram
    from rewardlab.core.runs import save_checkpoint
    from rewardlab.rewards.shaping import ShapedRewardNet, TabularPotential
    from rewardlab.rewards.tabular import TabularRewardNet

    table = torch.arange(16.0).reshape(4, 4)
    shaped = ShapedRewardNet(TabularRewardNet.from_table(table.numpy()), TabularPotential(4), gamma=0.5)
    with torch.no_grad():
        shaped.potential.phi.copy_(torch.tensor([0.0, 1.0, -1.0, 2.0]))
    old = {
        "kind": "rewardlab.reward_net",
        "spec": {
            "name": "shaped",
            "base": {"name": "tabular", "n_states": 4, "trainable": False},
            "potential": {"name": "tabular", "n_states": 4},
            "gamma": 0.5,
            "learn_shift": True,
        },
        "state_dict": shaped.state_dict(),
        "meta": {"objective": "sparse_l1"},
    }
    save_checkpoint(tmp_path / "old.pt", old)
    back, meta = load_module(tmp_path / "old.pt")
    s, s2 = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 2, 1, 0])
    assert meta == {"objective": "sparse_l1"}
    torch.testing.assert_close(back(s, None, s2, None), shaped(s, None, s2, None), rtol=0, atol=0)
    ram = RAM(RAMConfig(num_glimpses=4))
    save_checkpoint(
        tmp_path / "ram.pt",
        {"kind": "rewardlab.ram", "spec": {**ram.cfg.__dict__}, "state_dict": ram.state_dict(), "meta": {"epoch": 3}},
    )
    back_ram, meta = load_ram(tmp_path / "ram.pt")
    assert back_ram.cfg == ram.cfg and meta == {"epoch": 3}
    # the reward model of a run directory made before the format (tests/data/legacy_runs.tar.xz)
    with tarfile.open(Path(__file__).parent / "data" / "legacy_runs.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    net, meta = load_module(
        tmp_path / "learned-rewards" / "reward_model" / "model.pt",
        expect=MazeRewardMLP,
        expect_config={"obs_shape": (11, 11), "hidden": (8,)},
    )
    assert meta["env_id"] == "rewardlab/EmptyMaze-10x10-CoinFlipGoal-v0" and net(
        x := torch.zeros(2, 11, 11), None, x, None
    ).shape == (2,)


def test_the_reward_net_protocol_is_imitations():
    """forward / predict_th / predict take (state, action, next_state, done); nets know their spaces; a wrapper
    shares its base's spaces."""
    import gymnasium as gym

    from rewardlab.rewards.nets import RewardNetWrapper
    from rewardlab.rewards.shaping import ShapedRewardNet, TabularPotential
    from rewardlab.rewards.tabular import TabularRewardNet

    net = MazeRewardMLP(hidden=(8,))
    assert net.observation_space == gym.spaces.Box(0, 3, (11, 11), np.uint8)
    assert net.action_space == gym.spaces.Discrete(4)
    t = random_transitions(10, 1)
    r = net.predict(t.obs, None, t.next_obs, t.dones)
    assert isinstance(r, np.ndarray) and r.shape == (10,)
    np.testing.assert_array_equal(r, net.predict_th(t.obs, None, t.next_obs, t.dones).numpy())
    tab = TabularRewardNet(6)
    shaped = ShapedRewardNet(tab, TabularPotential(6), gamma=0.9)
    assert isinstance(shaped, RewardNetWrapper) and shaped.base is tab
    assert shaped.observation_space == tab.observation_space == gym.spaces.Discrete(6)


def test_regression_learns_a_reward_of_the_action_only_with_the_action():
    """R(s, a, s') regression: a reward that depends on the action alone is fitted by the model that sees the action
    and not by R(s, s')."""
    from rewardlab.data.transitions import Transitions
    from rewardlab.learn.configs import RegressionConfig
    from rewardlab.learn.regression import train_regression

    rng = np.random.default_rng(0)
    n = 600
    obs = np.zeros((n, 11, 11), np.uint8)  # one state: what tells the rewards apart is the action
    obs[:, 5, 5] = 2
    acts = rng.integers(0, 4, size=n)
    data = Transitions(obs, acts, obs.copy(), (acts == 2).astype(np.float32), np.zeros(n, bool))
    cfg = RegressionConfig(hidden=[16], lr=1e-2, batch_size=50, epochs=15, loss_reduction="mean")
    mse = {}
    for use_action in (False, True):
        torch.manual_seed(0)
        net = MazeRewardMLP(hidden=(16,), use_action=use_action)
        with tempfile.TemporaryDirectory() as tmp:
            res = train_regression(net, data.take(slice(0, 400)), data.take(slice(400, n)), cfg, Path(tmp), 0, "cpu")
        mse[use_action] = res["test_mse"]
    assert mse[True] < 0.01 < 0.15 < mse[False]  # variance of the reward: 0.1875
