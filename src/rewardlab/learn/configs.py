"""Settings of reward learning (regression, preference comparisons) as typed config dataclasses; no torch."""

from __future__ import annotations

from dataclasses import dataclass

from rewardlab.config import param


@dataclass
class RegressionConfig:
    """Regression of a reward net onto observed rewards."""

    hidden: list[int] = param(
        default_factory=lambda: [64, 64],
        help="hidden layer widths of the MLP (empty: a linear model)",
        min=1,
        empty_ok=True,
    )
    lr: float = param(1e-3, help="Adam learning rate", min=1e-8, max=1.0)
    batch_size: int = param(20, help="minibatch size", min=1)
    epochs: int = param(5, help="passes over the training set", min=1)
    loss_reduction: str = param(
        "sum", help="MSE reduction over a batch: 'sum' as in the original code, or 'mean'", choices=("sum", "mean")
    )
    use_action: bool = param(False, help="R(s, a, s') instead of the paper's R(s, s'): the action enters the model")


@dataclass
class PreferenceConfig:
    """Synthetic preference comparisons over trajectory fragments (the original's settings by maze size)."""

    comparisons: int = param(5000, help="number of labelled fragment pairs", min=1)
    fragment_length: int = param(4, help="transitions per fragment", min=1)
    temperature: float = param(1.0, help="Bradley-Terry temperature of the synthetic oracle", min=1e-6)
    sample: bool = param(True, help="sample labels from the Bradley-Terry model (else the better fragment wins)")
    lr: float = param(1e-2, help="Adam learning rate", min=1e-8, max=1.0)
    epochs: int = param(200, help="full-batch epochs over the comparisons", min=1)
