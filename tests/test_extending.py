"""docs/extending.md's walkthroughs, run as written."""

import re
from pathlib import Path

import numpy as np

DOC = Path(__file__).parents[1] / "docs" / "extending.md"


def test_the_reward_net_walkthrough_runs(tmp_path, monkeypatch):
    """The example of "Add a reward net": a registered net, saved and loaded through the one module format, used
    through imitation's protocol and trained by the regression of reward models."""
    text = DOC.read_text().split("## Add a reward net", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)
    net, back, meta = ns["net"], ns["back"], ns["meta"]
    assert meta == {"note": "mine"} and type(back).__name__ == "GoalDistanceReward"
    assert back.config == net.config and back.scale.detach().item() == 2.0
    s = np.zeros((3, 2), np.float32)
    s2 = np.array([[0.5, 0.0], [1.5, 0.0], [0.5, 1.0]], np.float32)
    np.testing.assert_allclose(back.predict(s, None, s2, None), [0.0, -2.0, -2.0])

    from rewardlab.data.transitions import Transitions
    from rewardlab.learn.configs import RegressionConfig
    from rewardlab.learn.regression import train_regression

    rng = np.random.default_rng(0)
    nxt = rng.uniform(-1, 1, (300, 2)).astype(np.float32)
    true = -3.0 * np.linalg.norm(nxt - [0.5, 0.0], axis=1)
    data = Transitions(nxt, np.zeros(300, int), nxt, true.astype(np.float32), np.zeros(300, bool))
    fresh = ns["GoalDistanceReward"](goal=(0.5, 0.0), scale=1.0)
    cfg = RegressionConfig(lr=0.05, batch_size=30, epochs=20, loss_reduction="mean")
    res = train_regression(fresh, data.take(slice(0, 200)), data.take(slice(200, 300)), cfg, tmp_path / "fit", 0, "cpu")
    assert abs(fresh.scale.detach().item() - 3.0) < 0.05 and res["test_mse"] < 1e-3


def test_the_environment_walkthrough_runs():
    """The example of "Add an environment": a VectorEnv with same-step autoreset that the collectors and the SB3
    adapter take, and on which PPO learns to walk right."""
    text = DOC.read_text().split("## Add an environment", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    ns: dict = {}
    exec(compile(code, str(DOC), "exec"), ns)
    walk = ns["BatchedWalk"]
    from rewardlab.data.rollouts import collect_transitions, run_episodes

    t = collect_transitions(walk(4, seeds=1), lambda o: np.ones(len(o), int), 200)
    assert len(t) == 200 and t.rewards.sum() > 0 and (t.next_obs[t.dones][:, 0] == 4).all()  # s' is the final obs
    ends = run_episodes(walk(4, seeds=2), lambda o: np.ones(len(o), int), 40)
    assert ends["successes"].all() and ends["lengths"].max() <= 4  # always right: the goal in at most 4 steps

    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure

    from rewardlab.envs.vec import BatchedVecEnv

    model = PPO("MlpPolicy", BatchedVecEnv(walk(8, seeds=3)), n_steps=32, batch_size=64, seed=0, device="cpu")
    model.set_logger(configure(None, []))
    model.learn(4096)
    greedy = run_episodes(walk(8, seeds=4), lambda o: model.predict(o, deterministic=True)[0], 32)
    assert greedy["successes"].mean() == 1.0
