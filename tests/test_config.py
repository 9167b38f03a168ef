import dataclasses
import math
import typing

import pytest

from rewardlab.config import from_dict, parse_overrides, resolve, to_dict
from rewardlab.errors import RewardLabError
from rewardlab.studies import STUDIES
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


# ---------------------------------------------------------------------------------------------------------------------
# Every bad value is refused by the typed config with one line naming the key, before anything runs.
def refused(study: str, *overrides: str) -> str:
    """The one-line message with which `study`'s fast preset refuses the overrides."""
    with pytest.raises(RewardLabError) as e:
        STUDIES[study].resolve("fast", list(overrides))
    msg = str(e.value)
    assert "\n" not in msg and msg.strip(), msg
    return msg


def key_of(override: str) -> str:
    return override.split("=", 1)[0]


@pytest.mark.parametrize(
    "study,override",
    [
        ("learned-rewards", "reward_model.hidden=[64,"),
        ("learned-rewards", "retrain.envs=[a, [b"),
        ("learned-rewards", "expert.ppo={total_timesteps: 5"),
        ("ptgm", "seeds=[0, 1"),
        ("irrl-skills", "reward=[linear_clipping"),
    ],
)
def test_malformed_list_or_mapping_is_one_line(study, override):
    msg = refused(study, override)
    assert key_of(override) in msg and "cannot read" in msg and "write it as" in msg


def test_malformed_list_in_a_preset_is_one_line():
    with pytest.raises(RewardLabError, match=r"reward_model.hidden: cannot read '\[64,' as a list") as e:
        STUDIES["learned-rewards"].resolve({"reward_model": {"hidden": "[64,"}})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", "nan", "inf", "-inf", "1e999", "-1.0e999"])
@pytest.mark.parametrize(
    "study,key",
    [
        ("learned-rewards", "reward_model.lr"),
        ("learned-rewards", "expert.ppo.ent_coef"),
        ("irrl-digits", "loss.reinforce_weight"),
        ("ptgm", "rl.init_log_alpha"),  # no bounds at all: still finite
        ("preprocessing", "gamma"),
        ("learned-rewards", "seed"),  # an integer
    ],
)
def test_non_finite_numbers_are_refused(study, key, value):
    msg = refused(study, f"{key}={value}")
    assert key in msg


@pytest.mark.parametrize(
    "study,override",
    [
        ("learned-rewards", "expert.ppo.learning_rate=0"),
        ("learned-rewards", "retrain.ppo.clip_range=0"),
        ("preprocessing", "mountain_car.expert.learning_rate=0"),
        ("irrl-digits", "train.lr=0"),
        ("irrl-skills", "learner.lr=0"),
        ("ptgm", "pretrain.lr=0"),
        ("ptgm", "rl.lr=0"),
        ("ptgm", "rl.tau=0"),
        ("ptgm", "rl.grad_clip=0"),
        ("ptgm", "rl.updates_per_transition=0"),
        ("ptgm", "flat.lr=0"),
        ("ptgm", "flat.tau=0"),
        ("learned-rewards", "reward_model.lr=0"),
        ("preprocessing", "preprocess.lr=0"),
        ("preprocessing", "preferences.lr=0"),
        ("learned-rewards", "expert.ppo.batch_size=0"),
    ],
)
def test_zero_where_a_positive_value_is_needed(study, override):
    msg = refused(study, override)
    assert key_of(override) in msg and "out of range" in msg and "must be >" in msg


def test_zero_where_it_means_something_is_accepted():
    STUDIES["learned-rewards"].resolve("fast", ["expert.ppo.ent_coef=0", "seed=0", "expert.ppo.vf_coef=0"])
    STUDIES["irrl-digits"].resolve("fast", ["train.epochs=0", "train.threads=0", "hack.epochs=0"])
    STUDIES["ptgm"].resolve("fast", ["workers=0", "pretrain.val_fraction=0", "rl.warmup=0", "flat.learning_starts=0"])
    STUDIES["irrl-skills"].resolve("fast", ["learner.epsilon=0", "learner.bonus_weight=0", "iterations=0"])


def test_exclusive_bound_is_in_metadata_and_help():
    from rewardlab.agents.configs import PPOConfig
    from rewardlab.config import dump_yaml_with_help, param

    meta = {f.name: f.metadata for f in dataclasses.fields(PPOConfig)}
    assert meta["learning_rate"]["gt"] == 0.0 and meta["learning_rate"]["min"] is None
    text = dump_yaml_with_help(PPOConfig())
    assert "learning_rate: 0.0001  # initial Adam learning rate [> 0.0 and <= 1.0]" in text
    assert "clip_range: 0.2  # PPO clip range" in text and "[> 0.0]" in text
    with pytest.raises(ValueError):
        param(1.0, help="x", min=0.0, gt=0.0)


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["expert.ppo.batch_size=1"], ["expert.ppo.batch_size=1", ">= 2"]),
        (["expert.ppo.n_steps=1", "expert.ppo.n_envs=1", "expert.ppo.batch_size=2"], ["expert.ppo", "greater than 1"]),
        (["expert.ppo.batch_size=100"], ["expert.ppo", "batch_size=100", "does not divide", "2048"]),
        (["retrain.ppo.n_envs=1"], ["retrain.ppo", "batch_size=256", "larger than", "128"]),
    ],
)
def test_what_sb3_ppo_asserts_on_is_refused(overrides, words):
    msg = refused("learned-rewards", *overrides)
    assert all(w in msg for w in words), msg


def test_a_ppo_rollout_that_splits_evenly_is_accepted():
    cfg = STUDIES["learned-rewards"].resolve("fast", ["expert.ppo.n_envs=1", "expert.ppo.batch_size=64"])
    assert cfg.expert.ppo.n_steps * cfg.expert.ppo.n_envs % cfg.expert.ppo.batch_size == 0


def test_a_sac_batch_larger_than_its_replay_is_refused():
    msg = refused("ptgm", "rl.batch=512", "rl.buffer=256")
    assert "rl" in msg and "batch=512" in msg and "buffer=256" in msg


def _list_fields(cls: type, prefix: str = "") -> typing.Iterator[tuple[str, dataclasses.Field]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _list_fields(tp, f"{prefix}{f.name}.")
        elif typing.get_origin(tp) in (list, tuple):
            yield prefix + f.name, f


@pytest.mark.parametrize(
    "study,key",
    [
        ("preprocessing", "mountain_car.shapings"),
        ("preprocessing", "tabular.rewards"),
        ("preprocessing", "tabular.mazes"),
        ("preprocessing", "preprocess.objectives"),
        ("ptgm", "methods"),
        ("ptgm", "seeds"),
        ("irrl-skills", "reward"),
        ("irrl-skills", "seeds"),
    ],
)
def test_empty_list_is_refused_with_an_example(study, key):
    msg = refused(study, f"{key}=[]")
    assert msg.startswith(f"{key} is empty; give at least one value, e.g. [")


def test_every_list_is_non_empty_unless_empty_means_something():
    meaningful = {
        ("irrl-digits", "noise_ckpts"),  # every checkpoint
        ("irrl-digits", "hack.rewards"),  # skip the step
        ("preprocessing", "tabular.learned_mazes"),  # no learned rewards
        ("ptgm", "goal_features"),  # the domain's
        ("learned-rewards", "reward_model.hidden"),  # a linear model
        ("learned-rewards", "expert.ppo.net_arch"),  # linear policy and value
        ("learned-rewards", "retrain.ppo.net_arch"),
        ("preprocessing", "mountain_car.expert.net_arch"),
        ("preprocessing", "mountain_car.learned.preferences.agent.net_arch"),
        ("preprocessing", "mountain_car.learned.airl.gen.net_arch"),
        ("atari", "expert.ppo.net_arch"),  # the MlpPolicy's widths; the CnnPolicy does not use them
        ("atari", "retrain.ppo.net_arch"),
        ("coinrun", "expert.ppo.net_arch"),  # the same
        ("learned-rewards", "retrain.envs"),  # no retraining (the demo's miniature)
        ("atari", "retrain.games"),  # the same
        ("coinrun", "preprocess.objectives"),  # no preprocessing (the demo's miniature)
    }
    seen = set()
    for name, study in STUDIES.items():
        for key, f in _list_fields(study.config):
            if f.metadata.get("empty_ok"):
                seen.add((name, key))
                study.resolve("fast", [f"{key}=[]"])
            else:
                assert key in refused(name, f"{key}=[]"), (name, key)
    assert seen == meaningful


def test_degenerate_splits():
    msg = refused("irrl-digits", "data.valid_fraction=0")
    assert "data.valid_fraction=0.0" in msg and "> 0.0" in msg and "validation" in msg
    msg = refused("irrl-digits", "data.n_train=5")  # 10% of 5 images: none held out
    assert "valid_fraction" in msg and "n_train=5" in msg and "no image" in msg
    cfg = STUDIES["ptgm"].resolve("fast", ["pretrain.val_fraction=0"])  # no held-out episodes: losses on training data
    assert cfg.pretrain.val_fraction == 0.0
    assert "pretrain.val_fraction" in refused("ptgm", "pretrain.val_fraction=0.6")


@pytest.mark.parametrize(
    "study,override,words",
    [
        ("learned-rewards", "expert=3", ["expert is a section", "expert.KEY=VALUE"]),
        ("learned-rewards", "expert=abc", ["expert is a section"]),
        ("learned-rewards", "expert.ppo=[1]", ["expert.ppo is a section"]),
        ("learned-rewards", "expert=null", ["expert"]),
        ("learned-rewards", "seed=null", ["seed: no value given (null); expected an integer"]),
        ("learned-rewards", "expert.env=null", ["expert.env: no value given"]),
        ("learned-rewards", "seed=[1]", ["seed: expected an integer"]),
        ("learned-rewards", "seed={a: 1}", ["seed: expected an integer"]),
        ("learned-rewards", "seed=1.5", ["seed: expected an integer"]),
        ("learned-rewards", "seed=true", ["seed: expected an integer"]),
        ("preprocessing", "gamma=abc", ["gamma: expected a number"]),
        ("preprocessing", "gamma=[0.9]", ["gamma: expected a number"]),
        ("preprocessing", "gamma={a: 1}", ["gamma: expected a number"]),
        ("learned-rewards", "expert.ppo.net_arch=abc", ["expert.ppo.net_arch[0]: expected an integer"]),
        ("learned-rewards", "expert.ppo.net_arch={a: 1}", ["expert.ppo.net_arch: expected a list"]),
        ("learned-rewards", "expert.ppo.net_arch=64", ["expert.ppo.net_arch: expected a list"]),
        ("learned-rewards", "expert.ppo.device=[cpu]", ["expert.ppo.device: expected text"]),
        ("learned-rewards", "dataset.deterministic=maybe", ["dataset.deterministic: expected true or false"]),
        ("ptgm", "seeds=[0, null]", ["seeds[1]: no value given"]),
        ("ptgm", "seeds=[-1]", ["seeds[0]=-1 is out of range"]),
    ],
)
def test_wrong_types_are_refused(study, override, words):
    msg = refused(study, override)
    assert all(w in msg for w in words), msg


def _numeric_bounded(cls: type, prefix: str = "") -> typing.Iterator[tuple[str, type, bool, dataclasses.Field]]:
    """(key, number type, is a list, field) of every numeric field with a bound, through nested sections."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _numeric_bounded(tp, f"{prefix}{f.name}.")
            continue
        is_list = typing.get_origin(tp) in (list, tuple)
        item = typing.get_args(tp)[0] if is_list else tp
        if item in (int, float) and any(f.metadata.get(b) is not None for b in ("min", "max", "gt")):
            yield prefix + f.name, item, is_list, f


def _outside(tp: type, meta: typing.Mapping[str, typing.Any]) -> list[typing.Any]:
    """Values just outside each bound."""
    out = []
    if meta.get("min") is not None:
        out.append(math.ceil(meta["min"]) - 1 if tp is int else math.nextafter(meta["min"], -math.inf))
    if meta.get("gt") is not None:
        out.append(math.floor(meta["gt"]) if tp is int else meta["gt"])
    if meta.get("max") is not None:
        out.append(math.floor(meta["max"]) + 1 if tp is int else math.nextafter(meta["max"], math.inf))
    return out


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_bound_refuses_the_value_just_outside(name):
    study = STUDIES[name]
    checked = 0
    for key, tp, is_list, f in _numeric_bounded(study.config):
        for v in _outside(tp, f.metadata):
            override = f"{key}=[{v!r}]" if is_list else f"{key}={v!r}"
            msg = refused(name, override)
            assert key in msg and "out of range" in msg, (override, msg)
            checked += 1
    assert checked >= 5
