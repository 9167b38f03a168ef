import pytest

from rewardlab.config import from_dict, parse_overrides, resolve, to_dict
from rewardlab.errors import RewardLabError
from rewardlab.studies.learned_rewards import NAME
from rewardlab.studies.learned_rewards import LearnedRewardsConfig as CONFIG


def test_presets_resolve_with_published_settings():
    paper = resolve(CONFIG, NAME, "paper")
    assert paper.expert.ppo.gamma == 0.97 and paper.expert.ppo.total_timesteps == 45_000
    assert paper.expert.ppo.learning_rate == 1e-4 and paper.expert.ppo.lr_schedule == "linear"
    assert paper.dataset.n_train == 25_000 and paper.dataset.n_test == 12_500
    assert paper.reward_model.hidden == [64, 64] and paper.reward_model.batch_size == 20
    assert paper.reward_model.epochs == 5 and paper.retrain.n_seeds >= 3
    fast = resolve(CONFIG, NAME, "fast")
    assert fast.dataset.n_train < paper.dataset.n_train


def test_overrides_are_typed_and_nested():
    cfg = resolve(
        CONFIG,
        NAME,
        "fast",
        ["expert.ppo.total_timesteps=1e3", "reward_model.hidden=[8,4]", "dataset.deterministic=true", "seed=7"],
    )
    assert cfg.expert.ppo.total_timesteps == 1000 and cfg.reward_model.hidden == [8, 4]
    assert cfg.dataset.deterministic is True and cfg.seed == 7
    assert from_dict(CONFIG, to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "override,message",
    [
        ("expert.ppo.totl_timesteps=5", "unknown config key 'expert.ppo.totl_timesteps'"),
        ("expert.ppo.gamma=1.5", "out of range"),
        ("reward_model.epochs=0", "out of range"),
        ("reward_model.loss_reduction=max", "not allowed"),
        ("dataset.n_train=lots", "expected an integer"),
        ("expert.env=Pong-v5", "unknown maze"),
        ("device=tpu", "not allowed"),
        ("seed", "key=value"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(RewardLabError, match=message):
        resolve(CONFIG, NAME, "fast", [override])


def test_unknown_preset():
    with pytest.raises(RewardLabError, match="unknown preset 'quick'"):
        resolve(CONFIG, NAME, "quick")


def test_parse_overrides_yaml_scalars():
    assert parse_overrides(["a.b=3", "a.c=x", "d=0.5"]) == {"a": {"b": 3, "c": "x"}, "d": 0.5}
