"""Visual grounding: one box for a referring expression ("the red circle").

Answer formats accepted by :meth:`GroundingTask.parse` (the whole answer, surrounding spaces allowed):

* Qwen2-VL: ``(x1,y1),(x2,y2)``, optionally wrapped in ``<|box_start|>...<|box_end|>`` and preceded by
  ``<|object_ref_start|>expr<|object_ref_end|>`` or by the bare expression (what is left when the
  special tokens are decoded away). Spaces around numbers and commas are fine; numbers are plain
  decimals (``12``, ``-3``, ``0.25``).
* JSON (Qwen2.5-VL style, optionally in a ```json fence): ``[x1, y1, x2, y2]``, ``{"bbox_2d": [...]}``
  or a one-element list of that object.

Exactly one box; ``x2 >= x1`` and ``y2 >= y1`` (swapped corners are a format error, not silently
reordered). Completions longer than :data:`MAX_CHARS` are rejected before any parsing, so parsing is
bounded in time and memory whatever the model writes.

The numbers are in the sample's ``coords`` space (default ``norm1000``); they reach pixels only through
:mod:`perception_r1.tasks.geometry`.

Reward: ``format`` (1 when the answer parses, else 0 and nothing else is scored) + ``IoU ** iou_power``,
so ``total`` is in [0, 2]. ``iou_power`` defaults to 2 as in the paper's released code (the paper's
text says IoU; IoU^2 sharpens the signal near a correct box); pass ``iou_power=1`` for plain IoU. The
``iou`` component is always the plain IoU. Whole-image or wildly large boxes earn IoU ~ box area /
image area, squared: almost nothing beyond the format point.

Answer-grid dead zone: a model writes integers (0-1000 or pixels), so even a perfect model cannot hit
the ground truth exactly. A predicted coordinate within half a grid unit of the ground truth's
(:func:`geometry.grid_tolerance`) counts as exact, in the reward and the metrics alike; the rounded
ground truth therefore scores exactly the maximum. On real images this changes IoU by < 0.2 %.

Metrics: ``acc@0.5``, ``acc@0.75``, ``acc@0.95`` (share of records with IoU >= threshold), ``acc_mean``
(their mean), ``miou`` (mean IoU) and ``format_rate``; a completion that does not parse has IoU 0.

Worst cases (measured in tests/test_reward_hacking.py, 200x200 image, reward range [0, 2]): an honest box at
IoU 0.81 scores 1.66; a whole-image box 1.01 and a degenerate box 1.00 (format only: IoU^2 is near 0); empty,
format tokens only, an answer starting with '<', the prompt copied back, two boxes, the answer repeated and
non-finite numbers all score 0.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from perception_r1 import ParseError, RewardResult, Task, hookimpl
from perception_r1.tasks import geometry
from perception_r1.tasks.answers import (
    BOX,
    BOX_END,
    BOX_START,
    REF,
    Box,
    answer_body,
    check_box,
    compact,
    decimals_for,
    format_number,
    load_json,
    numbers,
)
from perception_r1.tasks.rows import load_jsonl, row_sample
from perception_r1.tasks.scenes import COLORS, SHAPES, place_objects

#: longest completion parsed at all; a box answer is < 100 characters
MAX_CHARS = 2000
THRESHOLDS = (0.5, 0.75, 0.95)

_QWEN = re.compile(rf"{REF}(?:{BOX_START})?{BOX}(?:{BOX_END})?\.?")


def parse_box(text: str) -> Box:
    """One box from a completion, in the completion's own space. See the module docstring."""
    body = answer_body(text, MAX_CHARS)
    match = _QWEN.fullmatch(compact(body))
    if match:
        return check_box(tuple(float(v) for v in match.groups()))
    if body[0] not in "[{":
        raise ParseError("expected (x1,y1),(x2,y2) or a JSON [x1, y1, x2, y2]")
    value = load_json(body)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value = value[0]
    if isinstance(value, dict):
        key = "bbox_2d" if "bbox_2d" in value else "bbox"
        value = value.get(key)
    return check_box(numbers(value, 4, "the box"))


def resized_size(sample: Mapping[str, Any]) -> Any:
    return sample.get("resized_size")


def box_iou(box: Sequence[float], sample: Mapping[str, Any], space: str) -> float:
    """IoU of an answer box (in ``space``) with the sample's ground truth, with the grid dead zone."""
    size, resized = sample["image_size"], resized_size(sample)
    gt = np.asarray(sample["solution"]["bbox"], dtype=np.float64)
    pred = geometry.to_pixels(np.asarray(box, dtype=np.float64), space, size, resized)
    pred = geometry.snap(pred, gt, geometry.grid_tolerance(space, size, resized))
    return geometry.iou(pred, gt)


def _grounding_row(row: dict[str, Any]) -> dict[str, Any]:
    if "bbox_xywh" in row:  # COCO / RefCOCO annotations
        bbox = geometry.xywh_to_xyxy(numbers(row["bbox_xywh"], 4, "bbox_xywh")).tolist()
    else:
        bbox = list(numbers(row["bbox"], 4, "bbox"))
    check_box(bbox)
    return row_sample({"expression": str(row["expression"])}, {"bbox": bbox}, row)


class GroundingTask(Task):
    name = "grounding"
    description = "Box the object a referring expression names (Qwen2-VL (x1,y1),(x2,y2) answer, IoU reward)."
    prompt_template = "Output the bounding box of the {expression} in the image."
    coord_space = "norm1000"
    solution_schema = {
        "type": "object",
        "required": ["bbox"],
        "properties": {
            "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
        },
    }
    reward_range = (0.0, 2.0)
    primary_metric = "acc@0.5"
    default_query = {"expression": "object"}

    def __init__(self, prompt_template: str | None = None, iou_power: float = 2.0) -> None:
        super().__init__(prompt_template)
        if not iou_power > 0:
            raise ValueError(f"iou_power must be > 0, got {iou_power}")
        self.iou_power = iou_power

    def parse(self, text: str) -> Box:
        return parse_box(text)

    def reward(self, completion: str, sample: Mapping[str, Any]) -> RewardResult:
        try:
            box = self.parse(completion)
        except ParseError:
            return RewardResult(0.0, {"format": 0.0, "iou": None})
        overlap = box_iou(box, sample, self.space(sample))
        return RewardResult(1.0 + overlap**self.iou_power, {"format": 1.0, "iou": overlap})

    def evaluate(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        if not records:
            return {}
        ious, parsed = [], 0
        for record in records:
            try:
                box = self.parse(record.get("completion") or "")
            except ParseError:
                ious.append(0.0)
                continue
            parsed += 1
            ious.append(box_iou(box, record, self.space(record)))
        values = np.asarray(ious)
        metrics = {f"acc@{t}": float(np.mean(values >= t)) for t in THRESHOLDS}
        metrics["acc_mean"] = float(np.mean([metrics[f"acc@{t}"] for t in THRESHOLDS]))
        metrics["miou"] = float(values.mean())
        metrics["format_rate"] = parsed / len(records)
        return metrics

    def render(self, sample: Mapping[str, Any]) -> str:
        """Qwen2-VL's box tokens in norm1000; ``{"bbox_2d": [...]}`` in the other spaces."""
        space = self.space(sample)
        box = geometry.from_pixels(sample["solution"]["bbox"], space, sample["image_size"], resized_size(sample))
        x1, y1, x2, y2 = (format_number(v, decimals_for(space)) for v in box)
        if space == "norm1000":
            return f"<|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>"
        return f'{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}]}}'

    def load(self, path: str, split: str | None = None) -> list[dict[str, Any]]:
        """RefCOCO-style JSONL, one referring expression per line:
        ``{"image": "rel/path.jpg", "expression": "...", "bbox": [x1, y1, x2, y2]}`` in pixels (or
        ``"bbox_xywh"`` as in COCO annotations), optional ``"image_size": [w, h]`` and ``"id"``."""
        return load_jsonl(self, path, split, _grounding_row)

    def synthetic(self, rng: random.Random) -> dict[str, Any]:
        """1-3 objects of distinct (color, shape) kinds; the expression names one of them."""
        pool = [(shape, color) for shape in SHAPES for color in COLORS]
        kinds = rng.sample(pool, rng.randint(1, 3))
        scene = place_objects(rng, kinds, min_size=18, max_size=40)
        target = rng.choice(scene.objects)
        return {
            "image": scene.image,
            "image_size": list(scene.image.size),
            "query": {"expression": f"{target.color} {target.shape}"},
            "solution": {"bbox": list(target.box)},
        }


@hookimpl
def register_tasks(register: Any) -> None:
    register(GroundingTask())
