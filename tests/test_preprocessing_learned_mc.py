"""Learned mountain-car rewards in the preprocessing study: imitation's preference comparisons (its PPO agent trained
alongside) and AIRL (from the study's expert), converted, preprocessed with every objective, measured and plotted;
tiny budgets here (the `paper` preset has the real ones). Without imitation the config is refused with one line."""

import json
import os

import pytest
import torch

from rewardlab.config import resolve
from rewardlab.errors import RewardLabError
from rewardlab.studies.preprocessing import PreprocessingConfig

TINY = [
    "mountain_car.expert.total_timesteps=2048",
    "mountain_car.transitions=2000",
    "mountain_car.shapings=[unshaped]",
    "mountain_car.curve_episodes=1",
    "preprocess.objectives=[sparse_l1,smooth_l1,sparse_log]",
    "preprocess.epochs=1",
    "mountain_car.learned.enabled=true",
    "mountain_car.learned.preferences.total_comparisons=20",
    "mountain_car.learned.preferences.iterations=2",
    "mountain_car.learned.preferences.fragment_length=20",
    "mountain_car.learned.preferences.agent.total_timesteps=1024",
    "mountain_car.learned.preferences.agent.n_envs=2",
    "mountain_car.learned.preferences.agent.n_steps=256",
    "mountain_car.learned.airl.demo_timesteps=800",
    "mountain_car.learned.airl.demo_batch_size=256",
    "mountain_car.learned.airl.gen.total_timesteps=1024",
    "mountain_car.learned.airl.gen.n_envs=2",
    "mountain_car.learned.airl.gen.n_steps=256",
]


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_learned_rewards_trained_converted_preprocessed(tmp_path, cli):
    if os.environ.get("REWARDLAB_REQUIRE_EXTRAS") != "1":
        pytest.importorskip("imitation")
    from rewardlab.core.modules import load_module

    out = tmp_path / "run"
    code, _, err = cli("preprocessing", "mountain-car", "--preset", "fast", "--out", out, *TINY)
    assert code == 0, err
    r = json.loads((out / "mountain_car" / "result.json").read_text())
    learned = r["learned"]
    assert set(learned["summary"]) == {"preferences", "airl"}
    # preferences from the dense car's reward carry a signal from the first fragments (on the unshaped car they are
    # ties until the agent reaches the goal): the preference model separates its comparisons above chance
    pref = learned["per_method"]["preferences"]
    assert pref["train_stats"]["reward_accuracy"] >= 0.8, pref["train_stats"]  # 0.6 with the unshaped car
    assert "from the dense reward" in pref["source"]
    for method, b in learned["summary"].items():
        info = learned["per_method"][method]
        assert info["train_seconds"] > 0 and 0.0 <= info["agent_success_rate"] <= 1.0
        assert -200.0 <= info["agent_true_return"] <= 0.0
        assert 0.0 <= b["epic_to_true"] <= 1.0
        for obj in ("sparse_l1", "smooth_l1", "sparse_log"):
            m = b[obj]
            # every output, LP and Adam alike, is the learned reward shaped: EPIC sees no change
            assert m["epic_to_input"] < 1e-4, (method, obj)
            assert abs(m["epic_to_true_after"] - b["epic_to_true"]) < 1e-4, (method, obj)
        assert info["preprocessed"]["sparse_l1"]["solver"] == "lp"
        assert b["sparse_l1"]["mean_abs_after"] <= b["sparse_l1"]["mean_abs_before"] + 1e-6
        # the converted reward is saved in rewardlab's format and reproduces the preprocessing's input
        net, meta = load_module(out / "mountain_car" / "learned" / method / "reward.pt")
        assert meta["method"] == method
        pre, pmeta = load_module(out / "mountain_car" / "models" / f"learned-{method}.sparse_l1.pt")
        assert pmeta["solver"] == "lp" and pmeta["reward"] == f"learned-{method}"
        x = torch.tensor([[-0.5, 0.0], [0.2, 0.01]])
        assert net(x, None, x, None).shape == (2,) and pre(x, None, x, None).shape == (2,)
    assert "AIRL reward_test" in learned["per_method"]["airl"]["source"]
    assert (out / "figures" / "mountain_car_learned_curves.png").stat().st_size > 20_000
    s = json.loads((out / "summary.json").read_text())
    assert set(s["mountain_car_learned"]) == {"preferences", "airl"}
    code, _, err = cli("preprocessing", "report", "--out", out)
    assert code == 0, err
    report = (out / "report.md").read_text()
    assert "### Learned mountain-car rewards" in report and "mountain_car_learned_curves.png" in report


def test_learned_part_is_off_in_fast_and_on_in_paper():
    fast = resolve(PreprocessingConfig, "preprocessing", "fast")
    paper = resolve(PreprocessingConfig, "preprocessing", "paper")
    assert not fast.mountain_car.learned.enabled and not PreprocessingConfig().mountain_car.learned.enabled
    assert paper.mountain_car.learned.enabled and paper.mountain_car.learned.methods == ["preferences", "airl"]


def test_missing_imitation_is_one_line(monkeypatch, cli, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "imitation" else real(name, *a))
    cfg = PreprocessingConfig()
    cfg.mountain_car.learned.enabled = True
    with pytest.raises(RewardLabError) as e:
        cfg.validate()
    assert one_line(str(e.value)) and 'pip install --no-deps "imitation==1.0.1"' in str(e.value)
    PreprocessingConfig().validate()  # the learned part off: imitation is not needed
    code, _, err = cli(
        "preprocessing", "mountain-car", "--out", tmp_path / "r", "--dry-run", "mountain_car.learned.enabled=true"
    )
    assert code == 2 and one_line(err) and "imitation" in err
    assert not (tmp_path / "r").exists()


def test_bad_learned_settings_are_refused():
    with pytest.raises(RewardLabError):
        resolve(PreprocessingConfig, "preprocessing", {}, ["mountain_car.learned.methods=[gail]"])
    with pytest.raises(RewardLabError):
        resolve(PreprocessingConfig, "preprocessing", {}, ["mountain_car.learned.airl.reward=both"])
