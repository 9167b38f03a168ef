"""Reward networks: the RewardNet protocol r(s, a, s', done) and the nets built on it. Nets are saved and loaded with
the one module checkpoint format (`rewardlab.core.modules.save_module` / `load_module`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rewardlab.core.modules import register_legacy_format, register_module
from rewardlab.errors import RewardLabError


class RewardNet(nn.Module):
    """A reward model r(state, action, next_state, done) -> (B,) float tensor (the imitation protocol).

    Subclasses are registered with `@register_module`, which records their constructor arguments.
    """

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
    def predict(self, state: Any, next_state: Any, action: Any = None, done: Any = None) -> "torch.Tensor":
        """Rewards for numpy or tensor inputs, without gradients, on the net's device."""
        dev = self.device
        s = torch.as_tensor(state, device=dev)
        s2 = torch.as_tensor(next_state, device=dev)
        return self(s, action, s2, done)


@register_module("reward.maze_mlp")
class MazeRewardMLP(RewardNet):
    """R(s, s'): the MazeRewardModel of Michaud et al. (2020): flatten (s, s') as raw grid codes,
    then Linear-Tanh layers and a bias-free Linear to one output (242-64-64-1 by default)."""

    def __init__(self, obs_shape: tuple[int, ...] = (11, 11), hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.obs_shape = tuple(int(x) for x in obs_shape)
        n_in = 2 * int(torch.tensor(self.obs_shape).prod())
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
        return self.pair_reward(torch.stack([state, next_state], dim=1))


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
