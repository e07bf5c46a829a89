"""The optimiser loop SFT and the vision warm-up share, and the gradient step the GRPO trainer uses too."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int, warmup: int, floor: float = 0.1,
                  overlap: bool = False):
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``floor`` times the learning rate;
    with ``overlap`` the cosine runs over all ``steps`` and the warm-up ramp multiplies its start."""

    def factor(step: int) -> float:
        if overlap:
            return min(1.0, (step + 1) / warmup) * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / steps)))
        if step < warmup:
            return (step + 1) / warmup
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def gradients(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.nn.Parameter],
    clip: float | None = 1.0,
    backward: Callable[[torch.Tensor], None] | None = None,
    clip_fn: Callable[..., torch.Tensor] | None = None,
) -> float:
    """Fresh gradients of ``loss`` (clipped to ``clip`` when given); returns the norm before clipping.

    ``backward`` and ``clip_fn`` let a distributed run pass accelerate's versions.
    """
    optimizer.zero_grad(set_to_none=True)
    (backward or torch.Tensor.backward)(loss)
    if clip is None:
        return float("nan")
    return float((clip_fn or torch.nn.utils.clip_grad_norm_)(params, clip))


def fit(
    loss_at: Callable[[int], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.nn.Parameter],
    steps: int,
    scheduler=None,
    clip: float | None = 1.0,
    log: Callable[[int, float], None] | None = None,
) -> list[float]:
    """``steps`` optimiser steps on ``loss_at(step)``; returns the losses. ``log(step, loss)`` after each."""
    losses: list[float] = []
    for step in range(steps):
        loss = loss_at(step)
        gradients(loss, optimizer, params, clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
        if log is not None:
            log(step + 1, losses[-1])
    return losses
