"""Evaluate a policy on a task: greedy answers for held-out samples, the task's evaluator, savable records."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from perception_r1.contract import ParseError, Task, task_reward
from perception_r1.data.prepare import prepare_sample
from perception_r1.evaluate.scoring import task_metrics

if TYPE_CHECKING:
    from perception_r1.model.policy import Policy, Rollout

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


def generated_batches(
    policy: Policy, task: Task, samples: Sequence[dict[str, Any]], batch_size: int, **generate: Any,
) -> Iterator[tuple[list[dict[str, Any]], Rollout]]:
    """(prepared samples, their rollout) per batch of ``batch_size``: ``generate`` are ``Policy.generate``'s
    settings (greedy answers for evaluation, K samples at a temperature for the RL headroom)."""
    for start in range(0, len(samples), batch_size):
        batch = [prepare_sample(s, policy, task) for s in samples[start : start + batch_size]]
        yield batch, policy.generate([task.prompt(s) for s in batch], [s["image"] for s in batch], **generate)


def answer_batches(
    policy: Policy, task: Task, samples: Sequence[dict[str, Any]], batch_size: int = 16, max_new_tokens: int = 64,
) -> Iterator[list[dict[str, Any]]]:
    """Greedy answers for ``samples``, one list of records per batch of ``batch_size``, as they come (so a
    caller can save them before the next batch: a killed evaluation keeps every finished batch)."""
    for batch, rollout in generated_batches(policy, task, samples, batch_size, num_generations=1,
                                            max_new_tokens=max_new_tokens, greedy=True):
        yield [record_of(s, text, task) for s, text in zip(batch, rollout.texts, strict=True)]


def records_metrics(task: Task, records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The task's evaluator over ``records``, and their mean reward ({} for none)."""
    if not records:
        return {}
    metrics = task_metrics(task, list(records))
    metrics["mean_reward"] = sum(r["reward"] for r in records) / len(records)
    return metrics


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
    for batch in answer_batches(policy, task, samples, batch_size, max_new_tokens):
        records += batch
        if on_batch:
            on_batch(len(batch))
    return records_metrics(task, records), records


#: an answer is outside its image when a coordinate lies this share of the image's side beyond an edge
EDGE_SLACK = 0.05


def _outside(coordinates: list[float], size: Sequence[float]) -> bool:
    """Whether any (x, y) pair of ``coordinates`` (pixels) lies outside the ``[w, h]`` image, with the slack."""
    w, h = float(size[0]), float(size[1])
    xs, ys = coordinates[0::2], coordinates[1::2]
    return any(not -EDGE_SLACK * w <= x <= (1 + EDGE_SLACK) * w for x in xs) or \
        any(not -EDGE_SLACK * h <= y <= (1 + EDGE_SLACK) * h for y in ys)


def answers_outside(task: Task, records: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(answers that fall outside their image, answers with coordinates), each read in its record's ``coords``
    space through the task's own ``parse`` and ``draw_answer``: most answers outside means the space is wrong
    (e.g. 0-1000 answers read as pixels of a smaller image), the commonest way a real model loses its score."""
    outside = counted = 0
    for record in records:
        try:
            coordinates = task.draw_answer(task.parse(record.get("completion") or ""), record).coordinates()
        except ParseError:
            continue
        if coordinates:
            counted += 1
            outside += _outside(coordinates, record["image_size"])
    return outside, counted


def coords_warning(task: Task, records: Sequence[dict[str, Any]], space: str) -> str | None:
    """A one-line warning when more than half of the answers fall outside their image in ``space``."""
    outside, counted = answers_outside(task, records)
    if counted == 0 or outside * 2 <= counted:
        return None
    return (f"warning: {outside} of {counted} answers fall outside their image when read as {space} coordinates: "
            f"is --coords right? (norm1000: 0-1000, norm1: 0-1, pixels: original image, resized: the processor's)")
