"""The parts of one GRPO step, each a function the trainer calls in order:
batch -> rollout -> score; the advantages and the update follow in :mod:`perception_r1.train.sampling`
and the trainer.

One typed :class:`Record` per completion carries the sample from the batch to the completion log: its
prompt (built once per sample), the completion, the parsed answer, every reward component and the
advantage. Shapes: P prompts per step, G rollouts per prompt, N = P * G records, a group's G in a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from perception_r1.contract import ParseError, Task
from perception_r1.train.rewards import WeightedReward, score

if TYPE_CHECKING:
    from perception_r1.model.policy import Policy, Rollout

#: sample keys copied into a completion-log row (the image itself is not logged)
LOGGED_SAMPLE_KEYS = ("image_size", "coords", "resized_size", "image_path")
#: a parsed answer is logged as its repr, cut to this many characters
PARSED_CHARS = 500


@dataclass
class Record:
    """One completion of one prompt, from the batch to the log."""

    sample: dict[str, Any]  # prepared: PIL image, ``coords`` set to the model's answer space
    task: Task
    prompt: str
    completion: str = ""
    reward: float = 0.0
    rewards: dict[str, float | None] = field(default_factory=dict)  # every named component
    advantage: float = 0.0
    answer: Any = None  # the parsed answer, as the task's reward reported it (None: did not parse, or not said)

    def parsed(self) -> str:
        """The task's reading of the completion, for people: the answer's repr or the parse error.

        The reward already parsed it; only a task that does not report its answer, or an unparsable
        completion (for the reason), is parsed here."""
        if self.answer is not None:
            return repr(self.answer)[:PARSED_CHARS]
        try:
            return repr(self.task.parse(self.completion))[:PARSED_CHARS]
        except ParseError as exc:
            return f"ParseError: {exc.reason}"

    def log_row(self, step: int) -> dict[str, Any]:
        """A ``completions.jsonl`` row; ``id`` names the sample as evaluation records do."""
        return {
            "step": step, "id": self.sample["id"], "task": self.task.name, "prompt": self.prompt,
            "completion": self.completion, "parsed": self.parsed(), "reward": self.reward,
            "rewards": self.rewards, "advantage": self.advantage, "solution": self.sample["solution"],
            **{k: self.sample[k] for k in LOGGED_SAMPLE_KEYS if k in self.sample},
        }


def group_records(samples: Sequence[dict[str, Any]], tasks: Sequence[Task], group_size: int) -> list[Record]:
    """N = P * G records for P prepared samples, each sample's G records in a row; one prompt per sample."""
    records = []
    for sample, task in zip(samples, tasks, strict=True):
        prompt = task.prompt(sample)
        records += [Record(sample, task, prompt) for _ in range(group_size)]
    return records


def rollout(policy: Policy, records: list[Record], group_size: int, max_new_tokens: int, temperature: float,
            logprobs: bool = False) -> Rollout:
    """Sample G completions per prompt (no gradients) and write them into the records; returns the rollout
    (with the sampler's own token log-probs when ``logprobs``: the sampler correction reads them)."""
    firsts = records[::group_size]  # (P,) one record per prompt
    with torch.no_grad():
        result = policy.generate(
            [r.prompt for r in firsts], [r.sample["image"] for r in firsts], num_generations=group_size,
            max_new_tokens=max_new_tokens, temperature=temperature, return_logprobs=logprobs,
        )
    for record, text in zip(records, result.texts, strict=True):
        record.completion = text
    return result


def reward_records(
    rewards: Sequence[WeightedReward], records: list[Record]
) -> tuple[torch.Tensor, dict[str, list[float | None]]]:
    """Every reward on every record: (N,) weighted totals, and each component over the records."""
    answers: list[Any] = [None] * len(records)
    totals, components = score(rewards, [r.completion for r in records], [r.sample for r in records], answers)
    for i, record in enumerate(records):
        record.reward, record.answer = totals[i], answers[i]
        record.rewards = {name: values[i] for name, values in components.items()}
    return torch.tensor(totals, dtype=torch.float32), components

