"""TRL's ``GRPOTrainer`` with our tasks: a data set in TRL's vision-language format and reward functions.

    from trl import GRPOConfig, GRPOTrainer
    from perception_r1.integrations import trl as pr1

    train = pr1.dataset("grounding", model_family="qwen2_5_vl", limit=512)
    trainer = GRPOTrainer(model=MODEL, args=GRPOConfig(...), train_dataset=train,
                          reward_funcs=pr1.reward_funcs("grounding", model_family="qwen2_5_vl"))

The data set has TRL's columns ``prompt`` (chat messages, the image as a content part) and ``image``, plus
``ground_truth`` (the JSON of :func:`perception_r1.integrations.common.ground_truth`), which TRL hands every
reward function as a keyword argument. Each reward function is one component: the task's own reward (named after
the task) and one per custom reward, already multiplied by its weight, so TRL's sum over functions (with
``GRPOConfig.reward_weights`` left at 1) is the total ``perception-r1 run`` trains on, and TRL logs each apart.
With ``GRPOConfig(log_completions=True)`` the task's function also logs the ground truth beside every completion,
so TRL's ``completions/*.parquet`` can be scored with ``perception-r1 score --from trl``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from perception_r1.contract import Task
from perception_r1.integrations.common import (
    AnswerSpace,
    Rewards,
    answer_space,
    check_space,
    completion_text,
    ground_truth,
    prepare,
    sample_from_ground_truth,
    task_of,
    task_samples,
)
from perception_r1.registry import Registry
from perception_r1.train.rewards import WeightedReward

RewardFunc = Callable[..., list[float | None]]


def messages(task: Task, sample: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The user turn TRL expects for a vision-language model: the image as a content part, then the prompt."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": task.prompt(sample)}]}]


def rows(task: Task | str, samples: Sequence[Mapping[str, Any]] | None = None, coords: str | None = None,
         model_family: str | None = None, registry: Registry | None = None, **source: Any) -> list[dict[str, Any]]:
    """TRL rows (``prompt``, ``image``, ``ground_truth``) of ``samples`` (else of :func:`task_samples` with
    ``source``: ``data``, ``split``, ``limit``, ``seed``), in the space of ``coords`` / ``model_family``."""
    task = task_of(task, registry)
    space = answer_space(task, coords, model_family)
    samples = task_samples(task, **source) if samples is None else samples
    out = []
    for sample in samples:
        ready = prepare(task, sample, space)
        out.append({"prompt": messages(task, ready), "image": ready["image"], "ground_truth": ground_truth(ready)})
    return out


def dataset(task: Task | str, samples: Sequence[Mapping[str, Any]] | None = None, coords: str | None = None,
            model_family: str | None = None, registry: Registry | None = None, **source: Any) -> Any:
    """A ``datasets.Dataset`` in TRL's vision-language format; see :func:`rows` for the arguments."""
    import datasets  # heavy (pyarrow, pandas): only when a data set is built

    table = rows(task, samples, coords, model_family, registry, **source)
    features = datasets.Features({
        "prompt": [{"role": datasets.Value("string"),
                    "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}]}],
        "image": datasets.Image(),
        "ground_truth": datasets.Value("string"),
    })
    return datasets.Dataset.from_list(table, features=features)


def save(data: Any, out: str | Path) -> Path:
    """Write a :func:`dataset` with ``save_to_disk`` (``datasets.load_from_disk(out)`` reads it back)."""
    data.save_to_disk(str(out))
    return Path(out)


def _reward_func(rewards: Rewards, part: WeightedReward, space: AnswerSpace | None, log_truth: bool) -> RewardFunc:
    def reward(prompts: list[Any], completions: list[Any], completion_ids: list[Any] | None = None,
               ground_truth: list[str] | None = None, **kwargs: Any) -> list[float | None]:
        if ground_truth is None:
            raise ValueError(f"reward '{part.name}': the data set has no 'ground_truth' column "
                             "(build it with perception_r1.integrations.trl.dataset)")
        samples = [sample_from_ground_truth(text) for text in ground_truth]
        for sample in samples:
            check_space(sample, space)
        if log_truth and callable(kwargs.get("log_extra")):  # TRL's completions table then carries the truth
            kwargs["log_extra"]("ground_truth", list(ground_truth))
        return rewards.component(part, [completion_text(c) for c in completions], samples)

    reward.__name__ = reward.__qualname__ = part.name  # TRL logs rewards/<name>
    return reward


def reward_funcs(task: Task | str, coords: str | None = None, model_family: str | None = None,
                 rewards: Sequence[str] | Mapping[str, float] | None = None,
                 registry: Registry | None = None) -> list[RewardFunc]:
    """TRL reward functions ``(prompts, completions, completion_ids=None, **kwargs) -> list[float | None]``:
    the task's own reward, then each custom one of ``rewards`` (``["brevity.length_penalty:0.1"]``), each
    returning its weighted value and named after its component. ``coords`` / ``model_family``, when given, must
    match the space the data set was exported for (a mismatch is an error, not a silent misreading)."""
    task = task_of(task, registry)
    space = answer_space(task, coords, model_family) if coords or model_family else None
    combined = Rewards(task, rewards, registry)
    return [_reward_func(combined, part, space, log_truth=part.task is not None) for part in combined.parts]
