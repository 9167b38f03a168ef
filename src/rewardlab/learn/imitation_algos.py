"""imitation's reward learning run on a registered Gymnasium env: preference comparisons with its agent (SB3 PPO)
trained alongside the reward, and AIRL from an expert's demonstrations; each returns the imitation reward net and
the trained agent. Needs imitation (`pip install --no-deps "imitation==1.0.1"`)."""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.agents.configs import PPOConfig
from rewardlab.agents.ppo import make_ppo
from rewardlab.errors import RewardLabError
from rewardlab.rewards.io import IMITATION_INSTALL

try:
    from imitation.algorithms import preference_comparisons as pc
    from imitation.data import rollout
    from imitation.data.wrappers import RolloutInfoWrapper
    from imitation.rewards import reward_nets as rn
    from imitation.util import logger as imitation_logger
    from imitation.util import networks
except ImportError as e:  # pragma: no cover - exercised only without imitation
    raise RewardLabError(
        f"learning rewards with imitation needs the imitation package ({e}); install it with: {IMITATION_INSTALL}"
    ) from None


def make_venv(env_id: str, n_envs: int, seed: int) -> Any:
    """An SB3 DummyVecEnv of `n_envs` copies of `env_id`, each with imitation's `RolloutInfoWrapper`, seeded."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    import rewardlab.envs  # noqa: F401  (registers the environments)

    venv = DummyVecEnv([lambda: RolloutInfoWrapper(gym.make(env_id)) for _ in range(n_envs)])
    venv.seed(seed)
    return venv


@contextlib.contextmanager
def _swapped(module: Any, name: str, value: Any) -> Iterator[None]:
    """`module.<name>` replaced by `value` for the block: imitation's tqdm progress bars made quiet off a terminal
    (`disable=None`), as rewardlab's own are."""
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


def _logger(folder: Path) -> Any:
    return imitation_logger.configure(folder=str(folder), format_strs=["csv"])


def train_preference_comparisons(
    env_id: str,
    cfg: Any,
    seed: int,
    log_dir: Path,
    *,
    use_action: bool = False,
    use_next_state: bool = True,
) -> tuple[Any, Any, dict[str, float]]:
    """imitation's `PreferenceComparisons` (synthetic preferences from the env's reward) with an `AgentTrainer` PPO
    trained on the learned reward alongside it; returns (reward net, agent, final stats)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    agent_cfg: PPOConfig = cfg.agent
    venv = make_venv(env_id, agent_cfg.n_envs, seed)
    log = _logger(log_dir)
    net = rn.BasicRewardNet(
        venv.observation_space,
        venv.action_space,
        use_action=use_action,
        use_next_state=use_next_state,
        hid_sizes=tuple(cfg.reward_hidden),
        normalize_input_layer=networks.RunningNorm,
    )
    agent = make_ppo(agent_cfg, venv, seed)
    trainer_agent = pc.AgentTrainer(
        algorithm=agent,
        reward_fn=net,
        venv=venv,
        rng=rng,
        exploration_frac=cfg.exploration_frac,
        custom_logger=log,
    )
    trainer = pc.PreferenceComparisons(
        trainer_agent,
        net,
        num_iterations=cfg.iterations,
        fragmenter=pc.RandomFragmenter(rng=rng, warning_threshold=0),
        preference_gatherer=pc.SyntheticGatherer(rng=rng),
        reward_trainer=pc.BasicRewardTrainer(
            pc.PreferenceModel(net), pc.CrossEntropyRewardLoss(), rng=rng, epochs=cfg.reward_epochs
        ),
        fragment_length=cfg.fragment_length,
        transition_oversampling=cfg.transition_oversampling,
        initial_comparison_frac=cfg.initial_comparison_frac,
        allow_variable_horizon=True,
        custom_logger=log,
    )
    with _swapped(pc, "tqdm", functools.partial(pc.tqdm, disable=None)):
        stats = trainer.train(total_timesteps=agent_cfg.total_timesteps, total_comparisons=cfg.total_comparisons)
    return net, agent, {k: float(v) for k, v in stats.items()}


def train_airl(
    env_id: str,
    cfg: Any,
    expert: Any,
    seed: int,
    log_dir: Path,
    *,
    use_action: bool = False,
    use_next_state: bool = True,
    gamma: float = 0.99,
) -> tuple[Any, Any, dict[str, float]]:
    """imitation's AIRL from `cfg.demo_timesteps` transitions of `expert` (an SB3 model, deterministic) with a PPO
    generator; returns (the chosen reward net: `reward_test` for `cfg.reward == 'base'`, else `reward_train`,
    generator, stats)."""
    from imitation.algorithms.adversarial import common as adversarial_common
    from imitation.algorithms.adversarial.airl import AIRL

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen_cfg: PPOConfig = cfg.gen
    demo_venv = make_venv(env_id, 8, seed + 1)
    demos = rollout.rollout(
        expert,
        demo_venv,
        rollout.make_sample_until(min_timesteps=cfg.demo_timesteps),
        rng=rng,
        deterministic_policy=True,
    )
    venv = make_venv(env_id, gen_cfg.n_envs, seed)
    net = rn.BasicShapedRewardNet(
        venv.observation_space,
        venv.action_space,
        reward_hid_sizes=tuple(cfg.reward_hidden),
        potential_hid_sizes=tuple(cfg.potential_hidden),
        use_action=use_action,
        use_next_state=use_next_state,
        discount_factor=gamma,
    )
    gen = make_ppo(gen_cfg, venv, seed)
    airl = AIRL(
        demonstrations=demos,
        demo_batch_size=cfg.demo_batch_size,
        venv=venv,
        gen_algo=gen,
        reward_net=net,
        n_disc_updates_per_round=cfg.disc_updates_per_round,
        allow_variable_horizon=True,
        custom_logger=_logger(log_dir),
    )
    quiet_tqdm = types.SimpleNamespace(tqdm=functools.partial(adversarial_common.tqdm.tqdm, disable=None))
    with _swapped(adversarial_common, "tqdm", quiet_tqdm):
        airl.train(gen_cfg.total_timesteps)
    reward = airl.reward_test if cfg.reward == "base" else airl.reward_train
    return reward, gen, {"demo_transitions": float(sum(len(t) for t in demos)), "demo_episodes": float(len(demos))}
