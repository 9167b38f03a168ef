import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from rewardlab.config import resolve
from rewardlab.core.modules import load_module, save_module
from rewardlab.envs.tabular_maze import GAMMA, MAZES, SHAPINGS, TabularMazeEnv, reward_potential, reward_table
from rewardlab.errors import RewardLabError
from rewardlab.interpret.metrics import invariance_gap, q_values, same_optimal_policy, smoothness, sparsity
from rewardlab.interpret.preprocess import (
    PreprocessConfig,
    objective_value,
    preprocess_adam,
    preprocess_tabular_adam,
    shaped_net_from_lp,
    solve_lp,
    tabular_pairs,
    trajectory_pairs,
)
from rewardlab.learn.preferences import PreferenceConfig, learn_tabular_reward
from rewardlab.rewards.nets import RewardNet
from rewardlab.rewards.shaping import LinearPotential, ShapedRewardNet, TabularPotential
from rewardlab.rewards.tabular import TabularRewardNet
from rewardlab.studies.preprocessing import NAME
from rewardlab.studies.preprocessing import PreprocessingConfig as CONFIG


def maze(name="EmptyMaze10"):
    spec = MAZES[name]
    s, a, s2 = spec.all_transitions()
    return spec, s, a, s2, np.zeros(len(s), dtype=bool), tabular_pairs(s, s2)


class SumReward(RewardNet):
    """r(s, a, s', done) = a * sum(s') + b * sum(s): a fixed reward on continuous states."""

    def __init__(self, a: float = 0.0, b: float = 1.0):
        super().__init__(None, None)
        self.a, self.b = a, b

    def forward(self, state, action, next_state, done):
        return self.a * next_state.sum(1) + self.b * state.sum(1)


def test_shaping_identity_exact_with_and_without_done():
    torch.manual_seed(0)
    base = TabularRewardNet.from_table(np.arange(25, dtype=float).reshape(5, 5) / 7)
    shaped = ShapedRewardNet(base, TabularPotential(5), gamma=0.9)
    with torch.no_grad():
        shaped.potential.phi.copy_(torch.tensor([0.5, -1.0, 2.0, 0.25, 3.0]))
        shaped.shift.fill_(0.3)
    s, s2 = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([4, 3, 2, 1, 0])
    phi = shaped.potential.phi.detach()
    for done in (torch.zeros(5), torch.ones(5), torch.tensor([0.0, 1, 0, 1, 0])):
        got = shaped(s, None, s2, done)
        want = base(s, None, s2, None) - 0.3 + 0.9 * phi[s2] * (1 - done) - phi[s]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # linear potentials on continuous observations, as in the original test (Phi = w.s + b)
    lin = ShapedRewardNet(SumReward(), LinearPotential(3), gamma=0.9)
    x, x2 = torch.randn(4, 3), torch.randn(4, 3)
    for done in (torch.zeros(4), torch.ones(4)):
        torch.testing.assert_close(
            lin(x, None, x2, done), x.sum(1) + 0.9 * lin.potential(x2) * (1 - done) - lin.potential(x)
        )


@pytest.mark.parametrize("name", list(MAZES))
@pytest.mark.parametrize("kind", ["goal", "path"])
def test_reward_tables_are_exact_shaping(name, kind):
    spec = MAZES[name]
    base = reward_table(spec, kind, "unshaped")
    for shaping in SHAPINGS:
        phi = reward_potential(spec, shaping)
        np.testing.assert_allclose(
            reward_table(spec, kind, shaping), base + GAMMA * phi[None, :] - phi[:, None], atol=1e-12
        )
    # the original's antidense table is a state offset, not shaping: it changes Q differently per action
    legacy = reward_table(spec, kind, "antidense", legacy_shaping=True)
    phi = reward_potential(spec, "antidense")
    assert not np.allclose(legacy, base + GAMMA * phi[None, :] - phi[:, None])


def test_goal_rule_and_env_reward():
    spec = MAZES["EmptyMaze4"]
    R = reward_table(spec, "goal", "unshaped")
    assert (R[spec.goal_cell] == 1).all() and R.sum() == spec.n_states
    env = TabularMazeEnv("EmptyMaze4", "goal", "unshaped")
    env.reset(seed=0, options={"state": spec.goal_cell})
    assert env.step(0)[1] == 1.0  # staying at the goal pays again
    key = MAZES["KeyMaze6"]
    Rk = reward_table(key, "goal", "unshaped")
    assert Rk[key.goal_cell].sum() == 0 and (Rk[key.goal_cell + key.n_cells] == 1).all()
    assert key.next_state[key.key_cell + 1, 4] == key.key_cell + key.n_cells  # picking up the key


@pytest.mark.parametrize("objective", ["sparse_l1", "smooth_l1"])
def test_lp_is_optimal_and_matches_adam(objective):
    """The four shapings of one base reward define the same problem from four Adam starting points; the LP
    must be at least as good as each (Adam's 10,000 steps at lr 1e-3 reach it to within 2e-3 from the
    unshaped start)."""
    spec, s, _, s2, d, pairs = maze("EmptyMaze10")
    tables = np.stack([reward_table(spec, "goal", sh) for sh in SHAPINGS])
    adam = preprocess_tabular_adam(tables, s, s2, d, pairs, objective, GAMMA, PreprocessConfig())
    lps = [solve_lp(tables[i][s, s2], s, s2, d, spec.n_states, GAMMA, objective, pairs) for i in range(4)]
    for lp, a in zip(lps, adam["objective"]):
        assert lp["objective"] <= a + 1e-9
    assert abs(lps[0]["objective"] - adam["objective"][0]) < 2e-3
    # the LP's reported optimum is the objective of the r' it returns
    r = torch.as_tensor(lps[0]["shaped"])
    assert objective_value(r, objective, torch.as_tensor(pairs)).item() == pytest.approx(lps[0]["objective"], abs=1e-9)


def test_lp_undoes_every_shaping_and_preserves_policy():
    spec, s, _, s2, d, pairs = maze("EmptyMaze10")
    outs = []
    for sh in SHAPINGS:
        R = reward_table(spec, "goal", sh)
        res = solve_lp(R[s, s2], s, s2, d, spec.n_states, GAMMA, "sparse_l1")
        outs.append(res["shaped"])
        net = shaped_net_from_lp(TabularRewardNet.from_table(R), spec.n_states, GAMMA, res["phi"], res["shift"])
        table = (
            net(
                torch.arange(spec.n_states).repeat_interleave(spec.n_states),
                None,
                torch.arange(spec.n_states).repeat(spec.n_states),
                None,
            )
            .detach()
            .numpy()
        )
        assert same_optimal_policy(spec.next_state, R, table.reshape(spec.n_states, spec.n_states), GAMMA)
    assert invariance_gap(outs) < 1e-6
    assert invariance_gap([reward_table(spec, "goal", sh)[s, s2] for sh in SHAPINGS]) > 1.0
    assert sparsity(outs[0], 1.0)["sparsity"] > 0.95 and smoothness(outs[0], pairs) < 0.05


def test_value_iteration_detects_a_real_change():
    spec = MAZES["EmptyMaze4"]
    R = reward_table(spec, "goal", "unshaped")
    moved = np.zeros_like(R)
    moved[0, :] = 1.0  # reward in the top-left corner instead
    assert not same_optimal_policy(spec.next_state, R, moved, GAMMA)
    q = q_values(spec.next_state, R, GAMMA)
    assert q[spec.goal_cell, 0] == pytest.approx(1 / (1 - GAMMA), rel=1e-6)  # stay at the goal forever


def test_preference_learning_recovers_reward():
    """On EmptyMaze4 with dense shaping most of the reward's variation is the shaping, which 3-step fragments
    do identify; the learned table must rank the true rewards of valid transitions clearly positively
    (a reward learned from random labels scores about 0)."""
    spec, s, _, s2, _, _ = maze("EmptyMaze4")
    R = reward_table(spec, "goal", "dense")
    net = learn_tabular_reward(spec.next_state, R, PreferenceConfig(comparisons=1000, fragment_length=3), seed=0)
    valid = spec.valid_action.reshape(-1)
    learned = net.table.detach().numpy()[s, s2][valid]
    rho = spearmanr(learned, R[s, s2][valid])[0]
    assert rho > 0.6


def test_continuous_preprocessing_learns_and_pairs_follow_trajectories():
    episode = np.array([0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(trajectory_pairs(episode), [[0, 1], [1, 2], [3, 4]])
    torch.manual_seed(0)
    # a base reward that is pure shaping of Phi(x) = x0 on 1-d states: sparse preprocessing should remove it
    base = SumReward(a=0.9, b=-1.0)
    x = np.random.default_rng(0).normal(size=(2000, 1)).astype(np.float32)
    x2 = (x + 0.1).astype(np.float32)
    d = np.zeros(2000, dtype=bool)
    before = np.abs(0.9 * x2[:, 0] - x[:, 0]).mean()
    net = preprocess_adam(
        base, x, x2, d, None, "sparse_l1", LinearPotential(1), 0.9, PreprocessConfig(epochs=30, batch_size=200, lr=1e-2)
    )
    after = net(torch.as_tensor(x), None, torch.as_tensor(x2), torch.as_tensor(d)).abs().mean().item()
    assert after < 0.2 * before


def test_saved_preprocessed_model_round_trip(tmp_path):
    spec, s, _, s2, d, _ = maze("EmptyMaze4")
    R = reward_table(spec, "path", "random")
    res = solve_lp(R[s, s2], s, s2, d, spec.n_states, GAMMA, "sparse_l1")
    net = shaped_net_from_lp(TabularRewardNet.from_table(R), spec.n_states, GAMMA, res["phi"], res["shift"])
    save_module(tmp_path / "m.pt", net, {"objective": "sparse_l1"})
    back, meta = load_module(tmp_path / "m.pt")
    st, st2 = torch.as_tensor(s), torch.as_tensor(s2)
    torch.testing.assert_close(back(st, None, st2, None), net(st, None, st2, None), rtol=0, atol=0)
    assert meta["objective"] == "sparse_l1"


def test_bad_inputs():
    with pytest.raises(RewardLabError, match="unknown objective 'sparse_l2'"):
        resolve(CONFIG, NAME, "fast", ["preprocess.objectives=[sparse_l2]"])
    with pytest.raises(RewardLabError, match="unknown tabular maze 'EmptyMaze7'"):
        resolve(CONFIG, NAME, "fast", ["tabular.mazes=[EmptyMaze7]"])
    with pytest.raises(RewardLabError, match="unknown shaping"):
        resolve(CONFIG, NAME, "fast", ["tabular.shapings=[steep]"])
    small = TabularRewardNet.from_table(np.zeros((16, 16)))
    spec, s, _, s2, _, _ = maze("EmptyMaze10")
    with pytest.raises(RewardLabError, match="out of range for a 16-state reward table"):
        small(torch.as_tensor(s), None, torch.as_tensor(s2), None)
    with pytest.raises(RewardLabError, match="does not fit an MDP with 100 states"):
        learn_tabular_reward(spec.next_state, np.zeros((16, 16)), PreferenceConfig(comparisons=10, epochs=1))
    with pytest.raises(RewardLabError, match="only sparse_l1 and smooth_l1"):
        solve_lp(np.zeros(3), np.zeros(3, int), np.zeros(3, int), np.zeros(3, bool), 1, GAMMA, "sparse_log")


def _shaping_pairs(name: str, n: int, seed: int):
    """n random rewards on a maze's transitions with a random potential-shaped (and shifted) copy of each."""
    spec, s, _, s2, d, pairs = maze(name)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        R = rng.normal(size=(spec.n_states, spec.n_states))
        phi = rng.normal(scale=3.0, size=spec.n_states)
        r = R[s, s2]
        yield spec, s, s2, d, pairs, r, r + GAMMA * phi[s2] - phi[s] - rng.normal()


@pytest.mark.parametrize("objective", ["sparse_l1", "smooth_l1"])
@pytest.mark.parametrize("name,n", [("EmptyMaze4", 100), ("KeyMaze6", 100), ("EmptyMaze10", 100), ("KeyMaze10", 20)])
def test_lp_tie_break_makes_every_shaping_preprocess_alike(objective, name, n):
    """Random rewards and random shaped copies preprocess to the same r' (1e-8), at the LP's optimum: the L1
    objectives have many optima and the tie-break picks one that depends on the shaping class alone. (100 per maze,
    20 on KeyMaze10 to keep the suite short; `python -m benchmarks compare` runs 100 on every maze.)"""
    for spec, s, s2, d, pairs, r, r2 in _shaping_pairs(name, n, seed=1):
        a, b = (solve_lp(x, s, s2, d, spec.n_states, GAMMA, objective, pairs) for x in (r, r2))
        assert np.abs(a["shaped"] - b["shaped"]).max() < 1e-8
        assert a["objective"] == pytest.approx(b["objective"], abs=1e-9)
        # the reported optimum is the objective of the returned r', and the untie-broken solve finds the same optimum
        pr = torch.as_tensor(pairs)
        assert objective_value(torch.as_tensor(a["shaped"]), objective, pr).item() == pytest.approx(a["objective"])
        plain = solve_lp(r, s, s2, d, spec.n_states, GAMMA, objective, pairs, tie_break="none")
        assert plain["objective"] == pytest.approx(a["objective"], abs=1e-9)
        # r' is a shaping of r: the LP's own potential and shift reproduce it
        phi, c = a["phi"], a["shift"]
        assert np.abs(r - c + GAMMA * phi[s2] - phi[s] - a["shaped"]).max() < 1e-8


def test_lp_without_tie_break_differs_on_smooth():
    """The reason for the tie-break: without it, smooth_l1 returns different optimal r' for shaped copies."""
    gaps = []
    for spec, s, s2, d, pairs, r, r2 in _shaping_pairs("EmptyMaze10", 3, seed=2):
        a, b = (solve_lp(x, s, s2, d, spec.n_states, GAMMA, "smooth_l1", pairs, tie_break="none") for x in (r, r2))
        gaps.append(np.abs((a["shaped"] - a["shaped"].mean()) - (b["shaped"] - b["shaped"].mean())).max())
    assert max(gaps) > 1e-3
    with pytest.raises(RewardLabError, match="unknown tie_break"):
        solve_lp(r, s, s2, d, spec.n_states, GAMMA, "sparse_l1", tie_break="lexicographic")
