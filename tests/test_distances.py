"""Reward distances (EPIC, DARD): zero between a reward and its potential-shaped, shifted and rescaled copies, one
between R and -R, a pseudometric, the sampled estimate converging to the exact one, the shaped mountain car, and the
`rewardlab compare` command with its bad inputs."""

import json

import numpy as np
import pytest
import torch

from rewardlab.core.modules import save_module
from rewardlab.envs.mountain_car import OBS_HIGH, OBS_LOW
from rewardlab.envs.tabular_maze import GAMMA, MAZES, reward_table
from rewardlab.errors import RewardLabError
from rewardlab.interpret import distances as D
from rewardlab.rewards.mountain_car import MountainCarRewardNet
from rewardlab.rewards.nets import RewardNetWrapper
from rewardlab.rewards.shaping import ShapedRewardNet, TabularPotential
from rewardlab.rewards.tabular import TabularRewardNet

METHODS = ["epic", "dard"]
MC = "rewardlab/ShapedMountainCar-dense-v0"


def distance(method: str, ra: np.ndarray, rb: np.ndarray, transitions: np.ndarray) -> float:
    if method == "epic":
        return D.epic_distance(ra, rb, GAMMA)
    return D.dard_distance(ra, rb, transitions, GAMMA)


def shaped(r: np.ndarray, phi: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """scale * ((r - shift) + gamma phi(s') - phi(s)): the project's shaping (done is always False here)."""
    return scale * ((r - shift) + GAMMA * phi[None, None, :] - phi[:, None, None])


class Negated(RewardNetWrapper):
    """-R of a base net."""

    def forward(self, state, action, next_state, done):
        return -self.base(state, action, next_state, done)


@pytest.mark.parametrize("maze", ["EmptyMaze10", "KeyMaze10"])
@pytest.mark.parametrize("method", METHODS)
def test_shaped_shifted_rescaled_copy_is_at_distance_zero_and_negation_at_one(maze, method):
    spec = MAZES[maze]
    n, t = spec.n_states, D.maze_transitions(spec)
    rng = np.random.default_rng(0)
    bases = [np.repeat(reward_table(spec, "path", "unshaped")[:, None, :], 5, axis=1), rng.normal(size=(n, 5, n))]
    for r in bases:
        for _ in range(3):
            phi = rng.normal(scale=10.0, size=n)
            copy = shaped(r, phi, scale=float(rng.uniform(0.05, 20.0)), shift=float(rng.normal(scale=5.0)))
            assert distance(method, r, copy, t) < 1e-9
        assert distance(method, r, -r, t) == pytest.approx(1.0, abs=1e-12)


def test_dard_cancels_shaping_under_stochastic_dynamics():
    rng = np.random.default_rng(1)
    n = 30
    t = rng.dirichlet(np.full(n, 0.3), size=(n, 4))
    da = rng.dirichlet(np.ones(4))
    r = rng.normal(size=(n, 4, n))
    copy = shaped(r, rng.normal(scale=10.0, size=n), 3.0, -2.0)
    assert np.allclose(D.dard_canonical(copy, t, GAMMA, da), 3.0 * D.dard_canonical(r, t, GAMMA, da), atol=1e-9)
    assert D.dard_distance(r, copy, t, GAMMA, da) < 1e-9
    assert D.dard_distance(r, -r, t, GAMMA, da) == pytest.approx(1.0)


@pytest.mark.parametrize("method", METHODS)
def test_a_net_shaped_the_projects_way_is_at_distance_zero(method):
    spec = MAZES["KeyMaze10"]
    base = TabularRewardNet.from_table(reward_table(spec, "goal", "unshaped"))
    potential = TabularPotential(spec.n_states)
    with torch.no_grad():
        potential.phi.copy_(torch.as_tensor(np.random.default_rng(2).normal(scale=5.0, size=spec.n_states)))
    net = ShapedRewardNet(base, potential, GAMMA)
    with torch.no_grad():
        net.shift.fill_(0.7)
    ra, rb = (D.reward_tensor(x, spec.n_states, 5) for x in (base, net))
    assert not np.allclose(ra, rb)
    assert distance(method, ra, rb, D.maze_transitions(spec)) < 1e-5  # float32 nets


@pytest.mark.parametrize("method", METHODS)
def test_symmetric_and_triangle_inequality_on_random_triples(method):
    spec = MAZES["EmptyMaze10"]
    n, t = spec.n_states, D.maze_transitions(spec)
    rng = np.random.default_rng(3)
    for _ in range(10):
        a = rng.normal(size=(n, 5, n))
        b = a + rng.uniform(0.1, 3.0) * rng.normal(size=a.shape)
        c = b + rng.uniform(0.1, 3.0) * rng.normal(size=a.shape)
        tables = [a, b, c]
        if method == "epic":
            canon, weights = np.stack([D.epic_canonical(x, GAMMA) for x in tables]), None
        else:
            canon, weights = np.stack([D.dard_canonical(x, t, GAMMA) for x in tables]), D.dynamics_coverage(t)
        d = D.distance_matrix(canon, weights)
        assert np.allclose(d, d.T) and np.all(np.diag(d) == 0) and np.all((d >= 0) & (d <= 1))
        assert d[0, 1] == pytest.approx(distance(method, a, b, t), abs=1e-12)
        assert d[1, 0] == pytest.approx(distance(method, b, a, t), abs=1e-12)
        for i, j, k in [(0, 1, 2), (0, 2, 1), (1, 0, 2)]:
            assert d[i, k] <= d[i, j] + d[j, k] + 1e-12


def test_sampled_epic_converges_to_the_exact_distance():
    spec = MAZES["EmptyMaze10"]
    n = spec.n_states
    rng = np.random.default_rng(4)
    nets = [
        TabularRewardNet.from_table(reward_table(spec, "path", "unshaped")),
        TabularRewardNet.from_table(reward_table(spec, "goal", "unshaped") + 0.3 * rng.normal(size=(n, n))),
    ]
    ra, rb = (D.reward_tensor(x, n, 5) for x in nets)
    exact = D.epic_distance(ra, rb, GAMMA)
    errors = []
    for size, m in [(100, 10), (1000, 100), (100_000, 10_000)]:
        err = []
        for seed in range(3):
            r = np.random.default_rng(seed)
            s, a, s2 = r.integers(0, n, size), r.integers(0, 5, size), r.integers(0, n, size)
            canon = D.epic_canonical_sampled(
                nets, s, a, s2, r.integers(0, n, m), r.integers(0, 5, m), GAMMA, batch_size=1 << 16
            )
            err.append(abs(D.distance_matrix(canon)[0, 1] - exact))
        errors.append(float(np.mean(err)))
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[-1] < 0.005, errors
    lo, hi = D.bootstrap_distance_matrix(canon, reps=200)
    assert lo[0, 1] <= exact <= hi[0, 1]


@pytest.mark.parametrize("method", METHODS)
def test_mountain_car_dense_is_unshaped_up_to_shaping_and_negation_is_far(method):
    unshaped = MountainCarRewardNet("unshaped")
    nets = [unshaped, MountainCarRewardNet("dense"), Negated(unshaped)]
    res = D.compare_rewards(nets, MC, method, samples=2048, canonical_samples=256, reps=300)
    d, hi = res["distance"], res["ci_high"]
    assert res["mode"] == "sampled" and "uniform" in res["coverage"]
    assert d[0, 1] < 0.02 and d[0, 1] <= hi[0, 1] + 1e-6
    assert d[0, 2] > 0.98 and d[1, 2] > 0.98
    assert np.all(res["ci_low"] <= d + 1e-9) and np.all(d <= hi + 1e-9)


def test_sampled_dard_cancels_shaping_exactly_per_sample():
    rng = np.random.default_rng(5)
    obs = rng.uniform(OBS_LOW, OBS_HIGH, size=(500, 2)).astype(np.float32)
    acts = rng.integers(0, 3, 500)
    nxt = D.mountain_car_transition(obs, acts)
    nets = [MountainCarRewardNet("unshaped"), MountainCarRewardNet("random", seed=3)]
    canon = D.dard_canonical_sampled(nets, obs, acts, nxt, np.arange(3), D.mountain_car_transition, GAMMA)
    assert np.allclose(canon[0], canon[1], atol=1e-4)  # float32 rewards of magnitude ~100


# ---------------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def reward_files(tmp_path):
    spec = MAZES["EmptyMaze10"]
    paths = {}
    for name, table in {
        "goal": reward_table(spec, "goal", "unshaped"),
        "goal_dense": 2.0 * reward_table(spec, "goal", "dense"),
        "path": reward_table(spec, "path", "random"),
    }.items():
        paths[name] = tmp_path / f"{name}.pt"
        save_module(paths[name], TabularRewardNet.from_table(table))
    paths["car"] = tmp_path / "car.pt"
    save_module(paths["car"], MountainCarRewardNet("dense"))
    paths["flat"] = tmp_path / "flat.pt"
    save_module(paths["flat"], TabularRewardNet(spec.n_states))  # zero-initialised: constant
    return paths


def test_compare_two_rewards_prints_the_distance_and_writes_json(cli, reward_files, tmp_path):
    out = tmp_path / "res" / "cmp.json"
    code, stdout, err = cli(
        "compare", reward_files["goal"], reward_files["goal_dense"], "--env", "rewardlab/EmptyMaze10-v0", "--out", out
    )
    assert code == 0, err
    assert "goal vs goal_dense: 0.0000" in stdout and "EPIC" in stdout
    res = json.loads(out.read_text())
    assert res["mode"] == "exact" and res["method"] == "epic" and res["rewards"] == ["goal", "goal_dense"]
    assert np.asarray(res["distance"]).shape == (2, 2) and res["distance"][0][1] < 1e-6
    assert not out.with_suffix(".png").exists()


def test_compare_three_rewards_gives_a_matrix_and_a_heatmap(cli, reward_files, tmp_path):
    out = tmp_path / "three.json"
    files = [reward_files[k] for k in ("goal", "goal_dense", "path")]
    code, stdout, err = cli("compare", *files, "--env", "rewardlab/EmptyMaze10-v0", "--method", "dard", "--out", out)
    assert code == 0, err
    assert "DARD" in stdout and len([line for line in stdout.splitlines() if line.startswith("goal")]) == 2
    d = np.asarray(json.loads(out.read_text())["distance"])
    assert d.shape == (3, 3) and d[0, 1] < 1e-6 and d[0, 2] > 0.1
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_sampled_mountain_car_prints_an_interval(cli, tmp_path):
    code, stdout, err = cli("compare", "true:unshaped", "true:dense", "--env", MC, "--samples", "512")
    assert code == 0, err
    assert "95% bootstrap interval" in stdout and "uniform" in stdout


def test_compare_dry_run_writes_nothing(cli, reward_files, tmp_path):
    out = tmp_path / "dry.json"
    files = [reward_files[k] for k in ("goal", "goal_dense", "path")]
    code, stdout, err = cli("compare", *files, "--env", "rewardlab/EmptyMaze10-v0", "--out", out, "--dry-run")
    assert code == 0, err
    assert "nothing is written" in stdout and not out.exists() and not out.with_suffix(".png").exists()


@pytest.mark.parametrize(
    "case, expect",
    [
        ("different_spaces", "different spaces"),
        ("unknown_env", "unknown environment"),
        ("wrong_env", "rewardlab/KeyMaze10-v0"),
        ("one_reward", "at least two"),
        ("missing_file", "does not exist"),
        ("constant_reward", "constant up to potential shaping"),
        ("unknown_true", "unknown maze reward"),
    ],
)
def test_compare_bad_inputs_are_one_line_with_exit_code_2(cli, reward_files, tmp_path, case, expect):
    maze, f = "rewardlab/EmptyMaze10-v0", reward_files
    args = {
        "different_spaces": [f["goal"], f["car"], "--env", maze],
        "unknown_env": [f["goal"], f["path"], "--env", "rewardlab/NoSuchMaze-v0"],
        "wrong_env": [f["goal"], f["path"], "--env", "rewardlab/KeyMaze10-v0"],
        "one_reward": [f["goal"], "--env", maze],
        "missing_file": [f["goal"], tmp_path / "nope.pt", "--env", maze],
        "constant_reward": [f["goal"], f["flat"], "--env", maze],
        "unknown_true": [f["goal"], "true:nonsense", "--env", maze],
    }[case]
    code, stdout, err = cli("compare", *args, "--out", tmp_path / "bad.json")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rewardlab: error:") and expect in err, err
    assert not (tmp_path / "bad.json").exists()


class _MazeReward:
    """A maze reward on grids: scale * [agent on a goal in s'] + gamma Phi(s') - Phi(s), Phi = the agent's row."""

    def __init__(self, scale=1.0, shaped=False, gamma=0.97):
        self.scale, self.shaped, self.gamma = scale, shaped, gamma

    def predict(self, s, a, s2, done):
        from rewardlab.envs.maze import AGENT, GOAL

        phi = lambda x: np.argwhere(x == AGENT)[:, 1].astype(float) if self.shaped else 0.0  # noqa: E731
        return self.scale * ((s2 == GOAL).sum((1, 2)) == 0) + self.gamma * phi(s2) - phi(s)


def test_maze_epic_is_exact_for_the_true_reward_shaped_and_negated():
    from rewardlab.data.rollouts import collect_transitions
    from rewardlab.envs.maze import BatchedMaze
    from rewardlab.interpret.maze import maze_epic

    data = collect_transitions(BatchedMaze(4, "CoinFlipGoal", seeds=0), lambda o: np.zeros(len(o), int), 200)
    nets = [_MazeReward(), _MazeReward(3.0, shaped=True), _MazeReward(-1.0)]
    d = maze_epic(nets, "CoinFlipGoal", 0.97, data)
    assert d["n_states"] == 162 and d["expert_transitions"] == 200 and d["expert_distinct_transitions"] < 200
    for cov in ("expert", "uniform"):
        assert d[cov][0, 1] < 1e-12 and d[cov][0, 2] < 1e-12 and abs(d[cov][0, 3] - 1.0) < 1e-12
    data.acts = None  # an older dataset without actions: the same numbers for rewards that ignore the action
    d2 = maze_epic(nets, "CoinFlipGoal", 0.97, data)
    assert np.allclose(d2["expert"], d["expert"], atol=1e-12)
    no_goal = data.take(np.flatnonzero(data.rewards == 0))  # the true reward is constant on these: undefined
    d3 = maze_epic(nets, "CoinFlipGoal", 0.97, no_goal)
    assert d3["expert"] is None and np.allclose(d3["uniform"], d["uniform"])
    assert "expert" not in maze_epic(nets, "TwoGoals", 0.97)
    with pytest.raises(RewardLabError, match="too many for exact EPIC"):
        maze_epic(nets, "RandomGoal", 0.97, data)
