"""Gradient saliency |d output / d input| (captum) for reward nets and policies."""

from __future__ import annotations

from typing import Callable

import torch


def gradient_saliency(
    forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, target: int | None = None
) -> torch.Tensor:
    """|d forward(inputs)[:, target] / d inputs| for a batch (captum Saliency); same shape as `inputs`."""
    from captum.attr import Saliency

    x = inputs.detach().float().clone().requires_grad_(True)
    return Saliency(forward).attribute(x, target=target, abs=True).detach()
