import csv

import numpy as np
import pytest
import torch

from rewardlab.agents.ppo import PPOConfig, load_ppo, policy_act_fn, train_ppo
from rewardlab.core.runs import read_metrics
from rewardlab.envs.maze import BatchedMaze
from rewardlab.envs.vec import BatchedVecEnv
from rewardlab.errors import RewardLabError


def cfg(total):
    return PPOConfig(
        total_timesteps=total, n_envs=4, n_steps=64, batch_size=64, n_epochs=2, learning_rate=1e-3, checkpoint_every=256
    )


def test_ppo_checkpoints_and_resumes(tmp_path):
    calls = []

    def evaluate(model):
        calls.append(model.num_timesteps)
        return {"true_return": 0.0}

    out = tmp_path / "ppo"
    train_ppo(cfg(512), BatchedVecEnv(BatchedMaze(4, seeds=0)), out, seed=0, evaluate=evaluate, eval_every=256)
    assert (out / "model.pt").exists() and (out / "checkpoints" / "last.pt").exists()
    assert not list(out.rglob("*.zip"))  # no pickles written
    assert calls[0] == 0 and calls[-1] >= 512
    # a crash after the last checkpoint: the final model is gone, the checkpoint remains
    (out / "model.pt").unlink()
    ckpt_steps = load_ppo(out / "checkpoints" / "last.pt").num_timesteps
    assert 256 <= ckpt_steps <= 512
    calls.clear()
    model = train_ppo(cfg(1024), BatchedVecEnv(BatchedMaze(4, seeds=0)), out, seed=0, evaluate=evaluate, eval_every=256)
    assert calls and calls[0] > ckpt_steps  # no evaluation at step 0 again: it resumed
    assert 1024 <= model.num_timesteps < 1024 + 256
    steps, _ = read_metrics(out / "metrics.csv")["true_return"]
    assert steps[0] == 0 and steps[-1] >= 1024
    # SB3's own log keeps the rows from before the interruption, each update once
    with open(out / "sb3" / "progress.csv", newline="") as fh:
        logged = [int(r["time/total_timesteps"]) for r in csv.DictReader(fh)]
    assert logged == list(range(256, model.num_timesteps + 1, 256))


def test_saved_ppo_loads_to_the_same_policy_and_optimiser(tmp_path):
    venv = BatchedVecEnv(BatchedMaze(4, seeds=0))
    model = train_ppo(cfg(256), venv, tmp_path, seed=0)
    back = load_ppo(tmp_path / "model.pt", BatchedVecEnv(BatchedMaze(4, seeds=0)))
    assert back.num_timesteps == model.num_timesteps and back._n_updates == model._n_updates
    for (k, a), b in zip(model.policy.state_dict().items(), back.policy.state_dict().values()):
        assert torch.equal(a, b), k
    sa, sb = model.policy.optimizer.state_dict()["state"], back.policy.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    # a policy for another environment is refused with one line
    from rewardlab.envs.mountain_car import BatchedMountainCar

    car = BatchedMountainCar(1, "unshaped", seeds=0)
    with pytest.raises(RewardLabError, match="another environment") as e:
        load_ppo(tmp_path / "model.pt", spaces=(car.single_observation_space, car.single_action_space))
    assert "\n" not in str(e.value)


def test_ppo_same_seed_same_policy(tmp_path):
    models = [train_ppo(cfg(256), BatchedVecEnv(BatchedMaze(4, seeds=0)), tmp_path / f"r{i}", seed=3) for i in range(2)]
    obs, _ = BatchedMaze(8, seeds=1).reset()
    a, b = (policy_act_fn(m, True)(obs) for m in models)
    np.testing.assert_array_equal(a, b)
    for pa, pb in zip(models[0].policy.parameters(), models[1].policy.parameters()):
        np.testing.assert_array_equal(pa.detach().numpy(), pb.detach().numpy())


def test_impala_cnn_policy_builds_saves_and_loads(tmp_path):
    """PPO with the Procgen paper's IMPALA CNN on 64x64 RGB frames: shapes, and saved-then-loaded acts the same."""
    import gymnasium as gym
    from gymnasium import spaces

    from rewardlab.agents.impala import ImpalaCNN
    from rewardlab.agents.ppo import make_ppo, save_ppo

    class Frames(gym.Env):
        observation_space = spaces.Box(0, 255, (3, 64, 64), dtype=np.uint8)
        action_space = spaces.Discrete(15)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    cfg = PPOConfig(policy="ImpalaCnnPolicy", n_envs=1, n_steps=16, batch_size=8, n_epochs=1)
    model = make_ppo(cfg, Frames(), seed=0)
    assert isinstance(model.policy.features_extractor, ImpalaCNN)
    n_params = sum(p.numel() for p in model.policy.features_extractor.parameters())
    # conv 3x3 + two residual blocks (2 convs each) per stack, 3->16, 16->32, 32->32, then Linear(32 * 8 * 8, 256)
    stacks = sum(i * o * 9 + o + 4 * (o * o * 9 + o) for i, o in ((3, 16), (16, 32), (32, 32)))
    assert n_params == stacks + 32 * 8 * 8 * 256 + 256 == 622_144
    model.learn(16)
    save_ppo(model, tmp_path / "model.pt", cfg)
    back = load_ppo(tmp_path / "model.pt", spaces=(Frames.observation_space, Frames.action_space))
    obs = np.random.default_rng(0).integers(0, 256, (4, 3, 64, 64), dtype=np.uint8)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], back.predict(obs, deterministic=True)[0])
