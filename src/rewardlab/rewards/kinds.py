"""The internal reward kinds of Li et al. (ICML 2023), one table shared by every implementation of them: the torch
rewards of RAM (`rewardlab.rewards.internal`) and the compiled skill learner (`rewardlab.agents.skills`) both read
their formula, clipping and integer code from here, and a test checks that the two agree on the same inputs.

With q the discriminator's (classifier's) probability of the true label and the label prior p (0.1 for ten digits,
1/K for K skills), the prior is subtracted *before* clipping."""

from __future__ import annotations

from dataclasses import dataclass

from rewardlab.errors import RewardLabError


@dataclass(frozen=True)
class RewardKind:
    """One reward kind: its name, the integer compiled kernels switch on, and its formula."""

    name: str
    code: int
    formula: str  # accuracy | linear | log
    clipped: bool
    plus_minus_one: bool
    help: str


TABLE: tuple[RewardKind, ...] = (
    RewardKind("accuracy", 0, "accuracy", False, False, "1 if argmax q is the true label, else 0"),
    RewardKind("accuracy_pm1", 1, "accuracy", False, True, "+1 if argmax q is the true label, else -1"),
    RewardKind("linear_clipping", 2, "linear", True, False, "max(q - p, 0)"),
    RewardKind("linear_noclipping", 3, "linear", False, False, "q - p"),
    RewardKind("log_clipping", 4, "log", True, False, "max(log q - log p, 0)"),
    RewardKind("log_noclipping", 5, "log", False, False, "log q - log p"),
)
KINDS: dict[str, RewardKind] = {k.name: k for k in TABLE}
REWARD_KINDS: tuple[str, ...] = tuple(KINDS)
FORMULAS = ("accuracy", "linear", "log")  # index = the formula's code in compiled kernels


def check_reward_kind(kind: str) -> str:
    """Return `kind` if known, else raise a clear error."""
    if kind not in KINDS:
        raise RewardLabError(f"unknown reward '{kind}'; choose one of {', '.join(REWARD_KINDS)}")
    return kind
