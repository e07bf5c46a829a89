"""What every trainer integration shares: samples with their ground truth as JSON, and the rewards that read it.

A foreign trainer hands a reward function only what its data row carried, as plain values; so each exported row
carries one JSON string (:func:`ground_truth`) with everything the task's reward reads: the task, the sample id,
the solution (original-image pixels), ``image_size``, ``query``, the space the model answers in (``coords``) and,
for ``resized`` coordinates, the size the model sees. :func:`sample_from_ground_truth` rebuilds the sample, and
:class:`Rewards` scores completions through the same code ``perception-r1 run`` and ``score`` use.

The answer space follows the model family (``perception_r1.model.families``): Qwen2-VL and Qwen3-VL answer in
0-1000, Qwen2.5-VL in pixels of the image its processor resized, which depends on the processor's resize rule;
:class:`AnswerSpace` keeps that rule, so the resized size is computed here once, at export, like the policy does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perception_r1.contract import COORD_SPACES, MODEL_COORD_SPACES, Task
from perception_r1.data.io import dumps
from perception_r1.data.loaders import load_samples
from perception_r1.data.prepare import prepare_sample
from perception_r1.data.synthetic import synthetic_samples
from perception_r1.errors import UserError
from perception_r1.model.families import FAMILIES, Family, family_of
from perception_r1.registry import Registry, get_registry
from perception_r1.tasks.geometry import smart_resize
from perception_r1.train.rewards import WeightedReward, build_rewards, parse_reward_flags, score

#: the sample keys a ground truth carries (everything a task's reward and evaluator read; never the image)
GROUND_TRUTH_KEYS = ("task", "id", "solution", "image_size", "query", "coords", "resized_size")
#: samples exported when neither ``limit`` nor ``data`` says otherwise
DEFAULT_SAMPLES = 256

#: how a family's processor resizes an image when nothing else says: Qwen2-VL / Qwen2.5-VL's
#: preprocessor_config.json defaults (patch 14 x merge 2; 4 to 16384 merged patches), which verl's
#: qwen_vl_utils.fetch_image uses too
QWEN_FACTOR, QWEN_MIN_PIXELS, QWEN_MAX_PIXELS = 28, 56 * 56, 28 * 28 * 16384


@dataclass(frozen=True)
class AnswerSpace:
    """The space a model answers boxes in and, for ``resized``, the resize rule of its processor.

    ``prescale`` is a trainer's own resize before the processor's (EasyR1 rescales every image into its
    ``min_pixels``/``max_pixels`` first). Has what :func:`perception_r1.data.prepare.prepare_sample` asks of a
    model: ``coord_space`` and ``resized_size(w, h)``.
    """

    coord_space: str
    factor: int = QWEN_FACTOR
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS
    prescale: Callable[[int, int], tuple[int, int]] | None = None

    def resized_size(self, width: int, height: int) -> list[int]:
        if self.prescale is not None:
            width, height = self.prescale(width, height)
        return list(smart_resize(width, height, factor=self.factor, min_pixels=self.min_pixels,
                                 max_pixels=self.max_pixels))


def _family(name: str) -> tuple[Family, Path | None]:
    """A family by model type (``qwen2_5_vl``), by its usual spelling (``Qwen2.5-VL``), or by a model directory."""
    path = Path(name)
    if (path / "config.json").is_file():
        try:
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"model {name}: cannot read its config.json ({exc})") from exc
        family = family_of(model_type)
        if family is None:
            raise UserError(f"model {name}: model type '{model_type}' is not an image-text-to-text model")
        return family, path
    key = name.lower().replace("-", "_").replace(".", "_")
    if key not in FAMILIES:
        raise UserError(f"unknown model family '{name}' (one of {', '.join(FAMILIES)}, or a model directory)")
    return FAMILIES[key], None


def _resize_rule(model_dir: Path | None) -> dict[str, int]:
    """The processor's resize rule from a model directory's preprocessor_config.json (the Qwen defaults else)."""
    rule = {"factor": QWEN_FACTOR, "min_pixels": QWEN_MIN_PIXELS, "max_pixels": QWEN_MAX_PIXELS}
    config_file = model_dir / "preprocessor_config.json" if model_dir else None
    if config_file is None or not config_file.is_file():
        return rule
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{config_file}: cannot read it ({exc})") from exc
    size = config.get("size") or {}
    rule["factor"] = int(config.get("patch_size", 14)) * int(config.get("merge_size", 2))
    rule["min_pixels"] = int(config.get("min_pixels") or size.get("shortest_edge") or QWEN_MIN_PIXELS)
    rule["max_pixels"] = int(config.get("max_pixels") or size.get("longest_edge") or QWEN_MAX_PIXELS)
    return rule


def answer_space(task: Task, coords: str | None = None, model_family: str | None = None,
                 prescale: Callable[[int, int], tuple[int, int]] | None = None) -> AnswerSpace:
    """The space ``task``'s completions are in: ``coords`` as given, or the space of ``model_family`` (a model type
    such as ``qwen2_5_vl`` / ``Qwen2.5-VL``, or a model directory, whose processor config then gives the resize
    rule), or else the task's own. A task without coordinates (OCR) always answers in ``none``."""
    if coords is not None and model_family is not None:
        raise UserError("give coords or a model family, not both")
    if task.coord_space == "none":
        return AnswerSpace("none")
    model_dir = None
    if model_family is not None:
        family, model_dir = _family(model_family)
        coords = family.coord_space
    coords = coords or task.coord_space
    if coords not in MODEL_COORD_SPACES:
        raise UserError(f"unknown coords '{coords}' (one of {', '.join(MODEL_COORD_SPACES)})")
    return AnswerSpace(coords, **_resize_rule(model_dir), prescale=prescale)


def task_of(task: Task | str, registry: Registry | None = None) -> Task:
    """A task given by name is looked up in the registry (the installed plugins)."""
    return (registry or get_registry()).task(task) if isinstance(task, str) else task


def task_samples(task: Task, data: str | Path | None = None, split: str | None = None, limit: int | None = None,
                 seed: int = 0) -> list[dict[str, Any]]:
    """Samples of ``task``: read from ``data`` by the task's loader, else its synthetic ``split`` (train)."""
    if data is not None:
        return load_samples(task, data, split or "train", limit).samples
    try:
        return synthetic_samples(task, split or "train", DEFAULT_SAMPLES if limit is None else limit, seed)
    except ValueError as exc:  # an unknown split
        raise UserError(f"--split: {exc}") from exc


def prepare(task: Task, sample: Mapping[str, Any], space: AnswerSpace) -> dict[str, Any]:
    """The sample as the model sees it (RGB image, ``coords``, ``resized_size``): the policy's own preparation."""
    return prepare_sample(sample, space, task)  # which also names the task in the sample


def prepared(task: Task | str, samples: Sequence[Mapping[str, Any]] | None = None, coords: str | None = None,
             model_family: str | None = None, split: str | None = None, registry: Registry | None = None,
             prescale: Callable[[int, int], tuple[int, int]] | None = None,
             **source: Any) -> tuple[Task, list[dict[str, Any]]]:
    """The task and its samples made ready for a trainer's rows: ``samples``, else the task's ``split`` from
    ``source`` (``data``, ``limit``, ``seed``), each prepared in the answer space of ``coords`` /
    ``model_family`` (``prescale``: the trainer's own resize before the processor's)."""
    task = task_of(task, registry)
    space = answer_space(task, coords, model_family, prescale=prescale)
    samples = task_samples(task, split=split, **source) if samples is None else samples
    return task, [prepare(task, sample, space) for sample in samples]


def scored_rows(rewards: Rewards, completions: Sequence[str], samples: Sequence[Mapping[str, Any]],
                total_key: str) -> list[dict[str, float]]:
    """Per completion ``{total_key: total, <component>: value, ...}``, as trainers log scores: every key always
    there, a component that does not apply as 0.0 (a None would break the trainer's means)."""
    totals, components = rewards.total(list(completions), list(samples))
    return [{total_key: total, **{key: float(values[n] or 0.0) for key, values in components.items()}}
            for n, total in enumerate(totals)]


def ground_truth(sample: Mapping[str, Any]) -> str:
    """The JSON a trainer carries beside the prompt: every key of a prepared sample a reward reads."""
    return dumps({key: sample[key] for key in GROUND_TRUTH_KEYS if key in sample})


def sample_from_ground_truth(text: str | Mapping[str, Any]) -> dict[str, Any]:
    """The sample (without its image) a :func:`ground_truth` string describes; a UserError when it is not one."""
    try:
        sample = json.loads(text) if isinstance(text, str | bytes) else dict(text)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise UserError(f"ground truth is not a perception-r1 ground-truth JSON object ({exc})") from exc
    if not isinstance(sample, dict):
        raise UserError(f"ground truth is a JSON {type(sample).__name__}, not an object")
    missing = [key for key in ("task", "solution", "image_size") if key not in sample]
    if missing:
        raise UserError(f"ground truth lacks {', '.join(missing)} (was it written by perception-r1 export?)")
    if sample.get("coords", "none") not in COORD_SPACES:
        raise UserError(f"ground truth: unknown coords {str(sample['coords'])[:40]!r}")
    return sample


def check_space(sample: Mapping[str, Any], space: AnswerSpace | None) -> None:
    """A reward told the model's space refuses rows exported for another: the numbers would be misread."""
    if space is not None and sample.get("coords", "none") not in ("none", space.coord_space):
        raise UserError(f"sample {str(sample.get('id', '?'))[:80]!r} was exported for coords '{sample['coords']}', "
                        f"but the reward was built for '{space.coord_space}': export it again for this model")


def completion_text(completion: Any) -> str:
    """A completion as text: a string, or chat messages (TRL's conversational completions) joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    parts = []
    for message in completion:
        content = message.get("content") if isinstance(message, Mapping) else message
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, Sequence):  # content parts: [{"type": "text", "text": ...}]
            parts += [p.get("text") or "" for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
    return "".join(parts)


class Rewards:
    """A task's own reward plus custom rewards, weighted as ``perception-r1 run --reward NAME:W`` weights them.

    ``rewards`` is a list of ``NAME:W`` flags or a ``{name: weight}`` mapping; the task's own reward keeps weight
    1 unless named (``ocr:0`` drops it). Every value goes through :func:`perception_r1.train.rewards.score`: the
    guarded task reward, the same finiteness and range checks as a run.
    """

    def __init__(self, task: Task, rewards: Sequence[str] | Mapping[str, float] | None = None,
                 registry: Registry | None = None) -> None:
        self.task = task
        weights = dict(rewards) if isinstance(rewards, Mapping) else parse_reward_flags(rewards or [])
        self.parts: list[WeightedReward] = build_rewards(registry or get_registry(), [task], weights)

    def component(self, part: WeightedReward, completions: Sequence[str],
                  samples: Sequence[Mapping[str, Any]]) -> list[float | None]:
        """``part``'s weighted value per completion (None where it does not apply)."""
        _, components = score([part], completions, samples)
        return [None if value is None else part.weight * value for value in components[part.name]]

    def total(self, completions: Sequence[str],
              samples: Sequence[Mapping[str, Any]]) -> tuple[list[float], dict[str, list[float | None]]]:
        """Weighted totals and every component (``<task>/<component>`` and each reward's own value)."""
        return score(self.parts, completions, samples)

