"""verl with our tasks: its parquet layout and the ``compute_score`` function its reward manager calls.

Rows follow verl's multimodal recipe (``examples/data_preprocess/geo3k.py``): ``data_source`` (our task's name),
``prompt`` (chat messages, ``<image>`` where the image goes), ``images`` (``[{"bytes": PNG}]``), ``ability``,
``reward_model`` (``{"style": "rule", "ground_truth": <JSON>}``) and ``extra_info``. verl's reward managers call
``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`` once per response, plus
``custom_reward_function.reward_kwargs``; a dict return must hold ``score`` (the reward) and its other keys are
logged as ``reward_extra_info``, so every value here is a float (0.0 where a component does not apply).

    custom_reward_function.path=OUT/reward.py custom_reward_function.name=compute_score
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from perception_r1.contract import Task
from perception_r1.errors import UserError
from perception_r1.integrations import common
from perception_r1.registry import Registry

IMAGE_TOKEN = "<image>"


def png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def rows(task: Task | str, samples: Sequence[Mapping[str, Any]] | None = None, coords: str | None = None,
         model_family: str | None = None, split: str | None = None, registry: Registry | None = None,
         **source: Any) -> list[dict[str, Any]]:
    """verl rows of ``samples`` (else of the task's samples from ``source``: ``data``, ``limit``, ``seed``)."""
    task, ready_samples = common.prepared(task, samples, coords, model_family, split, registry, **source)
    out = []
    for index, ready in enumerate(ready_samples):
        out.append({
            "data_source": task.name,
            "prompt": [{"role": "user", "content": IMAGE_TOKEN + task.prompt(ready)}],
            "images": [{"bytes": png_bytes(ready["image"])}],
            "ability": "perception",
            "reward_model": {"style": "rule", "ground_truth": common.ground_truth(ready)},
            "extra_info": {"split": split or "train", "index": index, "id": str(ready.get("id", index))},
        })
    return out


def write_parquet(table: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """The rows as one parquet file (what ``data.train_files`` / ``data.val_files`` name)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(list(table)), path)
    return path


def compute_score(data_source: str, solution_str: str, ground_truth: str,
                  extra_info: Mapping[str, Any] | None = None, rewards: Sequence[str] | None = None,
                  **kwargs: Any) -> dict[str, float]:
    """verl's reward signature: the reward of the task named ``data_source`` (installed, or a plugin) for one
    response, ``rewards`` (``custom_reward_function.reward_kwargs.rewards=[NAME:W, ...]``) added as in
    ``perception-r1 run --reward``. Returns ``{"score": total, <component>: value, ...}``."""
    sample = common.sample_from_ground_truth(ground_truth)
    if sample["task"] != data_source:
        raise UserError(f"data_source '{data_source}' but the ground truth is of task '{sample['task']}'")
    return common.scored_rows(_rewards(data_source, tuple(rewards or ())), [solution_str], [sample], "score")[0]


_CACHE: dict[tuple[str, tuple[str, ...]], common.Rewards] = {}


def _rewards(task_name: str, flags: tuple[str, ...]) -> common.Rewards:
    """verl calls once per response: the task and its weights are resolved once per process."""
    if (task_name, flags) not in _CACHE:
        _CACHE[task_name, flags] = common.Rewards(common.task_of(task_name), list(flags))
    return _CACHE[task_name, flags]
