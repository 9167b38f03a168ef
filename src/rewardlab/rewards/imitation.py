"""imitation's reward nets in and out: `from_imitation` converts one into the rewardlab net that computes the same
rewards (its config from the imitation module's attributes and spaces, its weights copied), and `to_imitation`
wraps a rewardlab net as an imitation `RewardNet` (for `RewardVecEnvWrapper`, preference comparisons, AIRL, ...).

Supported: `BasicRewardNet` (-> `reward.mlp`), `CnnRewardNet` (-> `reward.cnn`), `ShapedRewardNet` and
`BasicShapedRewardNet` with a `BasicPotentialMLP` or `BasicPotentialCNN` (-> `reward.shaped` with
`potential.basic_mlp` or `potential.cnn`, no shift) and `NormalizedRewardNet` with a `RunningNorm` or `EMANorm`
(-> `reward.normalized`, its statistics fixed). imitation preprocesses inputs in `predict` (Discrete one-hot,
images / 255); rewardlab nets take raw inputs and preprocess them the same way in `forward`, so the converted net's
`predict` on numpy inputs equals imitation's. Reading a pickled file is `rewardlab.rewards.io.load_reward`'s job.

Needs imitation (`pip install --no-deps "imitation==1.0.1"`); this module imports it."""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from rewardlab.errors import RewardLabError
from rewardlab.rewards.io import IMITATION_INSTALL

try:
    from imitation.rewards import reward_nets as im
    from imitation.util import networks as im_networks
except ImportError as e:  # pragma: no cover - exercised only without imitation
    raise RewardLabError(
        f"rewardlab's imitation interop needs the imitation package ({e}); install it with: {IMITATION_INSTALL}"
    ) from None

from rewardlab.rewards.nets import (  # noqa: E402  (after the imitation check)
    ACTIVATIONS,
    CnnRewardNet,
    MlpRewardNet,
    NormalizedRewardNet,
    RewardNet,
    RunningNorm,
    is_image_space,
    space_config,
)
from rewardlab.rewards.shaping import BasicPotentialMLP, CnnPotential, ShapedRewardNet  # noqa: E402

SUPPORTED = (
    "BasicRewardNet, CnnRewardNet, BasicShapedRewardNet / ShapedRewardNet (with a BasicPotentialMLP or "
    "BasicPotentialCNN) and NormalizedRewardNet (with a RunningNorm or EMANorm)"
)


class RewardlabRewardNet(im.RewardNet):
    """An imitation `RewardNet` computing a rewardlab reward net: imitation's preprocessing (one-hot, images / 255)
    is undone before the rewardlab net, which preprocesses raw inputs itself, so both libraries' `predict` agree."""

    def __init__(self, net: RewardNet):
        super().__init__(net.observation_space, net.action_space, normalize_images=True)
        self.net = net

    def forward(
        self, state: torch.Tensor, action: torch.Tensor, next_state: torch.Tensor, done: torch.Tensor
    ) -> torch.Tensor:
        obs, act = self.observation_space, self.action_space
        return self.net(raw_input(state, obs), raw_input(action, act), raw_input(next_state, obs), done)


def raw_input(x: torch.Tensor | None, space: spaces.Space, normalize_images: bool = True) -> torch.Tensor | None:
    """The raw input that imitation's preprocessing turned into `x`: one-hot back to indices, images back to
    [0, 255] (rounded for integer images); other inputs as they are."""
    if x is None:
        return None
    if isinstance(space, spaces.Discrete):
        return x.argmax(-1) if x.ndim >= 2 and x.shape[-1] == int(space.n) else x.long()
    if normalize_images and is_image_space(space):
        return torch.round(x * 255.0)
    return x


def to_imitation(net: RewardNet) -> RewardlabRewardNet:
    """A rewardlab reward net as an imitation `RewardNet` (its parameters shared, not copied)."""
    if not isinstance(net, RewardNet):
        raise RewardLabError(f"to_imitation takes a rewardlab RewardNet, not a {type(net).__name__}")
    if not isinstance(net.observation_space, spaces.Space) or not isinstance(net.action_space, spaces.Space):
        raise RewardLabError(f"this {type(net).__name__} does not name its observation and action spaces")
    return RewardlabRewardNet(net)


# ------------------------------------------------------------------------------------------------- conversion
def _unsupported(where: str, what: str) -> RewardLabError:
    return RewardLabError(f"{where} holds {what}, which rewardlab cannot convert; it converts {SUPPORTED}")


def _activation_name(layer: nn.Module, where: str) -> str:
    for name, cls in ACTIVATIONS.items():
        if cls is not None and type(layer) is cls and repr(layer) == repr(cls()):
            return name
    raise _unsupported(where, f"an MLP with the activation {layer!r}")


def _mlp_spec(seq: nn.Module, where: str) -> dict[str, Any]:
    """The `build_mlp` arguments of an imitation MLP: hidden sizes, activation, dropout, input normalisation."""
    linears = [m for m in seq.children() if isinstance(m, nn.Linear)]
    acts = {_activation_name(m, where) for m in seq.children() if type(m) in [c for c in ACTIVATIONS.values() if c]}
    drops = {float(m.p) for m in seq.children() if isinstance(m, nn.Dropout)}
    norms = [m for m in seq.children() if isinstance(m, im_networks.BaseNorm)]
    known = (nn.Linear, nn.Dropout, nn.Flatten, im_networks.BaseNorm, im_networks.SqueezeLayer)
    others = [m for m in seq.children() if not isinstance(m, known) and type(m) not in ACTIVATIONS.values()]
    if others or not linears or len(acts) > 1 or len(drops) > 1 or any(m.bias is None for m in linears):
        raise _unsupported(where, f"an MLP of another layout ({seq})")
    if any(abs(m.eps - 1e-5) > 1e-12 for m in norms):
        raise _unsupported(where, "an MLP whose input normaliser has eps other than 1e-5")
    return {
        "hid_sizes": tuple(m.out_features for m in linears[:-1]),
        "activation": acts.pop() if acts else "none",
        "dropout": drops.pop() if drops else 0.0,
        "normalize_input": bool(norms),
    }


def _cnn_channels(seq: nn.Module, where: str) -> tuple[int, ...]:
    """The hidden widths of an imitation `build_cnn` net with rewardlab's layout (3x3, stride 1, 'same', ReLU)."""
    convs = [m for m in seq.children() if isinstance(m, nn.Conv2d)]
    for m in convs:
        if (
            m.kernel_size != (3, 3)
            or m.stride != (1, 1)
            or m.padding != "same"
            or m.dilation != (1, 1)
            or m.groups != 1
        ):
            raise _unsupported(where, f"a CNN with {m} (rewardlab's take 3x3 convolutions, stride 1, 'same' padding)")
    if any(isinstance(m, nn.Dropout) for m in seq.children()):
        raise _unsupported(where, "a CNN with dropout")
    acts = [m for m in seq.children() if type(m) in [c for c in ACTIVATIONS.values() if c]]
    if len(acts) != len(convs) or any(type(m) is not nn.ReLU for m in acts):
        raise _unsupported(where, "a CNN whose activation is not ReLU")
    return tuple(m.out_channels for m in convs)


def _copy_layers(dst: nn.Module, src: nn.Module, where: str) -> None:
    """Copy the weights of one imitation Sequential into its rewardlab twin, layer by layer in order."""
    a, b = [m for m in dst.children() if list(m.state_dict())], [m for m in src.children() if list(m.state_dict())]
    if len(a) != len(b):
        raise _unsupported(where, f"a net of another layout ({src})")
    for d, s in zip(a, b):
        state = s.state_dict()
        if isinstance(d, RunningNorm):  # EMANorm's extra buffers only drive its updates
            state = {k: state[k] for k in ("running_mean", "running_var", "count")}
        try:
            d.load_state_dict(state)
        except RuntimeError as e:
            raise _unsupported(where, f"a net of another layout ({str(e).splitlines()[0]})") from None


def _check_images(net: Any, where: str) -> None:
    if not getattr(net, "normalize_images", True):
        raise _unsupported(where, f"a {type(net).__name__} with normalize_images=False")


def _potential(pot: Any, obs_space: spaces.Space, normalize_images: bool, where: str) -> nn.Module:
    if isinstance(pot, im.BasicPotentialMLP):
        spec = _mlp_spec(pot._potential_net, where)
        out = BasicPotentialMLP(space_config(obs_space), **spec, normalize_images=normalize_images)
        _copy_layers(out.mlp, pot._potential_net, where)
        return out
    if isinstance(pot, im.BasicPotentialCNN):
        if not normalize_images:
            raise _unsupported(where, "a BasicPotentialCNN with normalize_images=False")
        out = CnnPotential(tuple(obs_space.shape), _cnn_channels(pot._potential_net, where), pot.hwc_format)
        _copy_layers(out.net, pot._potential_net, where)
        return out
    raise _unsupported(where, f"a ShapedRewardNet whose potential is a {type(pot).__name__}")


def from_imitation(net: Any, where: str = "the net") -> RewardNet:
    """The rewardlab reward net that computes what the imitation reward net `net` computes (weights copied)."""
    if isinstance(net, RewardlabRewardNet):
        return net.net
    if isinstance(net, RewardNet):  # a rewardlab net pickled as a module
        return net
    if not isinstance(net, im.RewardNet):
        raise RewardLabError(f"{where} holds a {type(net).__name__}, not an imitation reward net")
    if isinstance(net, im.NormalizedRewardNet):
        layer = net.normalize_output_layer
        if not isinstance(layer, im_networks.BaseNorm) or tuple(layer.running_mean.shape) != (1,):
            raise _unsupported(where, f"a NormalizedRewardNet with a {type(layer).__name__}")
        out = NormalizedRewardNet(from_imitation(net.base, where), eps=float(layer.eps))
        _copy_layers(nn.Sequential(out.normalize_output_layer), nn.Sequential(layer), where)
        return out
    if isinstance(net, im.ShapedRewardNet):
        base = from_imitation(net.base, where)
        pot = _potential(net.potential, net.observation_space, bool(net.normalize_images), where)
        return ShapedRewardNet(base, pot, float(net.discount_factor), learn_shift=False)
    if isinstance(net, im.BasicRewardNet):
        try:
            obs, act = space_config(net.observation_space), space_config(net.action_space)
        except RewardLabError as e:
            raise _unsupported(where, f"a BasicRewardNet on other spaces ({e})") from None
        uses = {k: bool(getattr(net, k)) for k in ("use_state", "use_action", "use_next_state", "use_done")}
        spec = _mlp_spec(net.mlp, where)
        out = MlpRewardNet(obs, act, **uses, **spec, normalize_images=bool(net.normalize_images))
        _copy_layers(out.mlp, net.mlp, where)
        return out
    if isinstance(net, im.CnnRewardNet):
        _check_images(net, where)
        if not isinstance(net.action_space, spaces.Discrete):
            raise _unsupported(where, f"a CnnRewardNet with {net.action_space} actions (rewardlab's take Discrete)")
        out = CnnRewardNet(
            obs_shape=tuple(net.observation_space.shape),
            n_actions=int(net.action_space.n),
            use_state=bool(net.use_state),
            use_action=bool(net.use_action),
            use_next_state=bool(net.use_next_state),
            use_done=bool(net.use_done),
            hid_channels=_cnn_channels(net.cnn, where),
            hwc_format=bool(net.hwc_format),
        )
        _copy_layers(out.cnn, net.cnn, where)
        return out
    raise _unsupported(where, f"an imitation {type(net).__name__}")


__all__ = ["RewardlabRewardNet", "SUPPORTED", "from_imitation", "raw_input", "to_imitation"]
