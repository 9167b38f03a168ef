"""Reward networks: the RewardNet protocol r(s, a, s', done) and the nets built on it."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from rewardlab.core.runs import load_checkpoint, save_checkpoint
from rewardlab.errors import RewardLabError

CHECKPOINT_KIND = "rewardlab.reward_net"


class RewardNet(nn.Module):
    """A reward model r(state, action, next_state, done) -> (B,) float tensor (the imitation protocol).

    Subclasses define `spec` (a plain dict that rebuilds them via `build_reward_net`).
    """

    spec: dict[str, Any]

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


class MazeRewardMLP(RewardNet):
    """R(s, s'): the MazeRewardModel of Michaud et al. (2020): flatten (s, s') as raw grid codes,
    then Linear-Tanh layers and a bias-free Linear to one output (242-64-64-1 by default)."""

    def __init__(self, obs_shape: tuple[int, ...] = (11, 11), hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.obs_shape = tuple(int(x) for x in obs_shape)
        self.spec = {"name": "maze_mlp", "obs_shape": list(self.obs_shape), "hidden": [int(h) for h in hidden]}
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


NETS: dict[str, Any] = {"maze_mlp": MazeRewardMLP}


def _register_lazy() -> None:
    # Nets defined in modules that import this one are registered on first use (no import cycle).
    from rewardlab.rewards.shaping import ShapedRewardNet
    from rewardlab.rewards.tabular import TabularRewardNet

    NETS.setdefault("tabular", TabularRewardNet)
    NETS.setdefault("shaped", ShapedRewardNet)
    from rewardlab.rewards.mountain_car import MountainCarRewardNet

    NETS.setdefault("mountain_car", MountainCarRewardNet)


def build_reward_net(spec: dict[str, Any]) -> RewardNet:
    """Build a reward net from its spec dict (as saved in checkpoints)."""
    _register_lazy()
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in NETS:
        raise RewardLabError(f"unknown reward net '{name}'; known: {', '.join(NETS)}")
    return NETS[name](**spec)


def save_reward_net(path: str | os.PathLike, net: RewardNet, meta: dict[str, Any] | None = None) -> None:
    """Save a reward net as state_dict + spec + metadata, atomically."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    save_checkpoint(path, {"kind": CHECKPOINT_KIND, "spec": net.spec, "state_dict": state, "meta": meta or {}})


def load_reward_net(
    path: str | os.PathLike, expect_spec: dict[str, Any] | None = None, device: str = "cpu"
) -> tuple[RewardNet, dict[str, Any]]:
    """Load a reward net; if `expect_spec` is given, refuse a checkpoint of another architecture."""
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") != CHECKPOINT_KIND or "spec" not in ckpt or "state_dict" not in ckpt:
        raise RewardLabError(f"'{path}' is not a rewardlab reward-net checkpoint")
    spec = ckpt["spec"]
    if expect_spec is not None and dict(spec) != dict(expect_spec):
        raise RewardLabError(
            f"checkpoint '{path}' holds a {spec} reward net, but the config asks for "
            f"{expect_spec}; retrain the reward model or change the config to match"
        )
    net = build_reward_net(spec)
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise RewardLabError(
            f"checkpoint '{path}' does not fit the {spec['name']} architecture "
            f"({str(e).splitlines()[0]}); retrain the reward model"
        ) from None
    return net.to(device).eval(), dict(ckpt.get("meta", {}))
