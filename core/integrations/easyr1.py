"""EasyR1 with our tasks: its JSONL layout and a batch reward function.

Rows are what EasyR1's ``RLHFDataset`` reads with its default keys: ``problem`` (the prompt, ``<image>`` where
the image goes), ``answer`` (our ground-truth JSON; EasyR1 hands it to the reward as ``ground_truth``) and
``images`` (paths relative to ``data.image_dir``). EasyR1 loads ``worker.reward.reward_function=FILE.py:NAME``,
reads the file's ``REWARD_TYPE`` ("batch": ``fn(list[RewardInput]) -> list[dict]``; "sequential": one
``RewardInput`` at a time) and adds ``worker.reward.reward_function_kwargs``. A ``RewardInput`` is
``{"response": str, "response_length": int, "ground_truth": str}``; each returned dict needs ``overall`` and its
other keys are logged as reward metrics, so every value is a float (0.0 where a component does not apply).

EasyR1 rescales every image into ``data.min_pixels``..``data.max_pixels`` (262144..4194304 by default) before
the processor resizes it: for Qwen2.5-VL's ``resized`` coordinates, export with the same two numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from perception_r1.contract import Task
from perception_r1.data.io import write_jsonl
from perception_r1.integrations import common
from perception_r1.registry import Registry

IMAGE_TOKEN = "<image>"
#: EasyR1's examples/config.yaml data.min_pixels / data.max_pixels
MIN_PIXELS, MAX_PIXELS = 262144, 4194304

REWARD_TYPE = "batch"
REWARD_NAME = "perception_r1"


def easyr1_prescale(min_pixels: int | None = MIN_PIXELS, max_pixels: int | None = MAX_PIXELS):
    """EasyR1's ``process_image`` size arithmetic: scale down into ``max_pixels``, then up into ``min_pixels``
    (each side truncated to an int, as PIL's resize is given it)."""

    def prescale(width: int, height: int) -> tuple[int, int]:
        if max_pixels is not None and width * height > max_pixels:
            factor = math.sqrt(max_pixels / (width * height))
            width, height = int(width * factor), int(height * factor)
        if min_pixels is not None and width * height < min_pixels:
            factor = math.sqrt(min_pixels / (width * height))
            width, height = int(width * factor), int(height * factor)
        return width, height

    return prescale


def rows(task: Task | str, out: str | Path, samples: Sequence[Mapping[str, Any]] | None = None,
         coords: str | None = None, model_family: str | None = None, min_pixels: int | None = MIN_PIXELS,
         max_pixels: int | None = MAX_PIXELS, split: str | None = None, registry: Registry | None = None,
         **source: Any) -> list[dict[str, Any]]:
    """EasyR1 rows of ``samples`` (else of the task's ``split`` from ``source``: ``data``, ``limit``, ``seed``);
    each image is written as ``out/images/<split>-<n>.png`` and named relative to ``out`` (``data.image_dir``)."""
    task, ready_samples = common.prepared(task, samples, coords, model_family, split, registry,
                                          prescale=easyr1_prescale(min_pixels, max_pixels), **source)
    (Path(out) / "images").mkdir(parents=True, exist_ok=True)
    table = []
    for index, ready in enumerate(ready_samples):
        image = f"images/{split or 'train'}-{index:06d}.png"
        ready["image"].save(Path(out) / image)
        table.append({"problem": IMAGE_TOKEN + task.prompt(ready), "answer": common.ground_truth(ready), "images": [image]})
    return table


def write(table: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """The rows as JSONL (``data.train_files=PATH``; EasyR1 reads ``.jsonl`` through ``datasets``' json builder)."""
    write_jsonl(path, table)
    return Path(path)


def compute_score(reward_inputs: list[dict[str, Any]], rewards: Sequence[str] | None = None,
                  **kwargs: Any) -> list[dict[str, float]]:
    """EasyR1's batch reward: for each ``{"response", "response_length", "ground_truth"}`` the task's reward
    (the task named in the ground truth), ``rewards`` (``reward_function_kwargs: {rewards: [NAME:W]}``) added as
    in ``perception-r1 run --reward``; ``{"overall": total, <component>: value, ...}`` per input."""
    samples = [common.sample_from_ground_truth(item["ground_truth"]) for item in reward_inputs]
    scores: list[dict[str, float]] = [{} for _ in reward_inputs]
    for task_name in dict.fromkeys(sample["task"] for sample in samples):  # tasks in order of first appearance
        picked = [i for i, sample in enumerate(samples) if sample["task"] == task_name]
        combined = common.Rewards(common.task_of(task_name), list(rewards or ()))
        rows_of_task = common.scored_rows(combined, [reward_inputs[i]["response"] for i in picked],
                                          [samples[i] for i in picked], "overall")
        for i, row in zip(picked, rows_of_task, strict=True):
            scores[i] = row
    return scores
