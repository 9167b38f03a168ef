"""The agents' settings as typed config dataclasses (help, bounds, choices per field). They live apart from
the agents so that reading a config (`--help`, `print-config`, a study's declaration) imports no torch or numba."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rewardlab.config import param
from rewardlab.errors import RewardLabError
from rewardlab.rewards.kinds import check_reward_kind

if TYPE_CHECKING:
    from rewardlab.envs.four_rooms import FourRooms


# ---- ram
MODELS = ("ram", "dtram")


@dataclass
class RAMConfig:
    """Architecture of a RAM / DT-RAM agent (defaults: the IRRL paper's scripts)."""

    model: str = param("ram", help="ram (fixed 18 glimpses) or dtram (learns when to stop)", choices=MODELS)
    patch_size: int = param(4, help="side of the first (finest) glimpse patch, in pixels", min=1, max=64)
    num_patches: int = param(1, help="patches per glimpse (multi-scale when > 1)", min=1, max=5)
    glimpse_scale: float = param(
        1.0, help="each further patch is this many times larger, then pooled to patch_size", min=1.0, max=8.0
    )
    num_glimpses: int = param(18, help="glimpses per image (DT-RAM: the most it may take)", min=1, max=100)
    glimpse_hidden: int = param(128, help="hidden units of the 'what' (patch) branch", min=1)
    loc_hidden: int = param(128, help="hidden units of the 'where' (location) branch", min=1)
    hidden_size: int = param(256, help="RNN state size (must equal glimpse_hidden + loc_hidden)", min=2)
    std: float = param(0.05, help="standard deviation of the Gaussian location policy", min=1e-4, max=1.0)
    num_classes: int = param(10, help="number of labels", min=2)
    channels: int = param(1, help="image channels", min=1)

    def validate(self) -> None:
        if self.glimpse_hidden + self.loc_hidden != self.hidden_size:
            raise RewardLabError(
                f"hidden_size ({self.hidden_size}) must equal glimpse_hidden + loc_hidden "
                f"({self.glimpse_hidden} + {self.loc_hidden}): the glimpse vector feeds the RNN"
            )
        for i, s in enumerate(glimpse_sizes(self)):
            if s % self.patch_size:
                raise RewardLabError(
                    f"glimpse patch {i} is {s} pixels, not a multiple of patch_size "
                    f"{self.patch_size}; pick glimpse_scale so every patch pools evenly"
                )


def glimpse_sizes(cfg: RAMConfig) -> list[int]:
    """Side of each patch of a glimpse, finest first (the original's int(scale * previous))."""
    sizes = [cfg.patch_size]
    for _ in range(cfg.num_patches - 1):
        sizes.append(int(cfg.glimpse_scale * sizes[-1]))
    return sizes


@dataclass
class LossConfig:
    """How the hybrid loss is formed (docs/originals.md, IRRL digit recognition: rewards, loss)."""

    reward: str = param(
        "linear_clipping",
        help="accuracy, accuracy_pm1, linear_clipping, linear_noclipping, log_clipping or log_noclipping",
    )
    prior: float = param(0.1, help="label prior p(y) subtracted from q (linear) or log q (log)", min=1e-6, max=0.999)
    detach_reward: bool = param(
        False,
        help="detach the reward from the graph; false is the paper's behaviour, "
        "where the REINFORCE and baseline terms also train the classifier",
    )
    latency_discount: float = param(
        0.99, help="DT-RAM: the reward is discounted by this to the power t_stop", min=0.0, max=1.0
    )
    reinforce_weight: float = param(0.01, help="weight of the REINFORCE term", min=0.0)
    baseline_weight: float = param(1.0, help="weight of the baseline MSE term", min=0.0)

    def validate(self) -> None:
        check_reward_kind(self.reward)


# ---- ram_train
@dataclass
class TrainConfig:
    """Optimisation of a RAM agent (defaults: the IRRL paper's scripts)."""

    epochs: int = param(1500, help="training epochs (0: keep the initial model)", min=0)
    batch_size: int = param(256, help="images per update", min=1)
    lr: float = param(3e-4, help="Adam learning rate (constant: the original's plateau schedule never fires)", gt=0.0)
    checkpoint_every: int = param(200, help="keep a checkpoint every this many epochs (and at epoch 0)", min=1)
    eval_batch_size: int = param(1000, help="images per evaluation batch", min=1)
    threads: int = param(
        0,
        help="torch threads while training (0: every available core); 1 when several runs share the machine",
        min=0,
        max=256,
    )


# ---- skills
SKILL_REWARDS = ("log_clipping", "log_noclipping", "linear_clipping", "linear_noclipping", "accuracy")


@dataclass
class SkillConfig:
    """The learner (defaults: the paper's scripts on the large grid)."""

    grid: str = param(
        "large", help="four-room layout: large (104 cells) or small (24 cells)", choices=("large", "small")
    )
    skills: int = param(128, help="number of skills K", min=2, max=4096)
    episode_length: int = param(0, help="steps per episode (0: the grid's, 20 large / 8 small)", min=0, max=1000)
    reward: str = param(
        "log_clipping",
        help="log_clipping, log_noclipping, linear_clipping, linear_noclipping or accuracy",
        choices=SKILL_REWARDS,
    )
    ensemble: int = param(1, help="discriminator ensemble members E (DISDAIN: 2)", min=1, max=16)
    bonus_weight: float = param(0.0, help="weight w of the DISDAIN bonus Q table when acting (DISDAIN: 20)", min=0.0)
    epsilon: float = param(0.001, help="epsilon-greedy exploration while training", min=0.0, max=1.0)
    eval_epsilon: float = param(0.001, help="epsilon-greedy exploration while evaluating", min=0.0, max=1.0)
    gamma: float = param(0.99, help="discount", min=0.0, max=1.0)
    lam: float = param(0.7, help="lambda of the Q(lambda) targets", min=0.0, max=1.0)
    lr: float = param(0.004, help="SGD learning rate", gt=0.0)
    batch_size: int = param(32, help="trajectories per iteration (the original's 2 devices x 16)", min=1)
    eval_batch_size: int = param(256, help="trajectories per evaluation", min=1)

    def validate(self) -> None:
        if self.reward not in SKILL_REWARDS:
            raise RewardLabError(f"unknown reward '{self.reward}'; choose one of {', '.join(SKILL_REWARDS)}")
        if self.bonus_weight > 0 and self.ensemble < 2:
            raise RewardLabError("the DISDAIN bonus needs an ensemble of at least 2 discriminators (ensemble=2)")

    def horizon(self, world: FourRooms) -> int:
        return self.episode_length or world.episode_length


# ---- ptgm
@dataclass
class CodebookConfig:
    """How the goal codebook is built from the offline data."""

    n_codes: int = param(50, help="codebook size N", min=2)
    stride: int = param(6, help="take every stride-th dataset state", min=1)
    offset: int = param(8, help="... starting at this index", min=0)
    method: str = param(
        "tsne_kmeans",
        help="tsne_kmeans (PTGM), kmeans (k-means on the raw features) or random "
        "(N dataset states drawn uniformly: the no-clustering ablation)",
    )
    perplexity: float = param(30.0, help="t-SNE perplexity", min=1.0)
    seed: int = param(1, help="seed of t-SNE, k-means++ and random draws", min=0)

    def validate(self) -> None:
        if self.method not in ("tsne_kmeans", "kmeans", "random"):
            raise RewardLabError(f"unknown codebook method '{self.method}'; choose tsne_kmeans, kmeans or random")


@dataclass
class PretrainConfig:
    """Behaviour cloning of the low-level policy and training of the goal prior (both on hindsight windows)."""

    steps: int = param(20_000, help="gradient steps (each net); the original ran 580k-677k, 20-50k suffice", min=0)
    batch: int = param(128, help="windows per batch (each of `horizon` steps)", min=1)
    horizon: int = param(10, help="window length; goals are 1..horizon steps ahead (k of the high level)", min=1)
    lr: float = param(1e-3, help="RAdam learning rate", gt=0.0)
    hidden: int = param(128, help="hidden width", min=1)
    blocks: int = param(3, help="BatchNorm blocks", min=0)
    warm_clip_steps: int = param(100, help="gradient-norm clip 0.001 for this many first steps (the original's)", min=0)
    val_fraction: float = param(
        0.01,
        help="episodes held out for validation (0: none; the logged losses are then measured on training windows)",
        min=0.0,
        max=0.5,
    )
    log_every: int = param(1000, help="steps between validation losses", min=1)
    seed: int = param(0, help="seed of initialisation and sampling", min=0)


# ---- hl_sac
@dataclass
class HLSACConfig:
    """High-level SAC over codebook indices (defaults: the paper's Kitchen settings)."""

    env_steps: int = param(1_500_000, help="environment steps of RL (warm-up excluded)", min=0)
    k: int = param(10, help="environment steps per high-level action", min=1)
    n_envs: int = param(8, help="kitchens stepped together during collection", min=1)
    batch: int = param(256, help="SAC batch size", min=1)
    buffer: int = param(1_000_000, help="replay capacity (high-level transitions)", min=1)
    gamma: float = param(0.99, help="high-level discount", min=0.0, max=1.0)
    tau: float = param(0.005, help="target-critic averaging rate (0 would freeze the target critics)", gt=0.0, max=1.0)
    lr: float = param(3e-4, help="Adam learning rate of policy, critics and alpha", gt=0.0)
    grad_clip: float = param(10.0, help="gradient-norm clip of every network (0 would zero every gradient)", gt=0.0)
    target_divergence: float = param(5.0, help="target KL(prior || policy) that alpha is tuned towards", min=0.0)
    target_entropy_ratio: float = param(
        0.5, help="without the prior: target entropy as a fraction of log N", min=0.0, max=1.0
    )
    init_log_alpha: float = param(0.0, help="initial log alpha")
    critic_hidden: int = param(256, help="critic width", min=1)
    critic_layers: int = param(5, help="critic hidden layers after the input layer (the original: 5)", min=0)
    warmup: int = param(
        5000,
        help="high-level transitions collected before updates start (not counted in env_steps, as in the original)",
        min=0,
    )
    updates_per_transition: float = param(
        1.0, help="gradient updates per high-level transition (0 would never update the policy)", gt=0.0
    )
    use_prior: bool = param(
        True,
        help="regularise towards the goal prior and start from it (PTGM); false: "
        "entropy-regularised SAC from scratch (the no-prior ablation)",
    )
    store_next_code: bool = param(
        False,
        help="store the next high-level step's code with a transition, as the "
        "released code did (an off-by-one); false stores the executed one",
    )
    eval_every: int = param(50_000, help="environment steps between evaluations", min=1)
    eval_episodes: int = param(10, help="stochastic episodes per evaluation", min=1)
    low_deterministic: bool = param(False, help="run the low-level policy's mean instead of sampling")

    def validate(self) -> None:
        if self.batch > self.buffer:
            raise RewardLabError(
                f"batch={self.batch} is larger than buffer={self.buffer}: updates wait for a full batch in the "
                "replay, so none would ever run; give batch <= buffer"
            )


# ---- flat_sac
@dataclass
class FlatSACConfig:
    """Flat SAC baseline settings."""

    n_envs: int = param(8, help="kitchens stepped together", min=1)
    policy_layers: int = param(5, help="policy hidden layers of 256", min=1)
    critic_layers: int = param(2, help="critic hidden layers of 256", min=1)
    buffer: int = param(100_000, help="replay capacity", min=1)
    batch: int = param(256, help="batch size", min=1)
    lr: float = param(3e-4, help="learning rate", gt=0.0)
    gamma: float = param(0.99, help="discount", min=0.0, max=1.0)
    tau: float = param(0.005, help="target averaging rate (0 would freeze the target critics)", gt=0.0, max=1.0)
    learning_starts: int = param(5000, help="environment steps of random actions before updates", min=0)
    gradient_steps: int = param(1, help="updates after every vectorised step (of n_envs environment steps)", min=1)


# ---- ppo
@dataclass
class PPOConfig:
    """PPO settings; defaults are the maze settings of Michaud et al. (2020) (SB3 defaults elsewhere)."""

    total_timesteps: int = param(45_000, help="environment steps to train for", min=1)
    n_envs: int = param(1, help="parallel environments (the maze paper: 1; the RL Zoo's Atari: 8)", min=1)
    learning_rate: float = param(1e-4, help="initial Adam learning rate", gt=0.0, max=1.0)
    lr_schedule: str = param(
        "linear", help="'linear' decays the learning rate to 0, 'constant' keeps it", choices=("linear", "constant")
    )
    gamma: float = param(0.97, help="discount factor", min=0.0, max=1.0)
    n_steps: int = param(2048, help="steps per environment per update", min=1)
    batch_size: int = param(
        64,
        help="minibatch size; SB3 needs at least 2 (it normalises advantages per minibatch) and one that "
        "divides n_steps * n_envs",
        min=2,
    )
    n_epochs: int = param(10, help="optimisation epochs per update", min=1)
    gae_lambda: float = param(0.95, help="GAE lambda", min=0.0, max=1.0)
    clip_range: float = param(0.2, help="PPO clip range (0 would clip every update away)", gt=0.0)
    clip_schedule: str = param(
        "constant",
        help="'linear' decays the clip range to 0 (the RL Zoo's Atari setting)",
        choices=("linear", "constant"),
    )
    ent_coef: float = param(0.0, help="entropy bonus coefficient", min=0.0)
    vf_coef: float = param(0.5, help="value loss coefficient", min=0.0)
    policy: str = param(
        "MlpPolicy",
        help="SB3 policy: MlpPolicy (tanh MLP of net_arch), CnnPolicy (NatureCNN on image stacks, SB3's defaults) or "
        "ImpalaCnnPolicy (the Procgen paper's IMPALA CNN, 16-32-32 residual stacks, 256 features)",
        choices=("MlpPolicy", "CnnPolicy", "ImpalaCnnPolicy"),
    )
    net_arch: list[int] = param(
        default_factory=lambda: [64, 64],
        help="policy and value MLP widths of MlpPolicy (empty: linear policy and value)",
        min=1,
        empty_ok=True,
    )
    device: str = param(
        "cpu", help="torch device for the policy; SB3 MLP policies are fastest on cpu", choices=("auto", "cpu", "cuda")
    )
    checkpoint_every: int = param(10_000, help="save a resumable checkpoint every this many steps", min=1)

    def validate(self) -> None:
        """What SB3's PPO asserts on (or warns about) when it is built, refused here before anything runs."""
        rollout = self.n_steps * self.n_envs
        if rollout <= 1:
            raise RewardLabError(
                f"n_steps * n_envs = {self.n_steps} * {self.n_envs} = {rollout} must be greater than 1: SB3 normalises "
                "advantages over each rollout, which needs at least 2 steps"
            )
        if rollout % self.batch_size:
            divisors = {d for k in range(1, math.isqrt(rollout) + 1) if rollout % k == 0 for d in (k, rollout // k)}
            fits = max(d for d in divisors if 2 <= d <= self.batch_size)
            why = (
                f"is larger than the rollout SB3 splits into minibatches, n_steps * n_envs = {self.n_steps} * "
                f"{self.n_envs} = {rollout}"
                if self.batch_size > rollout
                else f"does not divide n_steps * n_envs = {self.n_steps} * {self.n_envs} = {rollout}: SB3 would "
                f"train on a truncated minibatch of {rollout % self.batch_size} steps every epoch"
            )
            raise RewardLabError(
                f"batch_size={self.batch_size} {why}; give a batch_size that divides {rollout} (e.g. {fits}) or "
                "change n_steps or n_envs"
            )
