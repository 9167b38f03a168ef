"""Reward networks: imitation's RewardNet protocol r(s, a, s', done), its wrapper base, and the nets built on it.

As in imitation (`imitation.rewards.reward_nets`): a net knows its observation and action spaces; `forward`,
`predict_th` (a tensor) and `predict` (numpy) all take (state, action, next_state, done) in that order; a
`RewardNetWrapper` holds a `base` net and shares its spaces. Nets are saved and loaded with the one module
checkpoint format (`rewardlab.core.modules.save_module` / `load_module`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rewardlab.core.modules import register_legacy_format, register_module
from rewardlab.errors import RewardLabError


def _tensor(x: Any, device: torch.device) -> torch.Tensor:
    """`x` as a tensor on `device`; a read-only numpy array (imitation's trajectories) is copied, as torch asks."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()
    return torch.as_tensor(x, device=device)


class RewardNet(nn.Module):
    """A reward model r(state, action, next_state, done) -> (B,) float tensor (the imitation protocol).

    Subclasses are registered with `@register_module`, which records their constructor arguments, and tell the
    base their observation and action spaces.
    """

    def __init__(self, observation_space: spaces.Space | None, action_space: spaces.Space | None):
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space

    @property
    def device(self) -> torch.device:
        """The device of the first parameter, else of the first buffer, else cpu (parameterless nets)."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def forward(
        self, state: torch.Tensor, action: torch.Tensor | None, next_state: torch.Tensor, done: torch.Tensor | None
    ) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def predict_th(self, state: Any, action: Any, next_state: Any, done: Any) -> torch.Tensor:
        """Rewards (a tensor) for numpy or tensor inputs, without gradients, on the net's device; an input that is
        None stays None (nets that do not use it)."""
        dev = self.device
        s, a, s2, d = (None if x is None else _tensor(x, dev) for x in (state, action, next_state, done))
        return self(s, a, s2, d)

    def predict(self, state: Any, action: Any, next_state: Any, done: Any) -> np.ndarray:
        """Rewards as a numpy array (imitation's `predict`)."""
        return self.predict_th(state, action, next_state, done).cpu().numpy()


class RewardNetWrapper(RewardNet):
    """A reward net built on a `base` net (shaping, normalisation), with the base's spaces (imitation's wrapper)."""

    def __init__(self, base: RewardNet):
        super().__init__(base.observation_space, base.action_space)
        self.base = base


def space_config(space: spaces.Space) -> dict[str, Any]:
    """A Box or Discrete space as plain values (a net's config): bounds as one number when uniform, else lists."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):

        def bound(b: np.ndarray) -> Any:
            flat = np.asarray(b).reshape(-1)
            return flat[0].item() if flat.size and (flat == flat[0]).all() else np.asarray(b).tolist()

        return {
            "type": "Box",
            "shape": list(space.shape),
            "low": bound(space.low),
            "high": bound(space.high),
            "dtype": np.dtype(space.dtype).name,
        }
    raise RewardLabError(f"rewardlab's nets take Box or Discrete spaces, not {type(space).__name__} ({space})")


def space_from_config(cfg: dict[str, Any]) -> spaces.Space:
    """The space `space_config` recorded."""
    if cfg.get("type") == "Discrete":
        return spaces.Discrete(int(cfg["n"]), start=int(cfg.get("start", 0)))
    if cfg.get("type") == "Box":
        dtype, shape = np.dtype(cfg["dtype"]), tuple(int(x) for x in cfg["shape"])
        low, high = (np.broadcast_to(np.asarray(cfg[k], dtype=dtype), shape) for k in ("low", "high"))
        return spaces.Box(low, high, shape, dtype=dtype)
    raise RewardLabError(f"unknown space record {cfg!r}; expected a Box or Discrete space")


def is_image_space(space: spaces.Space) -> bool:
    """Stable-Baselines3's image test: a 3-d uint8 Box with bounds 0 and 255."""
    return (
        isinstance(space, spaces.Box)
        and len(space.shape) == 3
        and space.dtype == np.uint8
        and bool(np.all(space.low == 0))
        and bool(np.all(space.high == 255))
    )


def flat_dim(space: spaces.Space) -> int:
    """The width of a space's preprocessed, flattened input (one-hot for Discrete)."""
    return int(space.n) if isinstance(space, spaces.Discrete) else int(np.prod(space.shape))


def preprocess_input(x: Any, space: spaces.Space, normalize_images: bool = True) -> torch.Tensor:
    """Stable-Baselines3's `preprocess_obs` (as imitation applies it before a net): Discrete as one-hot floats,
    image Boxes divided by 255 (with `normalize_images`), other Boxes as floats."""
    x = torch.as_tensor(x)
    if isinstance(space, spaces.Discrete):
        return nn.functional.one_hot(x.long().reshape(-1), int(space.n)).float()
    if normalize_images and is_image_space(space):
        return x.float() / 255.0
    return x.float()


ACTIVATIONS: dict[str, type[nn.Module] | None] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "none": None,
}


class RunningNorm(nn.Module):
    """(x - running_mean) / sqrt(running_var + eps) with imitation's `RunningNorm` buffers; the statistics are
    applied as recorded, never updated (a converted net is a fixed function)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)
        self.register_buffer("running_mean", torch.zeros(int(num_features)))
        self.register_buffer("running_var", torch.ones(int(num_features)))
        self.register_buffer("count", torch.zeros((), dtype=torch.int))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)


def build_mlp(
    in_size: int,
    hid_sizes: tuple[int, ...],
    out_size: int = 1,
    activation: str = "relu",
    dropout: float = 0.0,
    flatten_input: bool = False,
    normalize_input: bool = False,
    squeeze: bool = True,
) -> nn.Sequential:
    """imitation's `networks.build_mlp` with its layer names (flatten, normalize_input, dense0, act0, dropout0, ...,
    dense_final, squeeze), so state_dict keys match; `normalize_input` is a `RunningNorm` of fixed statistics."""
    from collections import OrderedDict

    if activation not in ACTIVATIONS:
        raise RewardLabError(f"unknown activation '{activation}'; choose one of {', '.join(ACTIVATIONS)}")
    layers: dict[str, nn.Module] = {}
    if flatten_input:
        layers["flatten"] = nn.Flatten()
    if normalize_input:
        layers["normalize_input"] = RunningNorm(int(in_size))
    prev = int(in_size)
    act = ACTIVATIONS[activation]
    for i, size in enumerate(hid_sizes):
        layers[f"dense{i}"] = nn.Linear(prev, int(size))
        prev = int(size)
        if act is not None:
            layers[f"act{i}"] = act()
        if dropout > 0:
            layers[f"dropout{i}"] = nn.Dropout(float(dropout))
    layers["dense_final"] = nn.Linear(prev, int(out_size))
    if squeeze:
        if out_size != 1:
            raise RewardLabError("build_mlp: squeeze needs out_size=1")
        layers["squeeze"] = nn.Flatten(0)
    return nn.Sequential(OrderedDict(layers))


@register_module("reward.mlp")
class MlpRewardNet(RewardNet):
    """imitation's `BasicRewardNet`: an MLP (`build_mlp`, hid_sizes (32, 32) and ReLU by default) over the
    concatenated, flattened inputs it uses (s, a, s', done), each preprocessed as imitation does (Discrete one-hot,
    images / 255). Spaces are `space_config` records; inputs are raw (integer states and actions for Discrete)."""

    def __init__(
        self,
        observation_space: dict[str, Any],
        action_space: dict[str, Any],
        use_state: bool = True,
        use_action: bool = True,
        use_next_state: bool = False,
        use_done: bool = False,
        hid_sizes: tuple[int, ...] = (32, 32),
        activation: str = "relu",
        dropout: float = 0.0,
        normalize_input: bool = False,
        normalize_images: bool = True,
    ):
        obs, act = space_from_config(observation_space), space_from_config(action_space)
        super().__init__(obs, act)
        self.use_state, self.use_action = bool(use_state), bool(use_action)
        self.use_next_state, self.use_done = bool(use_next_state), bool(use_done)
        self.normalize_images = bool(normalize_images)
        size = (int(self.use_state) + int(self.use_next_state)) * flat_dim(obs)
        size += (flat_dim(act) if self.use_action else 0) + int(self.use_done)
        if size == 0:
            raise RewardLabError("MlpRewardNet must use at least one input (use_state, use_action, ...)")
        self.in_size = size
        self.mlp = build_mlp(size, tuple(hid_sizes), 1, activation, dropout, normalize_input=normalize_input)

    def inputs(self, state: Any, action: Any, next_state: Any, done: Any) -> torch.Tensor:
        """The MLP's input (B, in_size): the used inputs preprocessed, flattened and concatenated."""
        parts = []
        for use, x, space, name in (
            (self.use_state, state, self.observation_space, "state"),
            (self.use_action, action, self.action_space, "action"),
            (self.use_next_state, next_state, self.observation_space, "next_state"),
        ):
            if use:
                if x is None:
                    raise RewardLabError(f"this reward model uses the {name}; give it (a dataset that has it)")
                parts.append(preprocess_input(x, space, self.normalize_images).flatten(1))
        if self.use_done:
            n = len(parts[0]) if parts else len(torch.as_tensor(done))
            d = torch.zeros(n) if done is None else torch.as_tensor(done).float()
            parts.append(d.reshape(-1, 1).to(parts[0].device if parts else d.device))
        x = torch.cat(parts, dim=1) if len({len(p) for p in parts}) == 1 else None
        if x is None or x.shape[1] != self.in_size:
            raise RewardLabError(
                f"MlpRewardNet: inputs of shapes {[tuple(p.shape) for p in parts]} do not fit its spaces "
                f"(observations {self.observation_space}, actions {self.action_space})"
            )
        return x

    def forward(self, state, action, next_state, done):
        return self.mlp(self.inputs(state, action, next_state, done))


@register_module("reward.normalized")
class NormalizedRewardNet(RewardNetWrapper):
    """imitation's `NormalizedRewardNet`: the base's reward normalised by fixed running statistics,
    (r - mean) / sqrt(var + eps), i.e. imitation's `predict_processed(..., update_stats=False)` (imitation's own
    `predict` on the wrapper gives the base's reward: `net.base.predict` here)."""

    def __init__(self, base: RewardNet, eps: float = 1e-5):
        super().__init__(base)
        self.normalize_output_layer = RunningNorm(1, eps)

    def forward(self, state, action, next_state, done):
        return self.normalize_output_layer(self.base(state, action, next_state, done))


@register_module("reward.maze_mlp")
class MazeRewardMLP(RewardNet):
    """R(s, s'): the MazeRewardModel of Michaud et al. (2020): flatten (s, s') as raw grid codes,
    then Linear-Tanh layers and a bias-free Linear to one output (242-64-64-1 by default). With `use_action`,
    R(s, a, s'): the one-hot action joins the input."""

    def __init__(
        self, obs_shape: tuple[int, ...] = (11, 11), hidden: tuple[int, ...] = (64, 64), use_action: bool = False
    ):
        from rewardlab.envs.maze import GOAL

        self.obs_shape = tuple(int(x) for x in obs_shape)
        super().__init__(spaces.Box(0, GOAL, self.obs_shape, dtype=np.uint8), spaces.Discrete(4))
        self.use_action = bool(use_action)
        n_in = 2 * int(torch.tensor(self.obs_shape).prod()) + (self.action_space.n if self.use_action else 0)
        layers: list[nn.Module] = [nn.Flatten()]
        for h in hidden:
            layers += [nn.Linear(n_in, int(h)), nn.Tanh()]
            n_in = int(h)
        layers.append(nn.Linear(n_in, 1, bias=False))
        self.net = nn.Sequential(*layers)

    def pair_reward(self, pair: torch.Tensor) -> torch.Tensor:
        """Rewards (B,) for stacked (s, s') pairs of shape (B, 2, *obs_shape) (used for saliency)."""
        return self.net(pair.float()).squeeze(-1)

    def forward(self, state, action, next_state, done):
        if state.shape[1:] != self.obs_shape or next_state.shape != state.shape:
            raise RewardLabError(
                f"MazeRewardMLP expects states of shape (B, {self.obs_shape}), got "
                f"{tuple(state.shape)} and {tuple(next_state.shape)}"
            )
        pair = torch.stack([state, next_state], dim=1)
        if not self.use_action:
            return self.pair_reward(pair)
        if action is None:
            raise RewardLabError("this reward model is R(s, a, s'): it needs the actions (a dataset that has them)")
        one_hot = nn.functional.one_hot(torch.as_tensor(action).long().reshape(-1), self.action_space.n)
        return self.net(torch.cat([pair.flatten(1).float(), one_hot.float()], dim=1)).squeeze(-1)


@register_module("reward.atari_cnn")
class AtariRewardCNN(RewardNet):
    """R(s') on stacked 84x84 frames: the AtariRewardModel of Michaud et al. (2020), the NatureCNN feature extractor
    (input / 255; conv 32@8/4, 64@4/2, 64@3/1, ReLU; FC 512, ReLU) then Linear(512, 1). With `use_state`, R(s, s'):
    both stacks enter as channels."""

    def __init__(self, frames: int = 4, size: int = 84, n_actions: int = 4, use_state: bool = False):
        self.frames, self.size, self.use_state = int(frames), int(size), bool(use_state)
        super().__init__(
            spaces.Box(0, 255, (self.frames, self.size, self.size), dtype=np.uint8), spaces.Discrete(int(n_actions))
        )
        channels = self.frames * (2 if self.use_state else 1)
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, channels, self.size, self.size)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n_flat, 512), nn.ReLU())
        self.head = nn.Linear(512, 1)

    def frame_reward(self, x: torch.Tensor) -> torch.Tensor:
        """Rewards (B,) for the net's input channels (B, C, size, size), uint8 or float in [0, 255]."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.cnn[0].in_channels, self.size, self.size):
            raise RewardLabError(
                f"AtariRewardCNN expects frames of shape (B, {self.cnn[0].in_channels}, {self.size}, {self.size}), "
                f"got {tuple(x.shape)}"
            )
        return self.head(self.fc(self.cnn(x.float() / 255.0))).squeeze(-1)

    def forward(self, state, action, next_state, done):
        if self.use_state:
            if state is None:
                raise RewardLabError("this reward model is R(s, s'): it needs the states before each step")
            return self.frame_reward(torch.cat([torch.as_tensor(state), torch.as_tensor(next_state)], dim=1))
        return self.frame_reward(torch.as_tensor(next_state))


def build_cnn(
    in_channels: int, hid_channels: tuple[int, ...], out_size: int = 1, kernel_size: int = 3, squeeze: bool = True
) -> nn.Sequential:
    """imitation's `networks.build_cnn`: for each width a conv (3x3, stride 1, 'same' padding) and ReLU, then global
    average pooling, a linear layer to `out_size` and (for one output) a squeeze; its layer names (conv0, act0, ...,
    avg_pool, flatten, dense_final) are imitation's, so state_dict keys match."""
    from collections import OrderedDict

    layers: dict[str, nn.Module] = {}
    prev = int(in_channels)
    for i, c in enumerate(hid_channels):
        layers[f"conv{i}"] = nn.Conv2d(prev, int(c), kernel_size, stride=1, padding="same")
        layers[f"act{i}"] = nn.ReLU()
        prev = int(c)
    layers["avg_pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers["dense_final"] = nn.Linear(prev, int(out_size))
    if squeeze:
        if out_size != 1:
            raise RewardLabError("build_cnn: squeeze needs out_size=1")
        layers["squeeze"] = nn.Flatten(0)
    return nn.Sequential(OrderedDict(layers))


@register_module("reward.cnn")
class CnnRewardNet(RewardNet):
    """imitation's `CnnRewardNet` on channel-first images (C, H, W) in [0, 255]: the used inputs (s and/or s') are
    concatenated as channels, divided by 255 (imitation's preprocessing), and go through `build_cnn` with
    `hid_channels`; with `use_action` the net has one output per action and the taken action's is the reward (as
    imitation, for discrete actions); with `use_done` the outputs double, the second half for done transitions.
    Actions are integer indices here (imitation feeds one-hot vectors after its own preprocessing). With
    `hwc_format` the observations are (H, W, C) and are transposed to channels first (imitation's default)."""

    def __init__(
        self,
        obs_shape: tuple[int, ...] = (3, 64, 64),
        n_actions: int = 15,
        use_state: bool = True,
        use_action: bool = True,
        use_next_state: bool = False,
        use_done: bool = False,
        hid_channels: tuple[int, ...] = (32, 32),
        hwc_format: bool = False,
    ):
        self.obs_shape, self.hwc_format = tuple(int(x) for x in obs_shape), bool(hwc_format)
        if len(self.obs_shape) != 3:
            layout = "(H, W, C)" if self.hwc_format else "(C, H, W)"
            raise RewardLabError(f"CnnRewardNet needs image observations {layout}, got shape {self.obs_shape}")
        super().__init__(spaces.Box(0, 255, self.obs_shape, dtype=np.uint8), spaces.Discrete(int(n_actions)))
        self.use_state, self.use_action = bool(use_state), bool(use_action)
        self.use_next_state, self.use_done = bool(use_next_state), bool(use_done)
        if not (self.use_state or self.use_next_state):
            raise RewardLabError(
                "CnnRewardNet must take the state or the next state as input (use_state or use_next_state)"
            )
        in_channels = self.obs_shape[-1 if self.hwc_format else 0] * (int(self.use_state) + int(self.use_next_state))
        out = (int(n_actions) if self.use_action else 1) * (2 if self.use_done else 1)
        self.cnn = build_cnn(in_channels, tuple(int(c) for c in hid_channels), out, squeeze=out == 1)

    def images(self, state: Any, next_state: Any) -> torch.Tensor:
        """The CNN's input (B, C', H, W) in [0, 1]: the used observations concatenated as channels."""
        parts = []
        for use, x, name in ((self.use_state, state, "state"), (self.use_next_state, next_state, "next_state")):
            if use:
                if x is None:
                    raise RewardLabError(f"this reward model uses the {name}; give it (a dataset that has it)")
                x = torch.as_tensor(x)
                if x.ndim != 4 or tuple(x.shape[1:]) != self.obs_shape:
                    raise RewardLabError(
                        f"CnnRewardNet expects {name} of shape (B, {', '.join(map(str, self.obs_shape))}), "
                        f"got {tuple(x.shape)}"
                    )
                parts.append((x.permute(0, 3, 1, 2) if self.hwc_format else x).float() / 255.0)
        return torch.cat(parts, dim=1)

    def forward(self, state, action, next_state, done):
        out = self.cnn(self.images(state, next_state))
        if not (self.use_action or self.use_done):
            return out
        n = len(out)
        idx = torch.zeros(n, dtype=torch.long, device=out.device)
        if self.use_action:
            if action is None:
                raise RewardLabError(
                    "this reward model is R(s, a, ...): it needs the actions (a dataset that has them)"
                )
            idx = torch.as_tensor(action, device=out.device).long().reshape(n)
        if self.use_done:
            d = torch.zeros(n, device=out.device) if done is None else torch.as_tensor(done, device=out.device)
            idx = idx + d.long().reshape(n) * (out.shape[1] // 2)
        return out.gather(1, idx[:, None]).squeeze(1)


# Files written before the one module format: {"kind": "rewardlab.reward_net", "spec": {"name": ..., ...}}.
_LEGACY_NETS = {
    "maze_mlp": "reward.maze_mlp",
    "tabular": "reward.tabular",
    "shaped": "reward.shaped",
    "mountain_car": "reward.mountain_car",
}
_LEGACY_POTENTIALS = {"tabular": "potential.tabular", "linear": "potential.linear", "mlp": "potential.mlp"}


def _legacy_spec(spec: dict[str, Any], names: dict[str, str]) -> tuple[str, dict[str, Any]]:
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in names:
        raise RewardLabError(f"an older checkpoint names an unknown net '{name}'")
    if name == "shaped" and names is _LEGACY_NETS:
        base, pot = _legacy_spec(spec["base"], _LEGACY_NETS), _legacy_spec(spec["potential"], _LEGACY_POTENTIALS)
        spec["base"], spec["potential"] = ({"kind": k, "config": c} for k, c in (base, pot))
    return names[name], spec


register_legacy_format("rewardlab.reward_net", lambda ckpt: _legacy_spec(ckpt.get("spec", {}), _LEGACY_NETS))
