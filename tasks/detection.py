"""Object detection: every object of the listed classes, as a JSON list of boxes with labels.

Answer (Qwen2.5-VL style), inside a ```json fence or as the whole completion::

    [{"bbox_2d": [x1, y1, x2, y2], "label": "person"}, ...]

Numbers are in the sample's ``coords`` space (default ``pixels``); :mod:`perception_r1.tasks.geometry`
converts them. Classes are compared by *name* (lowercase, trimmed), never by an index.

Reward (paper, "multi-subject reward matching"): predictions and ground truths are matched one-to-one
by the Hungarian algorithm with cost ``class mismatch + 5 * L1 + 2 * (-GIoU)`` (L1 summed over the four
coordinates of boxes normalised by the image size); matches with IoU > 0.5 are kept. Then, weighted by
:class:`DetectionWeights` (paper defaults)::

    total = w.format * 1 + w.f1 * F1 + w.class_accuracy * (share of kept matches with the right class)
            + w.iou * (mean IoU of kept matches) + w.missing_penalty * (-0.5 * (FP rate + FN rate))

with FP rate = unmatched predictions / predictions and FN rate = unmatched truths / truths (0 when the
denominator is 0). ``matching="sequential"`` (registered as task ``detection-sequential``) scores prediction i
against truth i instead, the paper's ablation without matching (COCO AP 31.9 -> 23.5). An answer that does
not parse scores 0. Empty truth + ``[]`` is a perfect answer.
Every extra box lowers F1 and raises the FP rate, so listing every class, repeating boxes or one
whole-image box cannot beat an honest answer.

Untrusted input bounds: at most :data:`MAX_TEXT_CHARS` characters are read and at most ``max_objects``
(default 300) objects are accepted (more is a format error), so matching costs at most 300 x |truth|.

Worst cases (measured in tests/test_reward_hacking.py, 2 objects, reward range [0, 3.75]): one of two found
scores 3.17; every COCO class on each true box 2.53 and the true box repeated 250 times 2.26 (the paper's
formula averages class accuracy and IoU over kept matches only, so these keep those components: below an
honest partial answer, but not near 0); ``[]`` 0.5; a whole-image box, every class on a whole-image box,
empty, '<...' and the prompt copied back score 0.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import jsonschema
import numpy as np

from perception_r1 import ParseError, RewardResult, Task, TaskRegister, hookimpl
from perception_r1.contract import Loaded, PaperBenchmark, Shapes
from perception_r1.errors import UserError
from perception_r1.tasks import geometry, rows, tiny_rl
from perception_r1.tasks.answers import FENCE, answer_numbers, bounded_text, json_answer
from perception_r1.tasks.coco import COCO_CLASSES, ImageBoxes, coco_ap, coco_files
from perception_r1.tasks.matching import MATCHINGS, assign
from perception_r1.tasks.scenes import SHAPES, random_scene

MAX_TEXT_CHARS = 64_000
MAX_LABEL_CHARS = 64
DEFAULT_MAX_OBJECTS = 300


@dataclass(frozen=True)
class DetectionWeights:
    """Weights of the reward components; the defaults are the paper's (format + 0.75 F1 + class + IoU,
    with the optional missing penalty on, as in its best ablation row). Set ``missing_penalty=0`` to
    turn the penalty off."""

    format: float = 1.0
    f1: float = 0.75
    class_accuracy: float = 1.0
    iou: float = 1.0
    missing_penalty: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"detection reward weight '{f.name}' must be a finite number >= 0, got {value!r}")

    @property
    def reward_range(self) -> tuple[float, float]:
        # worst parsed answer: format earned, everything else 0, both rates 1 (penalty -1); unparsed: 0
        return min(0.0, self.format - self.missing_penalty), self.format + self.f1 + self.class_accuracy + self.iou


class Objects(NamedTuple):
    """A parsed answer: ``(N, 4)`` boxes in the completion's space and one normalised label per box."""

    boxes: np.ndarray
    labels: list[str]


class MatchStats(NamedTuple):
    n_pred: int
    n_gt: int
    ious: np.ndarray  # IoU of each kept match
    same_class: np.ndarray  # bool, per kept match


def normalize_label(label: str) -> str:
    return " ".join(label.lower().split())


def parse_objects(text: str, max_objects: int = DEFAULT_MAX_OBJECTS) -> Objects:
    """Completion -> :class:`Objects`; ParseError when it is not a list of ``{"bbox_2d", "label"}``."""
    data = json_answer(bounded_text(text, MAX_TEXT_CHARS))
    if not isinstance(data, list):
        raise ParseError("answer is not a JSON list")
    if len(data) > max_objects:
        raise ParseError(f"more than {max_objects} objects")
    boxes: list[list[float]] = []
    labels: list[str] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ParseError(f"object {i} is not a JSON object")
        box, label = item.get("bbox_2d"), item.get("label")
        values = list(answer_numbers(box, 4, f"object {i}: bbox_2d", limit=math.inf))
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_CHARS:
            raise ParseError(f"object {i}: label is not a short non-empty string")
        boxes.append(values)
        labels.append(normalize_label(label))
    return Objects(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels)


def match_objects(
    pred_boxes: np.ndarray,
    pred_labels: Sequence[str],
    gt_boxes: np.ndarray,
    gt_labels: Sequence[str],
    image_size: Sequence[float],
    tolerance: np.ndarray | None = None,
    iou_threshold: float = 0.5,
    matching: str = "hungarian",
) -> MatchStats:
    """Hungarian matching of predictions to truths (all boxes in original pixels), kept if IoU > threshold.

    ``matching="sequential"`` pairs prediction i with truth i instead (the paper's ablation without matching).

    ``tolerance`` ([tx, ty] pixels, see ``geometry.grid_tolerance``): a predicted coordinate that close
    to its match's counts as equal, so ground truth rounded to the answer grid scores IoU 1.
    """
    pred = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    n_pred, n_gt = len(pred), len(gt)
    if n_pred == 0 or n_gt == 0:
        return MatchStats(n_pred, n_gt, np.zeros(0), np.zeros(0, dtype=bool))
    ids: dict[str, int] = {}  # label name -> integer id, so class comparisons are array operations
    p_ids = np.array([ids.setdefault(label, len(ids)) for label in pred_labels], dtype=np.int64)
    g_ids = np.array([ids.setdefault(label, len(ids)) for label in gt_labels], dtype=np.int64)
    mismatch = (p_ids[:, None] != g_ids[None, :]).astype(np.float64)
    pred_n = geometry.from_pixels(pred, "norm1", image_size)
    gt_n = geometry.from_pixels(gt, "norm1", image_size)
    with np.errstate(over="ignore", invalid="ignore"):
        l1 = np.abs(pred_n[:, None, :] - gt_n[None, :, :]).sum(axis=-1)
    cost = mismatch + 5.0 * l1 - 2.0 * geometry.giou_matrix(pred, gt)
    rows, cols = assign(cost, matching)
    matched_pred = pred[rows]
    if tolerance is not None:
        matched_pred = geometry.snap(matched_pred, gt[cols], tolerance)
    ious = geometry.paired_iou(matched_pred, gt[cols])
    keep = ious > iou_threshold
    same = p_ids[rows] == g_ids[cols]
    return MatchStats(n_pred, n_gt, ious[keep], same[keep])


def reward_components(stats: MatchStats) -> dict[str, float]:
    """F1, class accuracy, mean IoU and missing penalty (-0.5 (FP rate + FN rate)) of a matching."""
    n_pred, n_gt = stats.n_pred, stats.n_gt
    if n_pred == 0 and n_gt == 0:  # nothing to find, nothing claimed: perfect
        return {"f1": 1.0, "class_accuracy": 1.0, "iou": 1.0, "missing_penalty": 0.0}
    tp = len(stats.ious)
    f1 = 2.0 * tp / (n_pred + n_gt)
    fp_rate = (n_pred - tp) / n_pred if n_pred else 0.0
    fn_rate = (n_gt - tp) / n_gt if n_gt else 0.0
    return {
        "f1": f1,
        "class_accuracy": float(stats.same_class.mean()) if tp else 0.0,
        "iou": float(stats.ious.mean()) if tp else 0.0,
        "missing_penalty": -0.5 * (fp_rate + fn_rate) or 0.0,  # `or`: no -0.0 in logs
    }


def _solution(sample: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
    solution = sample["solution"]
    boxes = np.asarray(solution["boxes"], dtype=np.float64).reshape(-1, 4)
    labels = [normalize_label(label) for label in solution["labels"]]
    if len(labels) != len(boxes):
        raise ValueError(f"sample {sample.get('id', '?')}: {len(boxes)} boxes but {len(labels)} labels")
    return boxes, labels


# -- data: COCO 2017 ------------------------------------------------------------------------------------
#: the paper's detection results (COCO AP, 0-100) and the perceptual perplexity it measured on COCO
PAPER_BENCHMARKS = {
    "COCO val2017": PaperBenchmark({"AP": (16.1, 31.9), "AP50": (23.7, 46.7), "AP75": (16.7, 33.4)}, perplexity=3.47e83),
}


def _coco_index(data: Any, ann_path: Path) -> tuple[dict[Any, Any], dict[Any, list[tuple[int, Any]]]]:
    """(category id -> name, image id -> [(1-based annotation index, annotation)]) of a COCO instances file."""
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f"{ann_path}: not a COCO instances file (no 'images' list)")
    categories: dict[Any, Any] = {c.get("id"): c.get("name") for c in data.get("categories", []) if isinstance(c, dict)}
    by_image: dict[Any, list[tuple[int, Any]]] = {}
    for i, ann in enumerate(data.get("annotations", []), 1):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        by_image.setdefault(image_id, []).append((i, ann))
    return categories, by_image


def load_coco(task: Task, path: str | Path, split: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """One sample per image of ``instances_<split>2017.json``; crowd boxes (``iscrowd``) are left out,
    as COCO counts them as regions to ignore, not objects to find. Labels are category names."""
    ann_path, folder = coco_files(Path(path), split or "train")
    data = rows.read_json(ann_path)
    categories, by_image = _coco_index(data, ann_path)

    def convert(img: dict[str, Any]) -> list[dict[str, Any]]:
        if not isinstance(img, dict):
            raise rows.BadRow("an image entry must be a JSON object")
        boxes, labels = [], []
        for i, ann in by_image.get(img["id"], []):
            if ann.get("iscrowd"):
                continue
            name = categories.get(ann.get("category_id"))
            if not name:
                raise rows.BadRow(f"annotation {i}: category_id {ann.get('category_id')} is not in 'categories'")
            boxes.append(rows.xywh_box(ann["bbox"], f"annotation {i} bbox"))
            labels.append(name)
        sample = {"id": str(img["id"]), "query": {}, "solution": {"boxes": boxes, "labels": labels},
                  "image_size": rows.row_numbers([img["width"], img["height"]], 2, "image width/height")}
        return [rows.finish(task, sample, folder / str(img["file_name"]))]

    images = ((f"{ann_path}:image {i}", img) for i, img in enumerate(data["images"], 1))
    return rows.collect(task, images, convert, limit)


def _class_names(feature: Any) -> list[str] | None:
    """The names of the ClassLabel under an ``objects`` feature's ``category`` (however it is nested)."""
    if hasattr(feature, "names"):
        return list(feature.names)
    if isinstance(feature, dict):
        return _class_names(feature.get("category"))
    inner = getattr(feature, "feature", None)
    return _class_names(inner) if inner is not None else None


def load_hf_objects(task: Task, path: str | Path, split: str, limit: int | None = None) -> list[dict[str, Any]]:
    """A `datasets` object-detection set in the transformers convention (cppe-5, COCO exports): ``image``,
    ``objects`` with ``bbox`` (COCO xywh pixels) and ``category`` (ClassLabel ids, or names); ``image_id``."""
    names = ["validation", "val"] if split == "val" else [split]
    table, where = rows.dataset_table(path, names)
    classes = _class_names(table.features.get("objects"))

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        objects = row["objects"]
        if isinstance(objects, list):  # a list of {bbox, category} instead of columns of lists
            objects = {"bbox": [o["bbox"] for o in objects], "category": [o["category"] for o in objects]}
        if len(objects["bbox"]) != len(objects["category"]):
            raise rows.BadRow("objects: as many categories as boxes needed")
        labels = [classes[c] if classes and isinstance(c, int) else str(c) for c in objects["category"]]
        boxes = [rows.xywh_box(b, f"objects bbox {i + 1}") for i, b in enumerate(objects["bbox"])]
        sample: dict[str, Any] = {"query": {}, "solution": {"boxes": boxes, "labels": labels}}
        if row.get("image_id") is not None:
            sample["id"] = str(row["image_id"])
        return [rows.finish(task, sample, rows.embedded_image(row["image"]))]

    return rows.collect(task, where, convert, limit)


class DetectionTask(Task):
    name = "detection"
    description = "Find every object of the listed classes: JSON boxes with labels (COCO AP)."
    prompt_template = "Please output bbox coordinates and names of {classes}."
    default_query = {"classes": ", ".join(COCO_CLASSES)}
    coord_space = "pixels"
    solution_schema = {
        "type": "object",
        "required": ["boxes", "labels"],
        "properties": {
            "boxes": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
            },
            "labels": {"type": "array", "items": {"type": "string", "minLength": 1}},
        },
    }
    primary_metric = "AP"
    is_default = True  # the README's main command: the highest perceptual perplexity of the four
    higher_is_better = True
    best_metric_value = 100.0
    paper_benchmarks = PAPER_BENCHMARKS

    #: RL settings on the embedded base (issue 13; README "What run does"): improves held-out AP on seeds
    #: 0, 1, 2 (0.025 -> 0.075 / 0.064 / 0.038).
    tiny_run_defaults = tiny_rl.settings(steps=60, max_new_tokens=160)

    def __init__(
        self,
        prompt_template: str | None = None,
        weights: DetectionWeights | Mapping[str, float] | None = None,
        max_objects: int = DEFAULT_MAX_OBJECTS,
        iou_threshold: float = 0.5,
        matching: str = "hungarian",
    ) -> None:
        super().__init__(prompt_template)
        if matching not in MATCHINGS:
            raise ValueError(f"unknown matching {matching!r} (one of: {', '.join(MATCHINGS)})")
        self.matching = matching
        self.weights = weights if isinstance(weights, DetectionWeights) else DetectionWeights(**(weights or {}))
        self.reward_range = self.weights.reward_range
        self.max_objects = max_objects
        self.iou_threshold = iou_threshold

    def parse(self, text: str) -> Objects:
        return parse_objects(text, self.max_objects)

    def reward(self, completion: str, sample: Mapping[str, Any]) -> RewardResult:
        gt_boxes, gt_labels = _solution(sample)
        try:
            answer = self.parse(completion)
        except ParseError:
            return RewardResult(0.0, {"format": 0.0, "f1": None, "class_accuracy": None, "iou": None,
                                      "missing_penalty": None})
        space, size, resized = self.space(sample), sample["image_size"], sample.get("resized_size")
        stats = match_objects(
            geometry.to_pixels(answer.boxes, space, size, resized),
            answer.labels,
            gt_boxes,
            gt_labels,
            size,
            tolerance=geometry.grid_tolerance(space, size, resized),
            iou_threshold=self.iou_threshold,
            matching=self.matching,
        )
        parts = {"format": 1.0, **reward_components(stats)}
        weights = asdict(self.weights)
        total = sum(weights[key] * value for key, value in parts.items())
        components: dict[str, float | None] = dict(parts)
        return RewardResult(total, components, answer=answer)

    def evaluate(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """COCO AP / AP50 / AP75 (APs/APm/APl where defined) in 0-100; see :func:`coco.coco_ap`.

        No records, no metrics: AP is undefined on an empty set (records without a single truth box raise)."""
        if not records:
            return {}
        truths, predictions = [], []
        for record in records:
            size = tuple(record["image_size"])
            gt_boxes, gt_labels = _solution(record)
            truths.append(ImageBoxes(size, gt_boxes, gt_labels))
            try:
                answer = self.parse(record.get("completion") or "")
            except ParseError:
                answer = Objects(np.zeros((0, 4)), [])
            boxes = geometry.to_pixels(answer.boxes, self.space(record), size, record.get("resized_size"))
            predictions.append(ImageBoxes(size, boxes, answer.labels))
        return coco_ap(truths, predictions)

    def validate_solution(self, solution: Any) -> None:
        """The schema, and one label per box (which a JSON Schema cannot say)."""
        super().validate_solution(solution)
        if len(solution["boxes"]) != len(solution["labels"]):
            raise jsonschema.ValidationError(f"{len(solution['boxes'])} boxes but {len(solution['labels'])} labels "
                                             f"(one label per box)")

    def render(self, sample: Mapping[str, Any]) -> str:
        """The truth as a fenced JSON answer, numbers rounded to the answer grid of the sample's space."""
        gt_boxes, _ = _solution(sample)
        space = self.space(sample)
        values = geometry.from_pixels(gt_boxes, space, sample["image_size"], sample.get("resized_size"))
        unit = geometry.GRID_UNIT[space]
        objects = [
            {"bbox_2d": [_on_grid(v, unit) for v in box], "label": label}
            for box, label in zip(values.reshape(-1, 4), sample["solution"]["labels"], strict=True)
        ]
        return f"{FENCE}json\n{json.dumps(objects)}\n{FENCE}"

    def synthetic(self, rng: random.Random) -> dict[str, Any]:
        scene = random_scene(rng)
        return {
            "image": scene.image,
            "image_size": list(scene.image.size),
            "query": {"classes": ", ".join(SHAPES)},
            "solution": {
                "boxes": [[float(v) for v in obj.box] for obj in scene.objects],
                "labels": [obj.shape for obj in scene.objects],
            },
        }

    def load(self, path: str, split: str | None = None, limit: int | None = None) -> Loaded:
        """COCO 2017: ``<path>/annotations/instances_<split>2017.json`` + ``<path>/<split>2017/`` images; or a
        `datasets` source (``save_to_disk`` directory, cached Hub id) in the object-detection convention."""
        split = split or "train"
        if rows.is_dataset_source(path):
            return Loaded(load_hf_objects(self, path, split, limit), "hf-object-detection")
        return Loaded(load_coco(self, path, split, limit), "coco-2017", f"COCO {split.removesuffix('2017')}2017")

    def draw_solution(self, sample: Mapping[str, Any]) -> Shapes:
        solution = sample["solution"]
        return Shapes(boxes=[[float(v) for v in box] for box in solution["boxes"]],
                      labels=[str(label) for label in solution["labels"]])

    def draw_answer(self, answer: Objects, sample: Mapping[str, Any]) -> Shapes:
        boxes = geometry.to_pixels(answer.boxes, self.space(sample), sample["image_size"], sample.get("resized_size"))
        return Shapes(boxes=boxes.reshape(-1, 4).tolist(), labels=[str(label) for label in answer.labels])

    def caption(self, sample: Mapping[str, Any]) -> str:
        """Nothing: the query is the list of classes, the same long line for every sample."""
        return ""

    def objects(self, solution: Mapping[str, Any]) -> int:
        return len(solution["boxes"])


def _on_grid(value: float, unit: float) -> int | float:
    if unit == 1.0:
        return int(round(value))
    return round(round(value / unit) * unit, 6)


class SequentialDetectionTask(DetectionTask):
    """The paper's matching ablation: the same task, prompt, data and metric, but the reward scores
    prediction i against truth i (no Hungarian assignment). Paper: COCO AP 31.9 (Hungarian) -> 23.5."""

    name = "detection-sequential"
    description = "Detection with the reward's matching ablated: prediction i scored against truth i (paper: AP 23.5)."
    paper_benchmarks = {"COCO val2017": PaperBenchmark({"AP": (16.1, 23.5)})}
    is_default = False  # an ablation; `run` with no --task trains the real detection task

    def __init__(self, prompt_template: str | None = None, **options: Any) -> None:
        super().__init__(prompt_template, matching="sequential", **options)


@hookimpl
def register_tasks(register: TaskRegister) -> None:
    register(DetectionTask())
    register(SequentialDetectionTask())
