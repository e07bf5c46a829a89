"""GRPO as pure tensor functions. Shapes: B prompts x G rollouts = N rows; T completion tokens.

Each function does one thing so it can be tested against hand-computed values:
advantages from rewards, the clipped surrogate, the k3 KL estimator, and how per-token terms
are aggregated into one loss (``grpo``, ``dapo``, ``dr_grpo``).
"""

from __future__ import annotations

from typing import Literal

import torch

LossAggregation = Literal["grpo", "dapo", "dr_grpo"]
LOSS_AGGREGATIONS = ("grpo", "dapo", "dr_grpo")


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """A_i = (r_i - mean(r_group)) / (std(r_group) + eps); ``scale=False`` keeps only the mean shift (Dr. GRPO).

    rewards: (N,) with N = B * G, the G rollouts of a prompt contiguous. Returns (N,).
    std is the unbiased sample std, as in the paper's code (TRL).
    """
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards of shape {tuple(rewards.shape)} do not split into groups of {group_size}")
    grouped = rewards.view(-1, group_size)  # (B, G)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(grouped[:, :1])
        centered = centered / (std + eps)
    return centered.reshape(-1)


def zero_std_fraction(rewards: torch.Tensor, group_size: int) -> float:
    """Share of groups whose rollouts all got the same reward: they carry no learning signal."""
    grouped = rewards.view(-1, group_size)
    return (grouped.max(dim=1).values - grouped.min(dim=1).values).abs().lt(1e-8).float().mean().item()


def clipped_surrogate(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, clip_eps: float = 0.2
) -> torch.Tensor:
    """Per-token PPO loss -min(ratio * A, clip(ratio, 1-eps, 1+eps) * A). (N, T) -> (N, T).

    advantages: (N,), broadcast over tokens.
    """
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    return -torch.min(unclipped, clipped)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(policy || reference): exp(ref - logp) - (ref - logp) - 1 >= 0. (N, T)."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1.0


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, how: LossAggregation = "grpo", max_tokens: int | None = None) -> torch.Tensor:
    """Reduce a (N, T) per-token loss to a scalar over the completion ``mask``.

    - ``grpo``: mean over each sequence's tokens, then over sequences (the paper's / TRL's original).
    - ``dapo``: mean over all tokens of the batch (long answers weigh by their length).
    - ``dr_grpo``: sum over tokens divided by a constant N * max_tokens (no length bias).
    """
    mask = mask.to(per_token.dtype)
    if how == "grpo":
        return ((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()
    if how == "dapo":
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    if how == "dr_grpo":
        denom = per_token.shape[0] * (max_tokens or per_token.shape[1])
        return (per_token * mask).sum() / denom
    raise ValueError(f"unknown loss aggregation '{how}' (choose from {', '.join(LOSS_AGGREGATIONS)})")


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    how: LossAggregation = "grpo",
    max_tokens: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO objective: clipped surrogate + beta * k3 KL, aggregated. Returns (loss, stats)."""
    per_token = clipped_surrogate(logprobs, old_logprobs, advantages, clip_eps)
    stats: dict[str, float] = {}
    m = mask.to(logprobs.dtype)
    if ref_logprobs is not None and beta != 0.0:
        kl = k3_kl(logprobs, ref_logprobs)
        per_token = per_token + beta * kl
        stats["kl"] = ((kl * m).sum() / m.sum().clamp(min=1.0)).item()
    with torch.no_grad():
        ratio = torch.exp(logprobs - old_logprobs)
        clipped = ((ratio - 1.0).abs() > clip_eps).to(m.dtype)
        stats["clip_fraction"] = ((clipped * m).sum() / m.sum().clamp(min=1.0)).item()
    return aggregate(per_token, mask, how, max_tokens), stats
