"""RL headroom at evaluation: what K sampled answers per prompt score, beside the greedy answer.

GRPO learns only from groups whose answers score differently, and it can at best make the policy's good
samples likelier. So, per task: the mean reward of K answers sampled at the run's temperature, the mean
best-of-K reward (what the policy can already reach), and the share of prompts whose K answers all score
the same (no learning signal). A task whose best-of-K equals its greedy reward has little to learn from RL;
one with a wide gap and few all-equal groups has much (compare the paper's perceptual perplexity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from perception_r1.contract import Task, task_reward
from perception_r1.evaluate.evaluation import generated_batches

if TYPE_CHECKING:
    from perception_r1.model.policy import Policy

#: rewards closer than this count as equal (float noise of a weighted sum)
EQUAL = 1e-8


def headroom_of(groups: Sequence[Sequence[float]]) -> dict[str, float]:
    """From each prompt's K rewards: sampled mean reward, mean best-of-K reward, share of all-equal groups."""
    if not groups or any(not group for group in groups):
        raise ValueError("headroom needs at least one reward per prompt")
    k = len(groups[0])
    return {
        "sampled_mean_reward": sum(sum(g) / len(g) for g in groups) / len(groups),
        f"best_of_{k}_reward": sum(max(g) for g in groups) / len(groups),
        "all_equal_share": sum(max(g) - min(g) < EQUAL for g in groups) / len(groups),
    }


def sampled_rewards(
    policy: Policy, task: Task, samples: Sequence[dict[str, Any]], k: int, temperature: float,
    batch_size: int = 16, max_new_tokens: int = 64, on_batch: Callable[[int], None] | None = None,
) -> list[list[float]]:
    """Each sample's K rewards: K answers sampled at ``temperature``, scored by the task's reward."""
    groups: list[list[float]] = []
    for batch, rollout in generated_batches(policy, task, samples, batch_size, num_generations=k,
                                            max_new_tokens=max_new_tokens, temperature=temperature):
        for i, sample in enumerate(batch):  # rollout row i*k + g is sample i's g-th answer
            groups.append([task_reward(task, text, sample).total for text in rollout.texts[i * k : (i + 1) * k]])
        if on_batch:
            on_batch(len(batch))
    return groups
