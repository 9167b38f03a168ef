import gymnasium as gym
import numpy as np
import pytest

from rewardlab.envs import BatchedMaze, MazeEnv, env_id
from rewardlab.envs.maze import AGENT, FREE_CELLS, GOAL, LAYOUT, VARIANTS, WALL, draw_grid
from rewardlab.envs.vec import BatchedVecEnv
from rewardlab.envs.vector import final_observations
from rewardlab.errors import RewardLabError

N, S, W, E = 0, 1, 2, 3


def placed(variant="CoinFlipGoal", agent=(5, 5), goals=((9, 9),)):
    env = MazeEnv(variant)
    obs, info = env.reset(seed=0, options={"agent": agent, "goals": goals})
    return env, obs


def test_layout_is_bordered_9x9_interior():
    assert LAYOUT.shape == (11, 11) and LAYOUT.dtype == np.uint8
    assert (LAYOUT[0] == WALL).all() and (LAYOUT[-1] == WALL).all()
    assert (LAYOUT[:, 0] == WALL).all() and (LAYOUT[:, -1] == WALL).all()
    assert (LAYOUT[1:-1, 1:-1] == 0).all() and len(FREE_CELLS) == 81


def test_observation_codes_and_space():
    env, obs = placed(agent=(5, 5), goals=((9, 9),))
    assert obs.dtype == np.uint8 and obs.shape == (11, 11)
    assert obs[5, 5] == AGENT and obs[9, 9] == GOAL
    assert env.observation_space.contains(obs) and env.action_space.n == 4
    assert (obs == AGENT).sum() == 1 and (obs == GOAL).sum() == 1


@pytest.mark.parametrize("action,expected", [(N, (4, 5)), (S, (6, 5)), (W, (5, 4)), (E, (5, 6))])
def test_moves(action, expected):
    env, _ = placed(agent=(5, 5))
    obs, r, term, trunc, info = env.step(action)
    assert info["agent"] == expected and obs[expected] == AGENT and obs[5, 5] == 0
    assert r == 0.0 and not term and not trunc


@pytest.mark.parametrize("agent,action", [((1, 3), N), ((9, 3), S), ((3, 1), W), ((3, 9), E)])
def test_walls_block(agent, action):
    env, _ = placed(agent=agent)
    obs, r, term, _, info = env.step(action)
    assert info["agent"] == agent and obs[agent] == AGENT and r == 0.0 and not term


def test_goal_reward_termination_and_hidden_goal():
    env, _ = placed(agent=(8, 9), goals=((9, 9),))
    obs, r, term, trunc, _ = env.step(S)
    assert r == 1.0 and term and not trunc
    assert obs[9, 9] == AGENT and not (obs == GOAL).any()  # the agent hides the reached goal


def test_wall_bump_on_goal_still_rewards():
    env, _ = placed(agent=(9, 9), goals=((9, 9),))
    _, r, term, _, _ = env.step(S)  # into the wall: stays on the goal
    assert r == 1.0 and term


def test_two_goals_either_terminates():
    for start, action, goal in (((2, 1), N, (1, 1)), ((8, 9), S, (9, 9))):
        env, _ = placed("TwoGoals", agent=start, goals=((1, 1), (9, 9)))
        obs, r, term, _, _ = env.step(action)
        assert r == 1.0 and term and (obs == GOAL).sum() == 1


def test_nonterminating_keeps_rewarding():
    env, _ = placed("NonTerminating", agent=(8, 9), goals=((9, 9),))
    rewards = [env.step(a)[1:3] for a in (S, S, S)]
    assert rewards == [(1.0, False)] * 3


def test_reset_draws_from_own_seeded_generator():
    def episode_starts(seed):
        env = MazeEnv("CoinFlipGoal")
        out = [env.reset(seed=seed)[0]]
        out += [env.reset()[0] for _ in range(20)]
        return np.stack(out)

    np.testing.assert_array_equal(episode_starts(3), episode_starts(3))
    assert not np.array_equal(episode_starts(3), episode_starts(4))
    goals = set()
    for s in range(40):
        obs, info = MazeEnv("CoinFlipGoal").reset(seed=s)
        goals.update(info["goals"])
    assert goals == {(1, 1), (9, 9)}  # the coin flip picks both corners


def test_variants_goals():
    for variant in VARIANTS:
        env = MazeEnv(variant)
        _, info = env.reset(seed=1)
        if variant == "TwoGoals":
            assert info["goals"] == ((1, 1), (9, 9))
        elif variant == "FixedGoal":
            assert info["goals"] == ((9, 9),)
        else:
            assert len(info["goals"]) == 1
    rg = {MazeEnv("RandomGoal").reset(seed=s)[1]["goals"][0] for s in range(50)}
    assert len(rg) > 10


def test_registered_time_limits():
    env = gym.make(env_id("CoinFlipGoal"))
    assert env.spec.max_episode_steps == 200
    assert gym.make(env_id("NonTerminating")).spec.max_episode_steps == 50
    env.reset(seed=0, options={"agent": (5, 5), "goals": ((9, 9),)})
    for t in range(200):
        _, _, term, trunc, _ = env.step(N if t % 2 else S)
        assert not term
    assert trunc


def test_render_rgb():
    env = MazeEnv(render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (176, 176, 3) and img.dtype == np.uint8


@pytest.mark.parametrize("variant", VARIANTS)
def test_batched_equals_single(variant):
    n, steps = 6, 600
    seeds = [11, 12, 13, 14, 15, 16]
    batched = BatchedMaze(n, variant, seeds=seeds, block=4)  # small block: exercises refills
    singles = [gym.make(env_id(variant)) for _ in range(n)]
    obs_b, _ = batched.reset()
    obs_s = np.stack([e.reset(seed=s)[0] for e, s in zip(singles, seeds)])
    np.testing.assert_array_equal(obs_b, obs_s)
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(steps):
        a = rng.integers(0, 4, size=n)
        obs_b, r_b, term_b, trunc_b, infos = batched.step(a)
        final_b = final_observations(obs_b, infos)
        for i, e in enumerate(singles):
            o, r, term, trunc, _ = e.step(int(a[i]))
            np.testing.assert_array_equal(final_b[i], o)
            assert (r_b[i], term_b[i], trunc_b[i]) == (r, term, trunc)
            if term or trunc:
                episodes += 1
                o, _ = e.reset()
            np.testing.assert_array_equal(obs_b[i], o)
    assert episodes > n  # several resets happened


@pytest.mark.parametrize("variant", ["FixedGoal", "TwoGoals"])
def test_batched_equals_single_when_the_goal_is_reached_at_the_time_limit(variant):
    """Both report terminated and truncated for an episode whose goal is reached at its last step (Gymnasium's
    TimeLimit); the batched maze once reported terminated only."""
    n, limit = 8, 3
    seeds = list(range(100, 100 + n))
    batched = BatchedMaze(n, variant, seeds=seeds, max_episode_steps=limit)
    singles = [gym.make(env_id(variant), max_episode_steps=limit) for _ in range(n)]
    batched.reset()
    for e, s in zip(singles, seeds):
        e.reset(seed=s)
    rng = np.random.default_rng(1)
    both = 0
    for _ in range(1500):
        a = rng.integers(0, 4, size=n)
        _, r_b, term_b, trunc_b, _ = batched.step(a)
        for i, e in enumerate(singles):
            _, r, term, trunc, _ = e.step(int(a[i]))
            assert (r_b[i], term_b[i], trunc_b[i]) == (r, term, trunc)
            both += term and trunc
            if term or trunc:
                e.reset()
    assert both > 0  # the case happened


def test_batched_bad_input():
    with pytest.raises(RewardLabError, match="unknown maze variant"):
        BatchedMaze(2, "Nope")
    b = BatchedMaze(2, seeds=0)
    b.reset()
    with pytest.raises(RewardLabError, match="expects 2 actions"):
        b.step(np.zeros(3, dtype=int))
    with pytest.raises(RewardLabError, match="0..3"):
        b.step(np.array([0, 7]))
    with pytest.raises(RewardLabError, match="seeds"):
        BatchedMaze(2, seeds=[1, 2, 3])


def test_vec_env_adapter_reports_terminal_observation():
    venv = BatchedVecEnv(BatchedMaze(4, "CoinFlipGoal", seeds=0))
    venv.reset()
    seen = 0
    rng = np.random.default_rng(1)
    for _ in range(400):
        venv.step_async(rng.integers(0, 4, size=4))
        obs, rew, dones, infos = venv.step_wait()
        for i in np.flatnonzero(dones):
            term = infos[i]["terminal_observation"]
            assert term.shape == (11, 11)
            if not infos[i]["TimeLimit.truncated"]:
                assert rew[i] == 1.0 and not (term == GOAL).any()
                seen += 1
    assert seen > 0


def test_draw_grid_agent_over_goal():
    goals = np.zeros((11, 11), bool)
    goals[1, 1] = True
    g = draw_grid(np.array([1, 1]), goals)
    assert g[1, 1] == AGENT and not (g == GOAL).any()


@pytest.mark.parametrize("variant", ["CoinFlipGoal", "TwoGoals", "FixedGoal"])
def test_enumerated_states_step_like_the_maze(variant):
    from rewardlab.envs.maze import maze_states, state_indices

    grids, next_state, on_goal = maze_states(variant)
    n = len(grids)
    assert len(np.unique(grids.reshape(n, -1), axis=0)) == n  # one observation per state
    assert on_goal.sum() == (1 if variant == "FixedGoal" else 2)
    env = MazeEnv(variant)
    rng = np.random.default_rng(0)
    for i in rng.choice(n, 12, replace=False):
        for a in range(4):
            agent = tuple(int(x) for x in np.argwhere(grids[i] == AGENT)[0])
            goals = [tuple(g) for g in np.argwhere(grids[i] == GOAL)] + ([agent] if on_goal[i] else [])
            env.reset(seed=0, options={"agent": agent, "goals": goals})
            obs, r, *_ = env.step(a)
            assert (grids[next_state[i, a]] == obs).all() and r == float(on_goal[next_state[i, a]])
    assert (state_indices(grids, grids[::-1]) == np.arange(n)[::-1]).all()
    with pytest.raises(RewardLabError, match="not a state of this maze"):
        state_indices(grids, draw_grid(np.array([[5, 5]]), np.zeros((1, 11, 11), bool)))
