"""Evaluate a policy on a task: greedy answers for held-out samples, the task's evaluator, savable records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from perception_r1.contract import Task, task_reward
from perception_r1.data.prepare import prepare_sample
from perception_r1.evaluate.scoring import task_metrics

if TYPE_CHECKING:
    from perception_r1.model.policy import Policy

#: sample keys that go into a saved record (the image itself does not; `score` re-scores from these)
RECORD_KEYS = (
    "id", "task", "image_size", "query", "solution", "coords", "resized_size", "image_path", "shown_image_of",
)


def record_of(sample: dict[str, Any], completion: str, task: Task) -> dict[str, Any]:
    """A JSON-able record in the `perception-r1 score` format, with the reward and its components."""
    record = {k: sample[k] for k in RECORD_KEYS if k in sample}
    record["prompt"] = task.prompt(sample)
    record["completion"] = completion
    result = task_reward(task, completion, sample)
    record["reward"] = result.total
    record["rewards"] = result.components
    return record


def evaluate_policy(
    policy: Policy,
    task: Task,
    samples: Sequence[dict[str, Any]],
    batch_size: int = 16,
    max_new_tokens: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Greedy generation over ``samples`` in batches; returns (metrics, records)."""
    records: list[dict[str, Any]] = []
    for start in range(0, len(samples), batch_size):
        batch = [prepare_sample(s, policy, task) for s in samples[start : start + batch_size]]
        rollout = policy.generate(
            [task.prompt(s) for s in batch], [s["image"] for s in batch],
            num_generations=1, max_new_tokens=max_new_tokens, greedy=True,
        )
        records += [record_of(s, text, task) for s, text in zip(batch, rollout.texts, strict=True)]
        if on_batch:
            on_batch(len(batch))
    metrics = task_metrics(task, records) if records else {}
    if records:
        metrics["mean_reward"] = sum(r["reward"] for r in records) / len(records)
    return metrics, records
