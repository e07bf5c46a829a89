"""A reward-only plugin: penalise completions longer than a character budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from perception_r1 import RewardRegister, hookimpl

REWARD_NAME = "brevity.length_penalty"
DEFAULT_BUDGET = 256


def _budget(sample: Mapping[str, Any], default: int) -> int:
    value = sample.get("brevity_budget") if isinstance(sample, Mapping) else None
    # bool is an int subclass; a per-sample budget must be a real positive integer
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def length_penalty(
    completions: Sequence[Any], samples: Sequence[Mapping[str, Any]], budget: int = DEFAULT_BUDGET, **_: Any
) -> list[float | None]:
    """0 up to ``budget`` characters, then linear down to -1 at twice the budget; None if not text."""
    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
        raise ValueError(f"{REWARD_NAME}: budget must be a positive integer, got {budget!r}")
    if len(completions) != len(samples):
        raise ValueError(f"{REWARD_NAME}: {len(completions)} completions but {len(samples)} samples")
    out: list[float | None] = []
    for completion, sample in zip(completions, samples, strict=True):
        if not isinstance(completion, str):
            out.append(None)
            continue
        limit = _budget(sample, budget)
        excess = len(completion.strip()) - limit
        out.append(-min(1.0, excess / limit) if excess > 0 else 0.0)
    return out


@hookimpl
def register_rewards(register: RewardRegister) -> None:
    register(REWARD_NAME, length_penalty)
