import numpy as np

from rewardlab.agents.ppo import PPOConfig, load_ppo, policy_act_fn, train_ppo
from rewardlab.core.runs import read_metrics
from rewardlab.envs.maze import BatchedMaze
from rewardlab.envs.vec import BatchedVecEnv


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
    assert (out / "model.zip").exists() and (out / "checkpoints" / "last.zip").exists()
    assert calls[0] == 0 and calls[-1] >= 512
    # a crash after the last checkpoint: the final model is gone, the checkpoint remains
    (out / "model.zip").unlink()
    ckpt_steps = load_ppo(out / "checkpoints" / "last.zip").num_timesteps
    assert 256 <= ckpt_steps <= 512
    calls.clear()
    model = train_ppo(cfg(1024), BatchedVecEnv(BatchedMaze(4, seeds=0)), out, seed=0, evaluate=evaluate, eval_every=256)
    assert calls and calls[0] > ckpt_steps  # no evaluation at step 0 again: it resumed
    assert 1024 <= model.num_timesteps < 1024 + 256
    steps, _ = read_metrics(out / "metrics.csv")["true_return"]
    assert steps[0] == 0 and steps[-1] >= 1024


def test_ppo_same_seed_same_policy(tmp_path):
    models = [train_ppo(cfg(256), BatchedVecEnv(BatchedMaze(4, seeds=0)), tmp_path / f"r{i}", seed=3) for i in range(2)]
    obs, _ = BatchedMaze(8, seeds=1).reset()
    a, b = (policy_act_fn(m, True)(obs) for m in models)
    np.testing.assert_array_equal(a, b)
    for pa, pb in zip(models[0].policy.parameters(), models[1].policy.parameters()):
        np.testing.assert_array_equal(pa.detach().numpy(), pb.detach().numpy())
