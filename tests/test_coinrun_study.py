"""The coinrun study end to end at toy size, imitation's CnnRewardNet, a reward model that learns the coin from real
frames, and bad inputs."""

import json
import shutil

import numpy as np
import pytest
import torch

from rewardlab.studies import STUDIES

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _procgen(request):
    if request.node.name != "test_missing_qt_runtime_is_one_line_before_anything_is_written":
        from conftest import require_procgen

        require_procgen()


def test_every_step_ran_and_wrote_what_it_promises(coinrun_run):
    s = json.loads((coinrun_run / "summary.json").read_text())
    assert set(s["success_rate"]) == {"expert_train", "expert_unseen", "random_train", "random_unseen"}
    assert all(0 <= v <= 1 for v in s["success_rate"].values())
    assert s["reward_model"]["test_mse"] >= 0
    assert {"sparse_l1", "smooth_l1", "learned", "true"} <= set(s["preprocessing"])
    figs = {p.name for p in (coinrun_run / "figures").iterdir()}
    assert {
        "expert.mp4",
        "featvis_reward.png",
        "featvis_channels.png",
        "examples_reward_top.png",
        "examples_channels.png",
        "layer_nmf.png",
        "saliency.png",
        "preprocess_curves.png",
    } <= figs
    report = (coinrun_run / "report.md").read_text()
    assert "| expert |" in report and "layer_nmf.png" in report
    assert not list(coinrun_run.rglob("*.zip")) and not list(coinrun_run.rglob("*.pkl"))  # no pickles written


def test_rollouts_are_whole_trajectories_with_levels_and_their_metadata(coinrun_run):
    from rewardlab.data.transitions import read_extras, read_meta, read_transitions

    path = coinrun_run / "rollouts" / "rollouts.h5"
    meta = read_meta(path)
    assert meta["env_id"] == "rewardlab/CoinRun-v0" and meta["num_levels"] == 200
    assert meta["unseen_start_level"] == 200 and meta["policy"] == "expert/model.pt"
    for split in ("train", "test", "unseen"):
        t = read_transitions(path, split)
        ex = read_extras(path, split, ["episode", "level_seed"])
        assert t.obs.dtype == np.uint8 and t.obs.shape[1:] == (3, 64, 64)
        assert set(np.unique(t.rewards)) <= {0.0, 10.0}
        same = ex["episode"][:-1] == ex["episode"][1:]
        # within an episode s' is the next step's s, and the level does not change
        np.testing.assert_array_equal(t.next_obs[:-1][same], t.obs[1:][same])
        np.testing.assert_array_equal(ex["level_seed"][:-1][same], ex["level_seed"][1:][same])
        levels = ex["level_seed"]
        assert (levels < 200).all() if split != "unseen" else (levels >= 200).all()
    train_eps = set(read_extras(path, "train", ["episode"])["episode"])
    assert not train_eps & set(read_extras(path, "test", ["episode"])["episode"])  # split by episode


def test_saved_reward_model_loads_to_the_same_outputs(coinrun_run):
    from rewardlab.core.modules import load_module
    from rewardlab.data.transitions import read_transitions
    from rewardlab.rewards.nets import CnnRewardNet

    net, _ = load_module(coinrun_run / "reward_model" / "model.pt", expect=CnnRewardNet)
    t = read_transitions(coinrun_run / "rollouts" / "rollouts.h5", "test")
    a = net.predict(None, None, t.next_obs[:16], t.dones[:16])
    b = net.cnn(torch.as_tensor(t.next_obs[:16]).float() / 255).detach().numpy()
    np.testing.assert_array_equal(a, b)


def test_cnn_reward_net_is_imitations():
    """imitation's layer names and sizes; the action's output is the reward (as imitation's one-hot product); done
    picks the second half of the outputs."""
    from rewardlab.rewards.nets import CnnRewardNet

    net = CnnRewardNet((3, 64, 64), 15, use_state=True, use_action=True, use_next_state=True, use_done=True)
    keys = [k for k in net.state_dict()]
    assert keys == [f"cnn.{n}.{p}" for n in ("conv0", "conv1", "dense_final") for p in ("weight", "bias")]
    assert net.cnn.conv0.in_channels == 6 and net.cnn.dense_final.out_features == 30
    assert [m.padding for m in (net.cnn.conv0, net.cnn.conv1)] == ["same", "same"]
    g = torch.Generator().manual_seed(0)
    s, s2 = (torch.randint(0, 256, (5, 3, 64, 64), generator=g, dtype=torch.uint8) for _ in range(2))
    a, d = torch.tensor([0, 3, 14, 7, 7]), torch.tensor([0, 0, 1, 1, 0])
    out = net.cnn(torch.cat([s, s2], 1).float() / 255)
    one_hot = torch.nn.functional.one_hot(a, 15).float()
    expect = (out * torch.cat([one_hot * (1 - d[:, None]), one_hot * d[:, None]], 1)).sum(1)
    torch.testing.assert_close(net(s, a, s2, d), expect, rtol=0, atol=1e-6)
    r = CnnRewardNet(hid_channels=(8,), use_action=False, use_next_state=True, use_state=False)
    assert r(None, None, s2, None).shape == (5,)
    with pytest.raises(Exception, match="next_state"):
        r(s, None, None, None)


def test_saved_then_loaded_cnn_reward_net_is_the_same(tmp_path):
    from rewardlab.core.modules import load_module, save_module
    from rewardlab.rewards.nets import CnnRewardNet

    net = CnnRewardNet(use_state=True, use_action=True, hid_channels=(4, 8))
    save_module(tmp_path / "m.pt", net)
    back, _ = load_module(tmp_path / "m.pt", expect=CnnRewardNet)
    s = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    a = torch.tensor([1, 2, 3])
    torch.testing.assert_close(back(s, a, None, None), net(s, a, None, None), rtol=0, atol=0)


def test_reward_model_learns_the_coin_from_real_frames():
    """imitation's CnnRewardNet regressed on real CoinRun transitions tells the coin's transitions from the others on
    held-out ones (AUROC above 0.9; predicting a constant gives 0.5). The player runs right and jumps at random (it
    reaches the coin in about 60% of episodes of 60 steps; uniform random play: 31% of 650 steps)."""
    from rewardlab.data.rollouts import collect_trajectories
    from rewardlab.data.transitions import Transitions
    from rewardlab.envs.coinrun import CoinRunSpec, make_coinrun
    from rewardlab.rewards.nets import CnnRewardNet
    from rewardlab.studies.coinrun import coin_scores

    env = make_coinrun(CoinRunSpec("easy", 0), 64, seed=3)
    rng = np.random.default_rng(0)
    runner = lambda o: rng.choice([7, 8, 5, 1], p=[0.45, 0.45, 0.05, 0.05], size=len(o))  # right, right+up, up, left
    t, _ = collect_trajectories(env, runner, 64 * 250)
    env.close()
    coin = np.flatnonzero(t.rewards > 0)
    other = np.flatnonzero(t.rewards == 0)[:: max(1, (t.rewards == 0).sum() // 1500)][:1500]
    assert len(coin) >= 100
    idx = np.concatenate([coin, other])
    data = t.take(rng.permutation(idx))
    n = len(data) * 3 // 4
    train, test = data.take(slice(0, n)), data.take(slice(n, None))
    torch.manual_seed(0)
    net = CnnRewardNet(use_state=False, use_action=False, use_next_state=True, hid_channels=(16, 16))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    x, y = torch.as_tensor(train.next_obs), torch.as_tensor(train.rewards)
    for _ in range(6):
        for b in torch.randperm(len(x)).split(64):
            loss = torch.nn.functional.mse_loss(net(None, None, x[b], None), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    scores = coin_scores(net, Transitions.concat([test]), "cpu")
    assert scores["auroc"] > 0.9, scores  # measured: 0.94
    assert scores["mse"] < test.rewards.var(), scores  # better than predicting the mean reward (measured: 7.5 < 8.7)


def test_rerun_reuses_every_step_and_bad_inputs_are_one_line(coinrun_run, fast_run, cli, tmp_path):
    from conftest import COINRUN_TINY

    run = tmp_path / "run"
    shutil.copytree(coinrun_run, run)
    stamp = (run / "expert" / "model.pt").stat().st_mtime_ns
    assert cli("coinrun", "run", "--out", run)[0] == 0
    assert (run / "expert" / "model.pt").stat().st_mtime_ns == stamp
    # a layer the reward model does not have: the line lists its layers
    code, _, err = cli("coinrun", "interpret", "--redo", "--out", run, "interpret.layer=cnn.conv9")
    assert code == 2 and "cnn.conv9" in err and "cnn.act1" in err and len(err.strip().splitlines()) == 1, err
    # rollouts of another env where CoinRun's belong (the maze's transition dataset)
    shutil.copy(fast_run / "dataset" / "transitions.h5", run / "rollouts" / "rollouts.h5")
    code, _, err = cli("coinrun", "reward-model", "--redo", "--out", run)
    assert code == 2 and "rewardlab/CoinRun-v0" in err and len(err.strip().splitlines()) == 1, err
    # a reward model of another architecture (the maze's MLP where the CNN belongs)
    shutil.copytree(coinrun_run / "rollouts", run / "rollouts", dirs_exist_ok=True)
    shutil.copy(fast_run / "reward_model" / "model.pt", run / "reward_model" / "model.pt")
    code, _, err = cli("coinrun", "preprocess", "--redo", "--out", run)
    assert code == 2 and "reward.maze_mlp" in err and len(err.strip().splitlines()) == 1, err
    # an expert of another architecture (a maze PPO)
    shutil.copy(fast_run / "expert" / "model.pt", run / "expert" / "model.pt")
    code, _, err = cli("coinrun", "rollouts", "--redo", "--out", run)
    assert code == 2 and "another environment" in err and len(err.strip().splitlines()) == 1, err
    assert cli("coinrun", "print-config", "--preset", "fast", *COINRUN_TINY)[0] == 0


def test_missing_qt_runtime_is_one_line_before_anything_is_written(cli, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "envpool.procgen", None)
    code, _, err = cli("coinrun", "run", "--preset", "fast", "--out", tmp_path / "new")
    assert code == 2 and "apt-get install -y libqt5gui5" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "new").exists()


def test_paper_and_cpu_presets_have_the_published_settings():
    paper = STUDIES["coinrun"].resolve("paper")
    ppo = paper.expert.ppo
    assert (ppo.n_envs, ppo.n_steps, ppo.n_epochs, ppo.batch_size) == (64, 256, 3, 2048)  # 8 minibatches
    assert (ppo.learning_rate, ppo.gamma, ppo.gae_lambda) == (5e-4, 0.999, 0.95)
    assert (ppo.clip_range, ppo.ent_coef) == (0.2, 0.01)
    assert ppo.policy == "ImpalaCnnPolicy" and ppo.total_timesteps == 200_000_000
    assert (paper.distribution, paper.num_levels) == ("hard", 100_000)
    rm = paper.reward_model
    assert (rm.hid_channels, rm.batch_size, rm.lr, rm.epochs) == ([32, 64], 128, 1e-3, 100)
    cpu = STUDIES["coinrun"].resolve("cpu")
    assert (cpu.distribution, cpu.num_levels, cpu.expert.ppo.total_timesteps) == ("easy", 200, 1_000_000)
    assert cpu.rollouts.n_train + cpu.rollouts.n_test == 50_000 and cpu.reward_model.epochs == 10


def test_coin_share_draws_that_share_of_rewarding_samples_and_zero_is_a_permutation():
    from rewardlab.learn.regression import _epoch_order

    r = np.zeros(1000, dtype=np.float32)
    r[:10] = 10.0
    order = _epoch_order(r, 0.25, torch.Generator().manual_seed(0)).numpy()
    assert len(order) == 1000 and (r[order] != 0).mean() == 0.25
    assert len(set(order[r[order] == 0])) == 750  # the others without replacement
    plain = _epoch_order(r, 0.0, torch.Generator().manual_seed(0)).numpy()
    assert sorted(plain.tolist()) == list(range(1000))  # the original's plain shuffling
