"""What a step trains on: one draw of prompts and their rollouts, or, with dynamic sampling (DAPO), as many
draws as it takes to find ``prompts_per_step`` groups whose rewards differ.

A group whose G rollouts all got the same reward has zero advantage everywhere: it adds only the KL term and
dilutes the others. Dynamic sampling drops such groups and draws more prompts (at most
``dynamic_sampling_max_tries`` draws, each a pure function of (seed, step, rank, try), so a resumed run draws
the same). Shapes: a draw has P prompts x G rollouts = N rows, a group's G in a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from perception_r1.train.grpo import first_groups, group_advantages, sampler_correction, spread_groups
from perception_r1.train.step import Record

if TYPE_CHECKING:
    from perception_r1.model.policy import Rollout


@dataclass
class Draw:
    """One draw: its records, rollout and rewards, and which rows the step trains on."""

    records: list[Record]  # N = P * G
    rollout: Rollout
    rewards: torch.Tensor  # (N,) weighted totals
    components: dict[str, list[float | None]]  # every reward component over the N records
    keep: torch.Tensor | None = None  # (N,) bool; None = every row

    def kept(self) -> torch.Tensor:
        return torch.ones(len(self.records), dtype=torch.bool) if self.keep is None else self.keep


def draw_until_spread(draw: Callable[[int], Draw], prompts: int, group_size: int,
                      max_tries: int) -> tuple[list[Draw], dict[str, int]]:
    """Call ``draw(try)`` until ``prompts`` groups with a reward spread are found or ``max_tries`` draws are
    made; mark the first ``prompts`` such groups as kept. Returns every draw (kept rows marked) and the
    counts for ``metrics.jsonl``. When no draw has any spread, the first draw trains as it is (its KL term
    only, or the update is skipped), as a step without dynamic sampling would."""
    draws: list[Draw] = []
    spread: list[torch.Tensor] = []  # (P,) bool per draw
    while len(draws) < max_tries and sum(int(s.sum()) for s in spread) < prompts:
        draws.append(draw(len(draws)))
        spread.append(spread_groups(draws[-1].rewards, group_size))
    kept = first_groups(spread, prompts)
    counts = {"groups_drawn": sum(s.numel() for s in spread), "groups_kept": sum(int(k.sum()) for k in kept),
              "sampling_tries": len(draws)}
    if counts["groups_kept"] == 0:
        for d in draws:
            d.keep = torch.zeros(len(d.records), dtype=torch.bool)
        draws[0].keep = None
        return draws, counts
    for d, k in zip(draws, kept, strict=True):
        d.keep = k.repeat_interleave(group_size)
    return draws, counts


def kept_advantages(draws: list[Draw], group_size: int, scale: bool | str) -> list[torch.Tensor]:
    """(N,) advantages per draw, computed over the kept groups of all draws together (a batch std spans them);
    rows not kept get 0. Also written into the records."""
    kept = torch.cat([d.rewards[d.kept()] for d in draws])
    advantages = group_advantages(kept, group_size, scale=scale) if kept.numel() else kept
    out, start = [], 0
    for d in draws:
        rows = d.kept()
        adv = torch.zeros_like(d.rewards)
        adv[rows] = advantages[start:start + int(rows.sum())]
        start += int(rows.sum())
        for record, value in zip(d.records, adv.tolist(), strict=True):
            record.advantage = value
        out.append(adv)
    return out


def loss_mask(draw: Draw, mask_truncated: bool) -> torch.Tensor:
    """(N, T) float: the completion tokens that carry loss: kept rows only, and, with ``mask_truncated``, not
    the rows cut off at the token budget (their reward judges an answer the model never finished)."""
    rolled = draw.rollout
    mask = rolled.completion_mask.float()
    if draw.keep is not None:
        mask = mask * draw.keep.to(mask.device, mask.dtype).unsqueeze(1)
    if mask_truncated and rolled.truncated is not None:
        mask = mask * (~rolled.truncated).to(mask.device, mask.dtype).unsqueeze(1)
    return mask


def token_weights(draw: Draw, old_logprobs: torch.Tensor, mask: torch.Tensor, cap: float | None) -> torch.Tensor | None:
    """The sampler correction (:func:`perception_r1.train.grpo.sampler_correction`) when ``cap`` is set."""
    if cap is None:
        return None
    sampler = draw.rollout.sampler_logprobs
    if sampler is None:
        raise ValueError("sampler_correction_cap needs the sampler's log-probs: the rollout did not return them")
    return sampler_correction(old_logprobs, sampler.to(old_logprobs.device), mask, cap)

