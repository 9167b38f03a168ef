"""`rewardlab preprocess`: any reward file (or the env's own reward) shaped to be sparse or smooth, written as a
reward file; every shaping of a reward gives the same output (the LP's canonical tie-break) end to end."""

import numpy as np
import pytest

from rewardlab.envs.tabular_maze import MAZES
from rewardlab.interpret.distances import true_reward
from rewardlab.interpret.preprocess import coverage_transitions, preprocess_reward
from rewardlab.rewards.io import load_reward
from rewardlab.rewards.shaping import ShapedRewardNet

MAZE, MC = "rewardlab/KeyMaze6-v0", "rewardlab/ShapedMountainCar-unshaped-v0"


@pytest.mark.parametrize("objective", ["sparse_l1", "smooth_l1"])
def test_every_shaping_of_a_reward_preprocesses_to_the_same_file(cli, tmp_path, objective):
    outs = []
    for name in ("true:path", "true:path-dense", "true:path-random"):
        out = tmp_path / f"{name.split(':')[1]}.pt"
        code, stdout, err = cli("preprocess", name, "--env", MAZE, "--objective", objective, "--out", out)
        assert code == 0, err
        before, after = (float(x) for x in stdout.split(": ", 1)[1].split(";")[0].split(" -> "))
        assert after < 0.5 * before or name == "true:path"  # the unshaped path reward is nearly optimal
        assert "EPIC distance from the input" in stdout
        outs.append(load_reward(out))
    assert all(isinstance(n, ShapedRewardNet) for n in outs)
    spec = MAZES["KeyMaze6"]
    s, a, s2 = spec.all_transitions()
    r = [n.predict(s, a, s2, np.zeros(len(s), bool)) for n in outs]
    if objective == "smooth_l1":
        r = [x - x.mean() for x in r]
    assert max(np.abs(x - r[0]).max() for x in r) < 1e-5  # float32 nets; the LP outputs agree to 1e-13


def test_mountain_car_reward_preprocessed_on_sampled_trajectories(cli, tmp_path):
    data = coverage_transitions(MC, 320, seed=0, horizon=16)
    assert len(data["obs"]) == 320 and len(data["pairs"]) == 20 * 15  # consecutive steps of 20 trajectories
    i, j = data["pairs"][:, 0], data["pairs"][:, 1]
    assert np.array_equal(data["next_obs"][i], data["obs"][j])
    net = true_reward(MC, "dense")
    shaped, info = preprocess_reward(net, MC, "sparse_log", samples=512)
    assert info["objective_after"] < info["objective_before"]
    out = tmp_path / "mc.pt"
    code, stdout, err = cli("preprocess", "true:dense", "--env", MC, "--samples", 512, "--out", out)
    assert code == 0, err
    epic = float(stdout.split("EPIC distance from the input ")[1].split()[0])
    assert epic < 1e-4
    assert load_reward(out).predict(data["obs"], data["acts"], data["next_obs"], data["dones"]).shape == (320,)


def test_preprocess_bad_inputs(cli, tmp_path):
    good = tmp_path / "good.pt"
    assert cli("preprocess", "true:goal", "--env", MAZE, "--out", good)[0] == 0
    cases = [
        (("true:goal", "--env", "nope", "--out", tmp_path / "x.pt"), "unknown environment"),
        ((good, "--env", MC, "--out", tmp_path / "x.pt"), "give that environment's --env"),
        ((good, "--env", MAZE, "--out", good), "is the input file"),
        ((good, "--env", MAZE, "--out", tmp_path), "is a directory"),
        ((good, "--env", MAZE, "--out", tmp_path / "x.pt", "--samples", 3), "--samples must be at least 16"),
        ((tmp_path / "missing.pt", "--env", MAZE, "--out", tmp_path / "x.pt"), "missing.pt"),
    ]
    for args, msg in cases:
        code, _, err = cli("preprocess", *args)
        assert code == 2, args
        assert msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.pt").exists()
    code, stdout, _ = cli("preprocess", good, "--env", MAZE, "--out", tmp_path / "y.pt", "--dry-run")
    assert code == 0 and "dry run" in stdout and not (tmp_path / "y.pt").exists()
