"""COCO: the 80 class names and a COCOeval wrapper that works on in-memory boxes matched by class *name*.

:func:`coco_ap` builds the ground-truth and detection ``COCO`` objects in memory (no files) and runs
pycocotools' ``COCOeval`` for boxes. As in the paper every predicted box has score 1.0, so ranking
within and across images follows the order of the predictions (COCOeval sorts stably). Categories are
the ground truth's label names; a predicted label that names no ground-truth category is dropped: it
could match nothing, and COCOeval never scores detections of a category without ground truth.
Box area (for APs/APm/APl) is the box's w * h, as there are no masks.

Metrics are pycocotools' ``stats`` x 100 (0-100, as COCO results are quoted), rounded to
:data:`PERCENT_DECIMALS` = 10 decimals of percent (1e-12 on COCOeval's 0-1 scale): enough to turn
COCOeval's float noise on a perfect answer (99.99999999999997) into exactly 100, and far below the
1e-9 to which the result equals plain pycocotools. An area range without any ground-truth box has no
defined AP (COCOeval says -1): it is left out of the result instead of reported as a number.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perception_r1.errors import UserError
from perception_r1.tasks.geometry import xyxy_to_xywh

#: the 80 COCO detection classes in their usual order (category ids 1..90 with gaps; we map by name)
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

#: decimals of percent the metrics are rounded to (1e-12 on the 0-1 scale)
PERCENT_DECIMALS = 10

#: COCOeval ``stats`` indices of the reported metrics
STAT_NAMES = {"AP": 0, "AP50": 1, "AP75": 2, "APs": 3, "APm": 4, "APl": 5}


@dataclass
class ImageBoxes:
    """The boxes of one image: ``(N, 4)`` xyxy original-image pixels and one label name per box."""

    image_size: tuple[float, float]
    boxes: np.ndarray
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if len(self.labels) != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.labels)} labels")


def _quiet():
    """COCO and COCOeval print progress to stdout; the caller's output stays clean."""
    return contextlib.redirect_stdout(io.StringIO())


def coco_ap(ground_truth: Sequence[ImageBoxes], predictions: Sequence[ImageBoxes]) -> dict[str, float]:
    """COCO box AP, AP50, AP75 (and APs/APm/APl where defined) in 0-100, image ``i`` of both lists paired.

    Raises ``ValueError`` when there is no ground-truth box at all (AP is undefined) or the lists
    differ in length.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(ground_truth) != len(predictions):
        raise ValueError(f"{len(ground_truth)} ground-truth images but {len(predictions)} prediction lists")
    names = sorted({label for image in ground_truth for label in image.labels})
    if not names:
        raise ValueError("COCO AP is undefined: the records hold no ground-truth box")
    cat_id = {name: i + 1 for i, name in enumerate(names)}

    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, image in enumerate(ground_truth, start=1):
        w, h = image.image_size
        images.append({"id": image_id, "width": float(w), "height": float(h)})
        for box, label in zip(xyxy_to_xywh(image.boxes), image.labels, strict=True):
            annotations.append(_annotation(len(annotations) + 1, image_id, cat_id[label], box))
    detections: list[dict[str, Any]] = []
    for image_id, image in enumerate(predictions, start=1):
        for box, label in zip(xyxy_to_xywh(image.boxes), image.labels, strict=True):
            if label in cat_id:
                ann = _annotation(len(detections) + 1, image_id, cat_id[label], box)
                detections.append({**ann, "score": 1.0})

    with _quiet():
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": i, "name": n} for n, i in cat_id.items()],
        }
        gt.createIndex()
        if not detections:
            # loadRes cannot take an empty list; no detection means zero precision everywhere
            return {name: 0.0 for name in _defined_stats(gt)}
        dt = gt.loadRes(detections)
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    # rounded far below 1e-9 (the raw stats stay equal to pycocotools') yet enough that COCOeval's float
    # noise does not report a perfect 100 as 99.99999999999997
    return {name: round(100.0 * float(stats[i]), PERCENT_DECIMALS) for name, i in STAT_NAMES.items() if stats[i] >= 0}


def _annotation(ann_id: int, image_id: int, category_id: int, xywh: np.ndarray) -> dict:
    x, y, w, h = (float(v) for v in xywh)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [x, y, w, h],
        "area": max(w, 0.0) * max(h, 0.0),
        "iscrowd": 0,
    }


def _defined_stats(gt) -> list[str]:
    """The metric names COCOeval would report (>= 0) for ``gt``: area ranges that hold a box."""
    areas = [ann["area"] for ann in gt.dataset["annotations"]]
    ranges = {"APs": (0, 32**2), "APm": (32**2, 96**2), "APl": (96**2, 1e10)}
    defined = ["AP", "AP50", "AP75"]
    defined += [name for name, (lo, hi) in ranges.items() if any(lo <= a <= hi for a in areas)]
    return defined


def coco_files(root: Path, split: str) -> tuple[Path, Path]:
    """(annotations file, image folder) of a COCO 2017 layout; ``val`` -> ``val2017``."""
    name = split if split.endswith("2017") else f"{split}2017"
    for ann in (root / "annotations" / f"instances_{name}.json", root / f"instances_{name}.json"):
        if ann.is_file():
            return ann, root / name
    raise UserError(f"{root}: no annotations/instances_{name}.json (COCO 2017 layout)")

