"""IRRL skill discovery: four-room dynamics, reward formulas, DISDAIN bonus, Q(lambda) targets, determinism."""

import math

import gymnasium as gym
import numpy as np
import pytest

import rewardlab.envs  # noqa: F401  (registers the ids)
from rewardlab.agents.skills import _REWARD_CODE, SkillConfig, SkillLearner, _discriminate, _skill_reward, _td_grad
from rewardlab.config import resolve
from rewardlab.envs.four_rooms import DOWN, LEFT, NOOP, RIGHT, UP, four_rooms
from rewardlab.errors import RewardLabError


def test_large_grid_has_104_cells_all_within_20_steps():
    w = four_rooms("large")
    assert w.n_states == 104 and w.walls.shape == (13, 13)
    d = w.distances(0)
    assert d.min() == 0 and d.max() == 20 and (d >= 0).all()
    assert tuple(w.cells[0]) == (1, 1)


def test_small_grid_has_24_cells():
    w = four_rooms("small")
    assert w.n_states == 24 and w.walls.shape == (8, 7) and w.episode_length == 8


def test_moves_into_walls_do_nothing_and_noop_stays():
    w = four_rooms("large")
    assert w.next_state[0, UP] == 0 and w.next_state[0, LEFT] == 0 and w.next_state[0, NOOP] == 0
    right, down = w.next_state[0, RIGHT], w.next_state[0, DOWN]
    assert tuple(w.cells[right]) == (1, 2) and tuple(w.cells[down]) == (2, 1)
    # every move lands on a neighbouring free cell or stays
    step = np.abs(w.cells[w.next_state] - w.cells[:, None, :]).sum(-1)
    assert set(np.unique(step)) == {0, 1}
    # the doorway between the top rooms: (3, 6) connects (3, 5) and (3, 7)
    idx = {tuple(c): i for i, c in enumerate(w.cells)}
    assert w.next_state[idx[(3, 5)], RIGHT] == idx[(3, 6)] and w.next_state[idx[(3, 6)], RIGHT] == idx[(3, 7)]
    assert w.next_state[idx[(2, 5)], RIGHT] == idx[(2, 5)]  # wall at (2, 6)


def test_gymnasium_env_truncates_after_the_episode_length():
    env = gym.make("rewardlab/FourRooms-small-v0")
    s, _ = env.reset(seed=0)
    assert s == 0
    for t in range(8):
        s, r, term, trunc, _ = env.step(RIGHT)
        assert r == 0.0 and not term and trunc == (t == 7)


def _table(E=2, S=3, K=4):
    D = np.zeros((E, S, K))
    D[0, 1] = [2.0, 0.0, 0.0, 0.0]
    D[1, 1] = [0.0, 2.0, 0.0, 0.0]
    D[:, 2] = [1.0, 1.0, 3.0, 0.0]
    return D


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("state,z", [(1, 0), (1, 2), (2, 2), (0, 3)])
def test_discriminator_rewards_and_disdain_bonus_on_hand_made_tables(state, z):
    D = _table()
    probs, logp = np.empty((2, 4)), np.empty((2, 4))
    log_qz, q_z, correct, bonus = _discriminate(D, state, z, probs, logp)
    members = _softmax(D[:, state]) if state > 0 else np.full((2, 4), 0.25)  # the start state's logits are 0
    avg = members.mean(0)
    entropy = lambda p: -(p * np.log(p)).sum(-1)  # noqa: E731
    assert q_z == pytest.approx(avg[z]) and log_qz == pytest.approx(math.log(avg[z]))
    assert correct == float(np.argmax(avg) == z)
    assert bonus == pytest.approx(entropy(avg) - entropy(members).mean())
    K = 4
    C = _REWARD_CODE
    assert _skill_reward(C["log_clipping"], log_qz, q_z, correct, K) == pytest.approx(max(math.log(avg[z] * K), 0))
    assert _skill_reward(C["log_noclipping"], log_qz, q_z, correct, K) == pytest.approx(math.log(avg[z] * K))
    assert _skill_reward(C["linear_clipping"], log_qz, q_z, correct, K) == pytest.approx(max(avg[z] - 1 / K, 0))
    assert _skill_reward(C["linear_noclipping"], log_qz, q_z, correct, K) == pytest.approx(avg[z] - 1 / K)
    assert _skill_reward(C["accuracy"], log_qz, q_z, correct, K) == correct


def test_disdain_bonus_is_zero_when_members_agree_and_large_when_they_disagree():
    probs, logp = np.empty((2, 2)), np.empty((2, 2))
    agree = np.zeros((2, 2, 2))
    agree[:, 1] = [5.0, 0.0]
    assert _discriminate(agree, 1, 0, probs, logp)[3] == pytest.approx(0.0, abs=1e-12)
    disagree = np.zeros((2, 2, 2))
    disagree[0, 1], disagree[1, 1] = [30.0, 0.0], [0.0, 30.0]
    assert _discriminate(disagree, 1, 0, probs, logp)[3] == pytest.approx(math.log(2), abs=1e-9)


def test_q_lambda_targets_on_a_hand_made_trajectory():
    K, S, A, T = 2, 4, 5, 3
    rng = np.random.default_rng(0)
    qs, qb = rng.random((K, S, A)), rng.random((K, S, A))
    w, gamma, lam, r, z = 2.0, 0.9, 0.7, 1.5, 1
    states = np.array([0, 1, 2, 3])
    actions = np.array([4, 2, 1])
    g = np.zeros_like(qs)
    loss = _td_grad(qs, qs, qb, w, z, states, actions, r, T, gamma, lam, 0.5, g)
    # lambda-returns: G_2 = r (no bootstrap after s_T); G_t = gamma ((1 - lam) Q(s_t+1, a*) + lam G_t+1)
    greedy = lambda s: int(np.argmax(qs[z, s] + w * qb[z, s]))  # noqa: E731
    G = [0.0, 0.0, r]
    for t in (1, 0):
        G[t] = gamma * ((1 - lam) * qs[z, states[t + 1], greedy(states[t + 1])] + lam * G[t + 1])
    td = [G[t] - qs[z, states[t], actions[t]] for t in range(T)]
    assert loss == pytest.approx(sum(x * x for x in td))
    expect = np.zeros_like(qs)
    for t in range(T):
        expect[z, states[t], actions[t]] -= 2 * td[t] * 0.5
    assert np.allclose(g, expect)


def test_training_is_deterministic_and_independent_of_the_other_seeds():
    cfg = SkillConfig(grid="small", skills=24, reward="linear_clipping")
    world = four_rooms("small")
    a = SkillLearner(cfg, world, [1, 2])
    b = SkillLearner(cfg, world, [1, 2])
    c = SkillLearner(cfg, world, [2], threads=1)
    for L in (a, b, c):
        L.train(300)
    assert np.array_equal(a.Qs, b.Qs) and np.array_equal(a.D, b.D)
    assert np.array_equal(a.Qs[1], c.Qs[0]) and np.array_equal(a.D[1], c.D[0])
    assert not np.array_equal(a.Qs[0], a.Qs[1])
    ev = a.evaluate(64)
    assert ev["effective_skills"].shape == (2,) and np.allclose(ev["occupancy"].sum(1), 1)
    assert np.allclose(ev["final_occupancy"].sum(1), 1)


def test_learner_state_round_trip():
    cfg = SkillConfig(grid="small", skills=8, reward="accuracy")
    world = four_rooms("small")
    a = SkillLearner(cfg, world, [0])
    a.train(50)
    b = SkillLearner(cfg, world, [0])
    b.load_state_dict(a.state_dict())
    a.train(50)
    b.train(50)
    assert b.iterations == 100 and np.array_equal(a.Qs, b.Qs) and np.array_equal(a.D, b.D)


def test_bad_inputs_are_refused():
    from rewardlab.studies.irrl_skills import IrrlSkillsConfig

    with pytest.raises(RewardLabError, match="unknown reward"):
        resolve(IrrlSkillsConfig, "irrl-skills", "fast", ["reward=sqrt"])
    with pytest.raises(RewardLabError, match="skills"):
        resolve(IrrlSkillsConfig, "irrl-skills", "fast", ["learner.skills=1"])
    with pytest.raises(RewardLabError, match="grid"):
        resolve(IrrlSkillsConfig, "irrl-skills", "fast", ["learner.grid=huge"])
    with pytest.raises(RewardLabError, match="ensemble"):
        SkillLearner(SkillConfig(bonus_weight=20.0, ensemble=1), four_rooms("large"), [0])
    with pytest.raises(RewardLabError, match="unknown grid"):
        four_rooms("huge")


def test_one_reward_table_torch_and_numba_agree():
    """The compiled skill rewards and RAM's torch rewards read one table (rewardlab.rewards.kinds) and agree on the
    same inputs, prior 1/K."""
    import torch

    from rewardlab.agents.skills import _REWARD_CODE, SKILL_REWARDS, _skill_reward
    from rewardlab.rewards.internal import internal_reward
    from rewardlab.rewards.kinds import KINDS, REWARD_KINDS

    assert set(SKILL_REWARDS) <= set(REWARD_KINDS)
    rng = np.random.default_rng(0)
    K = 24
    q = np.concatenate([rng.uniform(1e-6, 1, 200), [1 / K, 0.5 / K, 2 / K, 1.0]])
    correct = rng.random(len(q)) < 0.5
    for kind in SKILL_REWARDS:
        assert _REWARD_CODE[kind] == KINDS[kind].code
        ours = np.array([_skill_reward(_REWARD_CODE[kind], np.log(x), x, float(c), K) for x, c in zip(q, correct)])
        theirs = internal_reward(torch.tensor(np.log(q)), torch.tensor(correct), kind, 1 / K).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12, err_msg=kind)
    assert (
        internal_reward(torch.tensor(np.log(q)), torch.tensor(correct), "accuracy_pm1", 0.1).numpy()
        == np.where(correct, 1.0, -1.0)
    ).all()


def _reference_kernels():
    """benchmarks/skills_reference.py: the kernels before issue 19, loaded from its file."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "skills_reference.py"
    spec = importlib.util.spec_from_file_location("rewardlab_skills_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "grid,K,reward,E,w,eps",
    [
        ("large", 16, "linear_clipping", 1, 0.0, 0.001),
        ("large", 12, "log_clipping", 2, 20.0, 0.05),  # DISDAIN
        ("small", 24, "accuracy", 1, 0.0, 0.3),  # many exploring steps
        ("small", 6, "linear_noclipping", 3, 2.0, 0.0),  # no exploration draws at all
        ("small", 8, "log_noclipping", 1, 0.0, 1.0),
    ],
)
def test_training_kernel_is_bit_identical_to_the_reference(grid, K, reward, E, w, eps):
    """The fast kernel (lockstep rollouts, shared softmax per final state, fused Q(lambda)) gives exactly the tables,
    random stream and statistics of the straightforward one it replaced."""
    from rewardlab.agents.skills import train_iterations

    ref = _reference_kernels()
    world = four_rooms(grid)
    cfg = SkillConfig(grid=grid, skills=K, reward=reward, ensemble=E, bonus_weight=w, epsilon=eps)
    out = []
    for kernel in (ref.train_iterations, train_iterations):
        L = SkillLearner(cfg, world, [7], threads=1)
        stats = np.zeros(5)
        grads = (np.zeros_like(L.Qs[0]), np.zeros_like(L.Qb[0]), np.zeros_like(L.D[0]))
        hyper = (L.T, _REWARD_CODE[reward], w, eps, cfg.gamma, cfg.lam, cfg.lr, cfg.batch_size)
        for n in (1, 60, 300):  # several calls: the work buffers start afresh each call
            kernel(world.next_state, L.Qs[0], L.Qb[0], L.D[0], L.rng[:1], n, *hyper, *grads, stats)
        out.append((L.Qs, L.Qb, L.D, L.rng, stats))
    for a, b in zip(*out):
        assert np.array_equal(a, b)
    assert not np.array_equal(out[1][0], SkillLearner(cfg, world, [7]).Qs)  # it learned something
