import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv

from rewardlab.core.modules import build_module, load_module, module_config, save_module
from rewardlab.data.rollouts import collect_trajectories
from rewardlab.envs import BatchedMountainCar, ShapedMountainCarEnv, mc_env_id
from rewardlab.envs.mountain_car import (
    GAMMA,
    HORIZON,
    SHAPINGS,
    base_reward,
    mc_potential,
    mc_reward,
    potential_params,
    reached_goal_stats,
    shaping_of,
)
from rewardlab.envs.vec import BatchedVecEnv
from rewardlab.envs.vector import final_observations
from rewardlab.errors import RewardLabError
from rewardlab.rewards.mountain_car import MountainCarRewardNet
from rewardlab.rewards.wrappers import LearnedRewardVecEnv

LEFT, NONE, RIGHT = 0, 1, 2


def pump(obs):
    """The energy-pumping heuristic: push in the direction of the velocity (reaches the goal in ~120 steps)."""
    return np.where(obs[:, 1] >= 0, RIGHT, LEFT)


def phi(shaping, obs, params):
    o = np.asarray(obs, dtype=np.float64)
    return mc_potential(shaping, o[..., 0], o[..., 1], params)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_dynamics_equal_gymnasium(seed):
    ref, env = MountainCarEnv(), ShapedMountainCarEnv("random")
    o_ref, _ = ref.reset(seed=seed)
    o, _ = env.reset(seed=seed)
    assert o.dtype == np.float32 and env.observation_space.contains(o)
    np.testing.assert_array_equal(o, o_ref)
    rng = np.random.default_rng(seed)
    for t in range(HORIZON):
        a = int(rng.integers(0, 3))
        o_ref, r_ref, term, _, _ = ref.step(a)
        o, r, term2, trunc, info = env.step(a)
        np.testing.assert_array_equal(o, o_ref)
        assert info["base_reward"] == r_ref == -1.0 and not term and not term2
        assert trunc == (t == HORIZON - 1)


def test_render_rgb():
    env = ShapedMountainCarEnv(render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (200, 300, 3) and img.dtype == np.uint8
    imgs = BatchedMountainCar(2, seeds=0).render_images()
    assert len(imgs) == 2 and imgs[0].shape == (200, 300, 3)
    with pytest.raises(RewardLabError, match="render_mode"):
        ShapedMountainCarEnv(render_mode="human")


def test_left_wall_stops_the_car():
    env = ShapedMountainCarEnv()
    env.reset(seed=0, options={"state": (-1.19, -0.05)})
    o, *_ = env.step(LEFT)
    assert o[0] == np.float32(-1.2) and o[1] == 0.0


def test_reset_draws_one_uniform_from_own_generator():
    env, ref = ShapedMountainCarEnv(), MountainCarEnv()
    starts = [env.reset(seed=3)[0]] + [env.reset()[0] for _ in range(20)]
    refs = [ref.reset(seed=3)[0]] + [ref.reset()[0] for _ in range(20)]
    np.testing.assert_array_equal(np.stack(starts), np.stack(refs))
    s = np.stack(starts)
    assert ((s[:, 0] >= -0.6) & (s[:, 0] <= -0.4)).all() and (s[:, 1] == 0).all()


def test_absorb_after_done():
    env = ShapedMountainCarEnv("dense")
    env.reset(seed=0, options={"state": (0.49, 0.05)})
    o, r, term, trunc, info = env.step(RIGHT)
    assert o[0] >= 0.5 and info["base_reward"] == -1.0 and not term and not trunc
    goal = o.copy()
    for t in range(2, HORIZON + 1):
        o, r, term, trunc, info = env.step(int(t % 3))
        np.testing.assert_array_equal(o, goal)  # frozen
        assert info["base_reward"] == 0.0 and not term
        assert r == np.float32(GAMMA * 100 * np.float64(goal[0]) - 100 * np.float64(goal[0]))
        assert trunc == (t == HORIZON)


def test_reaching_the_goal_from_reset_and_registered_env():
    env = gym.make(mc_env_id("unshaped"))
    assert env.spec.max_episode_steps == HORIZON
    o, _ = env.reset(seed=0)
    rewards, reached = [], None
    for t in range(HORIZON):
        o, r, term, trunc, _ = env.step(int(pump(o[None])[0]))
        rewards.append(r)
        if reached is None and o[0] >= 0.5:
            reached = t + 1
        assert not term and trunc == (t == HORIZON - 1)
    assert reached is not None and reached < 150
    assert sum(rewards) == -reached  # unshaped: -1 per step until the goal, 0 while absorbed


@pytest.mark.parametrize("shaping", SHAPINGS)
def test_shaped_reward_identity(shaping):
    params = potential_params(shaping)
    env = ShapedMountainCarEnv(shaping)
    o, _ = env.reset(seed=5)
    rng = np.random.default_rng(5)
    buggy_differs = 0
    for _ in range(HORIZON):
        o2, r, _, _, info = env.step(int(rng.integers(0, 3)))
        base = float(o[0] >= 0.5) - 1.0
        assert info["base_reward"] == base
        expected = base + GAMMA * phi(shaping, o2, params) - phi(shaping, o, params)
        assert r == np.float32(expected)
        buggy = base + GAMMA * phi(shaping, o2, params) - phi(shaping, o2, params)
        buggy_differs += r != np.float32(buggy)
        o = o2
    if shaping == "unshaped":
        assert buggy_differs == 0
    else:
        assert buggy_differs > HORIZON // 2  # the original bug's gamma Phi(s') - Phi(s') is another reward


def test_potentials():
    pos, vel = np.array([-0.5, 0.2]), np.array([0.01, -0.03])
    np.testing.assert_array_equal(mc_potential("unshaped", pos, vel, ()), 0.0)
    np.testing.assert_array_equal(mc_potential("dense", pos, vel, potential_params("dense")), 100 * pos)
    np.testing.assert_array_equal(mc_potential("antidense", pos, vel, potential_params("antidense")), -100 * pos)
    rng = np.random.default_rng(0)
    ab, cd = rng.random(2) * 2 - 2, rng.uniform(-np.pi, np.pi, 2)
    a, b, c, d = potential_params("random")
    assert (a, b, c, d) == (ab[0], ab[1], cd[0], cd[1]) and -2 <= a < 0 and -2 <= b < 0
    assert potential_params("random", seed=1) != potential_params("random")
    p = potential_params("random")
    np.testing.assert_array_equal(mc_potential("random", pos, vel, p), 100 * np.sin(a * pos + b) * np.sin(c * vel + d))
    t = mc_potential("random", torch.tensor(pos), torch.tensor(vel), p)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    np.testing.assert_allclose(t.numpy(), mc_potential("random", pos, vel, p), rtol=1e-14)
    np.testing.assert_array_equal(base_reward(np.array([0.49, 0.5, 0.6])), [-1.0, 0.0, 0.0])


@pytest.mark.parametrize("shaping", SHAPINGS)
def test_reward_net_equals_env_reward(shaping):
    env = BatchedMountainCar(8, shaping, seeds=len(shaping))
    t, _ = collect_trajectories(env, pump, 3200, random_prob=0.3, seed=1)
    assert (t.obs[:, 0] >= 0.5).any()  # absorbed states are covered
    net = MountainCarRewardNet(shaping)
    assert list(net.parameters()) == [] and net.device == torch.device("cpu")
    r = net(torch.as_tensor(t.obs), None, torch.as_tensor(t.next_obs), torch.as_tensor(t.dones))
    assert r.shape == (len(t),) and r.dtype == torch.float32
    np.testing.assert_array_equal(r.numpy(), t.rewards)
    np.testing.assert_array_equal(net.predict(t.obs, t.acts, t.next_obs, t.dones), t.rewards)
    np.testing.assert_array_equal(
        mc_reward(shaping, t.obs, t.next_obs, potential_params(shaping)).astype(np.float32), t.rewards
    )


def test_reward_net_save_load_build_and_errors(tmp_path):
    net = MountainCarRewardNet("random", gamma=0.95, seed=3)
    assert module_config(net) == {"shaping": "random", "gamma": 0.95, "seed": 3}
    assert build_module("reward.mountain_car", module_config(net)).params == net.params
    t, _ = collect_trajectories(BatchedMountainCar(4, "random", seeds=0), pump, 400, random_prob=0.5)
    save_module(tmp_path / "mc.pt", net, {"env": "mc"})
    back, meta = load_module(tmp_path / "mc.pt", expect_config=module_config(net))
    assert isinstance(back, MountainCarRewardNet) and meta == {"env": "mc"}
    np.testing.assert_array_equal(
        back.predict(t.obs, None, t.next_obs, None), net.predict(t.obs, None, t.next_obs, None)
    )
    with pytest.raises(RewardLabError, match="config asks for"):
        load_module(tmp_path / "mc.pt", expect_config=module_config(MountainCarRewardNet("random")))
    with pytest.raises(RewardLabError, match="expects states of shape"):
        net(torch.zeros(3, 3), None, torch.zeros(3, 3), None)


def test_learned_reward_wrapper_accepts_parameterless_net():
    net = MountainCarRewardNet("dense")
    venv = LearnedRewardVecEnv(BatchedVecEnv(BatchedMountainCar(4, "unshaped", seeds=0)), net)
    venv.reset()
    for _ in range(3):
        venv.step_async(np.array([0, 1, 2, 2]))
        _, r, _, infos = venv.step_wait()
        assert r.dtype == np.float32 and all(i["true_reward"] == -1.0 for i in infos)


def test_unknown_shaping_errors():
    for make in (
        lambda: ShapedMountainCarEnv("steep"),
        lambda: BatchedMountainCar(2, "steep"),
        lambda: potential_params("steep"),
        lambda: MountainCarRewardNet("steep"),
        lambda: build_module("reward.mountain_car", {"shaping": "steep"}),
        lambda: mc_potential("steep", np.zeros(1), np.zeros(1), ()),
        lambda: shaping_of("steep"),
    ):
        with pytest.raises(RewardLabError, match="unknown MountainCar"):
            make()
    assert shaping_of(mc_env_id("dense")) == "dense"


def test_batched_bad_input():
    b = BatchedMountainCar(2, seeds=0)
    b.reset()
    with pytest.raises(RewardLabError, match="expects 2 actions"):
        b.step(np.zeros(3, dtype=int))
    with pytest.raises(RewardLabError, match="0..2"):
        b.step(np.array([0, 3]))
    with pytest.raises(RewardLabError, match="seeds"):
        BatchedMountainCar(2, seeds=[1, 2, 3])
    env = ShapedMountainCarEnv()
    env.reset(seed=0)
    with pytest.raises(RewardLabError, match="0..2"):
        env.step(5)


@pytest.mark.parametrize("shaping", ["dense", "random"])
def test_batched_equals_single(shaping):
    n, steps = 5, 3 * HORIZON + 17
    seeds = [21, 22, 23, 24, 25]
    batched = BatchedMountainCar(n, shaping, seeds=seeds, block=2)  # small block: exercises refills
    singles = [ShapedMountainCarEnv(shaping) for _ in range(n)]
    obs_b, _ = batched.reset()
    obs_s = np.stack([e.reset(seed=s)[0] for e, s in zip(singles, seeds)])
    np.testing.assert_array_equal(obs_b, obs_s)
    rng = np.random.default_rng(0)
    episodes, goals = 0, 0
    for _ in range(steps):
        a = np.where(rng.random(n) < 0.2, rng.integers(0, 3, size=n), pump(obs_b))
        obs_b, r_b, term_b, trunc_b, infos = batched.step(a)
        final_b = final_observations(obs_b, infos)
        assert r_b.dtype == np.float32 and obs_b.dtype == np.float32
        for i, e in enumerate(singles):
            o, r, term, trunc, _ = e.step(int(a[i]))
            np.testing.assert_array_equal(final_b[i], o)
            assert (r_b[i], term_b[i], trunc_b[i]) == (r, term, trunc)
            goals += o[0] >= 0.5
            if term or trunc:
                episodes += 1
                o, _ = e.reset()
            np.testing.assert_array_equal(obs_b[i], o)
    assert episodes == 3 * n and goals > 0


def test_vec_env_adapter_truncates_with_terminal_observation():
    venv = BatchedVecEnv(BatchedMountainCar(3, "unshaped", seeds=0))
    obs = venv.reset()
    for t in range(HORIZON):
        venv.step_async(pump(obs))
        obs, rew, dones, infos = venv.step_wait()
        assert dones.all() == (t == HORIZON - 1)
    assert all(i["TimeLimit.truncated"] and i["terminal_observation"][0] >= 0.5 for i in infos)


def test_collect_trajectories_order_and_episode_ids():
    env = BatchedMountainCar(3, "dense", seeds=4)
    n = 2 * 3 * HORIZON + 100  # 434 steps per env, last stream cut
    t, ep = collect_trajectories(env, pump, n, random_prob=0.1, seed=2)
    assert len(t) == n and ep.shape == (n,) and ep.dtype == np.int64
    assert ep[0] == 0 and set(np.diff(ep)) <= {0, 1}
    same = ep[1:] == ep[:-1]
    np.testing.assert_array_equal(t.next_obs[:-1][same], t.obs[1:][same])  # consecutive steps
    starts = np.r_[True, ~same]
    assert (t.obs[starts, 1] == 0).all()  # every piece starts at a reset (velocity 0)
    lengths = np.bincount(ep)
    assert (lengths[:-1] <= HORIZON).all() and (lengths == HORIZON).sum() == 6
    assert not t.dones.any() and t.obs.dtype == np.float32


class RecordingEnv:
    """A stand-in batched env (the VectorEnv protocol) that records the actions it is given."""

    def __init__(self, n):
        self.n = self.num_envs = n
        self.single_action_space = gym.spaces.Discrete(3)
        self.actions = []

    def reset(self):
        return np.zeros((self.n, 2), dtype=np.float32), {}

    def step(self, actions):
        self.actions.append(np.array(actions))
        z = np.zeros(self.n, dtype=bool)
        return self.reset()[0], np.zeros(self.n, np.float32), z, z, {}


def test_collect_trajectories_random_prob():
    def never(obs):
        raise AssertionError("act must not be called when random_prob is 1")

    def right(obs):
        return np.full(len(obs), RIGHT)

    env = RecordingEnv(10)
    collect_trajectories(env, never, 3000, random_prob=1.0, seed=0)
    counts = np.bincount(np.concatenate(env.actions), minlength=3)
    assert counts.sum() == 3000 and (np.abs(counts - 1000) < 120).all()  # uniform over the 3 actions
    env = RecordingEnv(10)
    collect_trajectories(env, right, 3000, random_prob=0.0)
    assert (np.concatenate(env.actions) == RIGHT).all()
    env = RecordingEnv(10)
    collect_trajectories(env, right, 3000, random_prob=0.5)
    assert abs((np.concatenate(env.actions) != RIGHT).mean() - 0.5 * 2 / 3) < 0.04
    a1, a2 = RecordingEnv(4), RecordingEnv(4)
    collect_trajectories(a1, right, 400, random_prob=0.3, seed=9)
    collect_trajectories(a2, right, 400, random_prob=0.3, seed=9)
    np.testing.assert_array_equal(np.stack(a1.actions), np.stack(a2.actions))  # seeded
    with pytest.raises(RewardLabError, match="random_prob"):
        collect_trajectories(BatchedMountainCar(2, seeds=0), right, 10, random_prob=1.5)


def test_reached_goal_stats():
    st = reached_goal_stats(BatchedMountainCar(8, "dense", seeds=0), pump, 12)
    assert st["success_rate"] == 1.0 and 90 < st["mean_steps_to_goal"] < 150
    assert len(st["steps_to_goal"]) == 12
    np.testing.assert_array_equal(st["base_returns"], -st["steps_to_goal"])
    idle = reached_goal_stats(BatchedMountainCar(4, seeds=0), lambda o: np.full(len(o), NONE), 4)
    assert idle["success_rate"] == 0.0 and np.isnan(idle["mean_steps_to_goal"])
    np.testing.assert_array_equal(idle["base_returns"], -HORIZON)
