"""GRPO as pure tensor functions. Shapes: B prompts x G rollouts = N rows; T completion tokens.

Each function does one thing so it can be tested against hand-computed values:
advantages from rewards (scaled per group, per batch or not at all), which groups carry a signal, the
importance ratio (per token, or per sequence as GSPO), the clipped surrogate (clip-higher: its own upper
range), the k3 KL estimator, the capped correction for rollouts sampled by another engine, and how
per-token terms are aggregated into one loss (``grpo``, ``dapo``, ``dr_grpo``). TRL's ``GRPOTrainer``
computes the same numbers (``tests/test_trl_oracle.py``).
"""

from __future__ import annotations

from typing import Literal

import torch

LossAggregation = Literal["grpo", "dapo", "dr_grpo"]
LOSS_AGGREGATIONS = ("grpo", "dapo", "dr_grpo")
RewardScaling = Literal["group", "batch", "none"]
REWARD_SCALINGS = ("group", "batch", "none")
ImportanceLevel = Literal["token", "sequence"]
IMPORTANCE_LEVELS = ("token", "sequence")


def reward_scaling(value: bool | str) -> RewardScaling:
    """``scale_rewards`` as one of group / batch / none; the old booleans mean group (true) and none (false)."""
    if value is True or value is False:
        return "group" if value else "none"
    if value not in REWARD_SCALINGS:
        raise ValueError(f"scale_rewards '{value}': choose from {', '.join(REWARD_SCALINGS)}")
    return value  # type: ignore[return-value]


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool | str = True, eps: float = 1e-4) -> torch.Tensor:
    """A_i = (r_i - mean(r_group)) / (std + eps), the std of the group (``scale`` "group" or true, the paper's),
    of the whole batch ("batch", TRL's, as in Lite PPO) or none ("none" or false: only the mean shift, Dr. GRPO).

    rewards: (N,) with N = B * G, the G rollouts of a prompt contiguous. Returns (N,).
    std is the unbiased sample std, as in the paper's code (TRL).
    """
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards of shape {tuple(rewards.shape)} do not split into groups of {group_size}")
    how = reward_scaling(scale)
    grouped = rewards.view(-1, group_size)  # (B, G)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    if how == "group":
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(grouped[:, :1])
        centered = centered / (std + eps)
    elif how == "batch":  # one std over every reward of the batch: a group's small spread is not blown up
        std = rewards.std() if rewards.numel() > 1 else torch.zeros(())
        centered = centered / (std + eps)
    return centered.reshape(-1)


def spread_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(B,) bool: the groups whose rollouts did not all get the same reward, the only ones GRPO learns from
    (DAPO's dynamic sampling keeps these). rewards: (N,) = (B * G,), groups contiguous."""
    grouped = rewards.view(-1, group_size)
    return (grouped.max(dim=1).values - grouped.min(dim=1).values).abs().ge(1e-8)


def first_groups(spread: list[torch.Tensor], want: int) -> list[torch.Tensor]:
    """The first ``want`` True groups, in draw order, across several draws: one (B_k,) bool per draw.

    Dynamic sampling draws until ``want`` groups have a reward spread, then trains on exactly those."""
    kept, left = [], want
    for flags in spread:
        take = flags & (flags.long().cumsum(0) <= left)
        left -= int(take.sum())
        kept.append(take)
    return kept


def zero_std_fraction(rewards: torch.Tensor, group_size: int) -> float:
    """Share of groups whose rollouts all got the same reward: they carry no learning signal."""
    return (~spread_groups(rewards, group_size)).float().mean().item()


def importance_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor | None = None,
                     level: ImportanceLevel = "token") -> torch.Tensor:
    """pi/pi_old per token, (N, T); or per sequence (GSPO), (N, 1): exp of the mean log-ratio over the
    sequence's ``mask``ed tokens, so one long answer's ratio stays near 1 like a short one's (TRL's
    ``importance_sampling_level="sequence"``)."""
    log_ratio = logprobs - old_logprobs
    if level == "token":
        return torch.exp(log_ratio)
    if level != "sequence" or mask is None:
        raise ValueError(f"importance ratio level '{level}' (choose from token, sequence; sequence needs the mask)")
    m = mask.to(log_ratio.dtype)
    return torch.exp((log_ratio * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0))


def clipped_surrogate(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, clip_eps: float = 0.2,
    clip_eps_high: float | None = None, level: ImportanceLevel = "token", mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token PPO loss -min(ratio * A, clip(ratio, 1-eps, 1+eps_high) * A). (N, T) -> (N, T), or (N, 1) at
    the sequence level (it broadcasts over the tokens when aggregated).

    advantages: (N,), broadcast over tokens. ``clip_eps_high`` (DAPO's clip-higher; None = ``clip_eps``) lets
    a positive-advantage token's ratio grow further than a negative one's shrinks.
    """
    ratio = importance_ratio(logprobs, old_logprobs, mask, level)
    high = clip_eps if clip_eps_high is None else clip_eps_high
    adv = advantages.unsqueeze(1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + high) * adv
    return -torch.min(unclipped, clipped)


def sampler_correction(old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor,
                       cap: float) -> torch.Tensor:
    """Per-token weight min(pi_old / pi_sampler, cap), (N, T), no gradient: truncated importance sampling
    (verl's TIS, TRL's ``vllm_importance_sampling_correction`` in "token_truncate" mode) for rollouts that
    another engine sampled with slightly different numbers. Tokens outside ``mask`` get weight 0."""
    keep = mask > 0
    log_ratio = torch.where(keep, old_logprobs.detach() - sampler_logprobs.detach(), torch.zeros_like(old_logprobs))
    return torch.exp(log_ratio).clamp(max=cap) * keep.to(old_logprobs.dtype)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(policy || reference): exp(ref - logp) - (ref - logp) - 1 >= 0. (N, T)."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1.0


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, how: LossAggregation = "grpo", max_tokens: int | None = None,
              rows: int | None = None, tokens: float | None = None) -> torch.Tensor:
    """Reduce a (N, T) per-token loss to a scalar over the completion ``mask``.

    - ``grpo``: mean over each sequence's tokens, then over sequences (the paper's / TRL's original).
    - ``dapo``: mean over all tokens of the batch (long answers weigh by their length).
    - ``dr_grpo``: sum over tokens divided by a constant N * max_tokens (no length bias).

    ``rows`` / ``tokens``: the batch's sequence and token counts when these rows are one part of it (dynamic
    sampling's draws): the parts' losses then add up to the whole batch's.
    """
    mask = mask.to(per_token.dtype)
    per_token = per_token.expand(mask.shape)  # a sequence-level (N, 1) term weighs every token of its row
    if how == "grpo":
        per_seq = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return per_seq.mean() if rows is None else per_seq.sum() / max(rows, 1)
    if how == "dapo":
        return (per_token * mask).sum() / (mask.sum().clamp(min=1.0) if tokens is None else max(tokens, 1.0))
    if how == "dr_grpo":
        denom = (per_token.shape[0] if rows is None else rows) * (max_tokens or per_token.shape[1])
        return (per_token * mask).sum() / max(denom, 1)
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
    clip_eps_high: float | None = None,
    level: ImportanceLevel = "token",
    token_weights: torch.Tensor | None = None,
    rows: int | None = None,
    tokens: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO objective: clipped surrogate (x ``token_weights``, e.g. :func:`sampler_correction`) + beta * k3
    KL, aggregated. All tensors (N, T) but ``advantages`` (N,); ``rows`` / ``tokens``: see :func:`aggregate`.
    Returns (loss, stats), the stats means over the ``mask``ed tokens."""
    per_token = clipped_surrogate(logprobs, old_logprobs, advantages, clip_eps, clip_eps_high, level, mask)
    if token_weights is not None:
        per_token = per_token * token_weights
    stats: dict[str, float] = {}
    m = mask.to(logprobs.dtype)
    if ref_logprobs is not None and beta != 0.0:
        kl = k3_kl(logprobs, ref_logprobs)
        per_token = per_token + beta * kl
        stats["kl"] = ((kl * m).sum() / m.sum().clamp(min=1.0)).item()
    with torch.no_grad():
        ratio = importance_ratio(logprobs, old_logprobs, mask, level)
        high = clip_eps if clip_eps_high is None else clip_eps_high
        if clip_eps_high is None and level == "token":  # the original test, kept so default runs stay bit-identical
            clipped = ((ratio - 1.0).abs() > clip_eps).to(m.dtype)
        else:
            clipped = ((ratio < 1.0 - clip_eps) | (ratio > 1.0 + high)).to(m.dtype).expand_as(m)
        stats["clip_fraction"] = ((clipped * m).sum() / m.sum().clamp(min=1.0)).item()
    return aggregate(per_token, mask, how, max_tokens, rows, tokens), stats
