"""The internal reward kinds of Li et al. (ICML 2023), by name: shared by every implementation of them."""

from __future__ import annotations

from rewardlab.errors import RewardLabError

REWARD_KINDS = ("accuracy", "accuracy_pm1", "linear_clipping", "linear_noclipping", "log_clipping", "log_noclipping")


def check_reward_kind(kind: str) -> str:
    """Return `kind` if known, else raise a clear error."""
    if kind not in REWARD_KINDS:
        raise RewardLabError(f"unknown reward '{kind}'; choose one of {', '.join(REWARD_KINDS)}")
    return kind
