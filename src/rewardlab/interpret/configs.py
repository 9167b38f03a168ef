"""Settings of reward preprocessing (the shaping objectives) as a typed config dataclass; no torch."""

from __future__ import annotations

from dataclasses import dataclass

from rewardlab.config import param
from rewardlab.errors import RewardLabError

OBJECTIVES = ("sparse_l1", "sparse_log", "smooth_l1", "smooth_log")


def check_objective(name: str) -> None:
    """Raise a RewardLabError for an unknown objective."""
    if name not in OBJECTIVES:
        raise RewardLabError(f"unknown objective '{name}'; choose one of {', '.join(OBJECTIVES)}")


@dataclass
class PreprocessConfig:
    """Settings of the shaping optimisation."""

    objectives: list[str] = param(default_factory=lambda: list(OBJECTIVES), help="objectives to optimise", choices=None)
    lr: float = param(1e-3, help="Adam learning rate", min=1e-8, max=1.0)
    tabular_steps: int = param(10_000, help="full-batch Adam steps for tabular potentials", min=1)
    epochs: int = param(3, help="epochs over the data for linear/MLP potentials", min=1)
    batch_size: int = param(200, help="minibatch size for linear/MLP potentials", min=2)
    mlp_hidden: int = param(128, help="MLP potential width", min=1)
    mlp_layers: int = param(4, help="MLP potential hidden layers", min=1)
    l1_solver: str = param(
        "lp",
        help="L1 objectives with tabular or linear potentials: 'lp' (exact, HiGHS) or 'adam' (as the original)",
        choices=("lp", "adam"),
    )

    def validate(self) -> None:
        """Objectives must be known."""
        for o in self.objectives:
            check_objective(o)
