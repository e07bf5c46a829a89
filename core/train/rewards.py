"""Combine a run's rewards: each task's own reward and any registered custom reward, with weights.

A task's reward applies to that task's samples only (``None`` elsewhere); a custom reward applies to every
sample it does not answer ``None`` for. A reward that raises or returns a non-finite value stops the run
with an error naming it: a broken reward never silently becomes 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from perception_r1.contract import (
    ENV_REWARD_SECONDS,
    BudgetExceeded,
    RewardError,
    Task,
    UserError,
    describe_exception,
    is_number,
    reward_budget,
    task_rewards,
    time_budget,
)
from perception_r1.registry import Registry

__all__ = ["RewardError", "WeightedReward", "build_rewards", "component_means", "describe", "parse_reward_flags",
           "score"]


@dataclass(frozen=True)
class WeightedReward:
    name: str
    weight: float
    task: Task | None = None  # set when this is a task's own reward
    fn: Any = None  # custom reward: fn(completions, samples, **kw) -> list[float | None]


def parse_reward_flags(flags: Sequence[str]) -> dict[str, float]:
    """``["detection:1.0", "brevity.length_penalty:0.1"]`` -> {name: weight}; a bare name weighs 1."""
    weights: dict[str, float] = {}
    for flag in flags:
        name, _, weight = flag.rpartition(":") if ":" in flag else (flag, "", "1")
        try:
            weights[name.strip()] = float(weight)
        except ValueError:
            raise UserError(f"--reward {flag!r}: weight '{weight}' is not a number (use NAME:WEIGHT)") from None
        if not name.strip() or not math.isfinite(weights[name.strip()]):
            raise UserError(f"--reward {flag!r}: use NAME:WEIGHT with a finite weight")
    return weights


def build_rewards(registry: Registry, tasks: Sequence[Task], weights: Mapping[str, float]) -> list[WeightedReward]:
    """Resolve reward names through the registry. Each task's own reward counts at weight 1 unless ``weights``
    names it (weight 0 drops it); every other name given is added with its weight."""
    weights = {**{task.name: 1.0 for task in tasks}, **weights}
    by_name = {task.name: task for task in tasks}
    rewards = []
    for name, weight in weights.items():
        if weight == 0:
            continue
        if name in by_name:
            rewards.append(WeightedReward(name, weight, task=by_name[name]))
        elif name in registry.tasks:
            raise UserError(f"reward '{name}' is the reward of task '{name}', which this run does not train")
        else:
            rewards.append(WeightedReward(name, weight, fn=registry.reward(name)))
    if not rewards:
        raise UserError("every reward has weight 0: nothing to train on")
    return rewards


def describe(rewards: Sequence[WeightedReward]) -> str:
    """``ocr x1 + brevity.length_penalty x0.1``: the resolved weights, as a run prints them at its start."""
    return " + ".join(f"{r.name} x{r.weight:g}" for r in rewards)


def score(
    rewards: Sequence[WeightedReward], completions: Sequence[str], samples: Sequence[Mapping[str, Any]],
    answers: list[Any] | None = None,
) -> tuple[list[float], dict[str, list[float | None]]]:
    """Totals (weighted sums over applicable rewards) and every component per completion.

    Components are named ``<task>/<component>`` for task rewards (plus ``<task>`` for its total) and
    ``<reward name>`` for custom rewards. ``answers``, when given (one slot per completion), receives the
    parsed answer each task reward reports (``RewardResult.answer``), so nobody parses it again.
    """
    n = len(completions)
    totals = [0.0] * n
    components: dict[str, list[float | None]] = {}
    for reward in rewards:
        if reward.task is not None:
            values: list[float | None] = [None] * n
            mine = [i for i, sample in enumerate(samples) if sample.get("task", reward.task.name) == reward.task.name]
            results = task_rewards(reward.task, [completions[i] for i in mine], [samples[i] for i in mine])
            for i, result in zip(mine, results, strict=True):
                values[i] = result.total
                if answers is not None and result.answer is not None:
                    answers[i] = result.answer
                for key, value in result.components.items():
                    components.setdefault(f"{reward.name}/{key}", [None] * n)[i] = value
        else:
            budget = reward_budget()
            try:
                with time_budget(budget):  # one call scores the whole batch
                    values = list(reward.fn(list(completions), list(samples)))
            except BudgetExceeded:
                raise RewardError(f"reward '{reward.name}' took more than {budget:g} s for {n} completions "
                                  f"({ENV_REWARD_SECONDS} sets the budget)") from None
            except (Exception, SystemExit) as exc:  # sys.exit() in a plugin must not end the run with exit 0
                raise RewardError(f"reward '{reward.name}' raised {describe_exception(exc)}") from exc
            if len(values) != n:
                raise RewardError(f"reward '{reward.name}' returned {len(values)} values for {n} completions")
        for i, value in enumerate(values):
            if value is None:
                continue
            if not is_number(value) or not math.isfinite(float(value)):
                raise RewardError(f"reward '{reward.name}' returned {value!r} for completion {i}: not a finite number")
            totals[i] += reward.weight * float(value)
        components[reward.name] = values
    bad = next((i for i, total in enumerate(totals) if not math.isfinite(total)), None)
    if bad is not None:
        raise RewardError(f"the weighted reward of completion {bad} is {totals[bad]!r} ({describe(rewards)}): "
                          "lower the weights")
    return totals, components


def component_means(components: Mapping[str, Sequence[float | None]]) -> dict[str, float]:
    """Mean of each component over the completions it applies to."""
    means = {}
    for key, values in components.items():
        present = [v for v in values if v is not None]
        if present:
            means[key] = sum(present) / len(present)
    return means
