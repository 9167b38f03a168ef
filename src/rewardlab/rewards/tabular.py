"""Tabular reward nets R[s, s'] over integer states (tabular mazes)."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rewardlab.core.modules import register_module
from rewardlab.errors import RewardLabError
from rewardlab.rewards.nets import RewardNet


@register_module("reward.tabular")
class TabularRewardNet(RewardNet):
    """r(s, a, s', done) = table[s, s'] for integer states; a learnable (zero-initialised) or fixed table."""

    def __init__(self, n_states: int, trainable: bool = True):
        self.n_states = int(n_states)
        super().__init__(spaces.Discrete(self.n_states), spaces.Discrete(5))  # the tabular mazes' spaces
        table = torch.zeros(self.n_states, self.n_states)
        if trainable:
            self.table = nn.Parameter(table)
        else:
            self.register_buffer("table", table)

    @classmethod
    def from_table(cls, table: np.ndarray) -> "TabularRewardNet":
        """A fixed ground-truth net holding `table` (n, n)."""
        table = np.asarray(table)
        if table.ndim != 2 or table.shape[0] != table.shape[1]:
            raise RewardLabError(f"a reward table must be square (n_states, n_states), got {table.shape}")
        net = cls(table.shape[0], trainable=False)
        net.table.copy_(torch.as_tensor(table, dtype=torch.float32))
        return net

    def forward(self, state, action, next_state, done):
        s, s2 = state.long(), next_state.long()
        if s.ndim != 1 or s2.shape != s.shape:
            raise RewardLabError(f"TabularRewardNet expects integer state vectors (B,), got {tuple(state.shape)}")
        if len(s) and (int(s.max()) >= self.n_states or int(s2.max()) >= self.n_states or int(s.min()) < 0):
            raise RewardLabError(f"state index out of range for a {self.n_states}-state reward table")
        return self.table[s, s2]
