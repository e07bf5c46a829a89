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

Metrics: ``acc@0.1``, ``acc@0.3``, ``acc@0.5``, ``acc@0.75``, ``acc@0.95`` (share of records with IoU >=
threshold: the official script's ACC@0.1-0.95; the paper reports Acc@0.5), ``acc_mean`` (the mean of Acc@0.5,
0.75 and 0.95), ``center_acc`` (the official Center_ACC: the predicted box's centre lies inside the truth box),
``miou`` (mean IoU: the official IoU) and ``format_rate``; a completion that does not parse has IoU 0 and no
centre. Ours are fractions where the official script prints percent, and measure the answer in original
pixels against the pixel ``solution`` with the grid dead zone; the official script compares a 0-1000 answer
with the rounded ``normalized_solution`` and adds 1e-10 to the IoU's denominator (a difference below 1e-9 for
any box of at least one pixel; tests/test_official_files.py checks both against a transcription).

Worst cases (measured in tests/test_reward_hacking.py, 200x200 image, reward range [0, 2]): an honest box at
IoU 0.81 scores 1.66; a whole-image box 1.01 and a degenerate box 1.00 (format only: IoU^2 is near 0); empty,
format tokens only, an answer starting with '<', the prompt copied back, two boxes, the answer repeated and
non-finite numbers all score 0.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from perception_r1 import ParseError, RewardResult, Task, TaskRegister, hookimpl
from perception_r1.contract import Loaded, PaperBenchmark, Shapes
from perception_r1.errors import UserError
from perception_r1.tasks import geometry, rows, tiny_rl
from perception_r1.tasks.answers import (
    BOX,
    BOX_END,
    BOX_START,
    REF,
    Box,
    answer_body,
    answer_numbers,
    check_box,
    compact,
    decimals_for,
    format_number,
    load_json,
)
from perception_r1.tasks.scenes import COLORS, SHAPES, place_objects

#: longest completion parsed at all; a box answer is < 100 characters
MAX_CHARS = 2000
THRESHOLDS = (0.5, 0.75, 0.95)
#: the official evaluate_grounding.py's ACC@ thresholds (acc_mean stays the mean over THRESHOLDS)
OFFICIAL_THRESHOLDS = (0.1, 0.3, 0.5, 0.75, 0.95)

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
    return check_box(answer_numbers(value, 4, "the box"))


def resized_size(sample: Mapping[str, Any]) -> Any:
    return sample.get("resized_size")


def pixel_box(box: Sequence[float], sample: Mapping[str, Any], space: str) -> np.ndarray:
    """An answer box (in ``space``) in original pixels, snapped to the truth within the grid dead zone."""
    size, resized = sample["image_size"], resized_size(sample)
    pred = geometry.to_pixels(np.asarray(box, dtype=np.float64), space, size, resized)
    return geometry.snap(pred, truth_box(sample), geometry.grid_tolerance(space, size, resized))


def truth_box(sample: Mapping[str, Any]) -> np.ndarray:
    return np.asarray(sample["solution"]["bbox"], dtype=np.float64)


def box_iou(box: Sequence[float], sample: Mapping[str, Any], space: str) -> float:
    """IoU of an answer box (in ``space``) with the sample's ground truth, with the grid dead zone."""
    return geometry.iou(pixel_box(box, sample, space), truth_box(sample))


#: the paper's grounding results (Acc@0.5 as a fraction); one answer per sample: perceptual perplexity 1
PAPER_BENCHMARKS = {
    name: PaperBenchmark({"acc@0.5": pair}, perplexity=1.0)
    for name, pair in {
        "RefCOCO val": (0.868, 0.891), "RefCOCO testA": (0.896, 0.914), "RefCOCO testB": (0.820, 0.845),
        "RefCOCO+ val": (0.771, 0.817), "RefCOCO+ testA": (0.825, 0.868), "RefCOCO+ testB": (0.701, 0.743),
        "RefCOCOg val": (0.833, 0.857), "RefCOCOg test": (0.831, 0.854),
    }.items()
}


# -- data: RefCOCO / RefCOCO+ / RefCOCOg, and a plain JSONL ------------------------------------------
REFCOCO_NAMES = {"refcoco": "RefCOCO", "refcoco+": "RefCOCO+", "refcocoplus": "RefCOCO+", "refcocop": "RefCOCO+",
                 "refcocog": "RefCOCOg"}
#: a RefCOCO-family evaluation file: Qwen-VL's ``refcocog_test.jsonl``, PR1/VLM-R1's ``refcocop_testA.json``
_REFCOCO_FILE = re.compile(r"^(refcoco(?:\+|p|plus|g)?)_(val|testa|testb|test)\.jsonl?$", re.IGNORECASE)
_SPLITS = {"val": "val", "testa": "testA", "testb": "testB", "test": "test"}


def refcoco_name(path: Path) -> str | None:
    """'RefCOCO', 'RefCOCO+' or 'RefCOCOg' from a folder or file name, else None."""
    for part in reversed(path.parts):
        key = part.lower().split("_")[0].removesuffix(".jsonl").removesuffix(".json")
        if key in REFCOCO_NAMES:
            return REFCOCO_NAMES[key]
    return None


def file_benchmark(file: Path) -> str | None:
    """The paper benchmark an evaluation file's name says it is (``refcoco_val.json`` -> 'RefCOCO val')."""
    match = _REFCOCO_FILE.match(file.name)
    return f"{REFCOCO_NAMES[match.group(1).lower()]} {_SPLITS[match.group(2).lower()]}" if match else None


def _bench(path: Path, split: str) -> str | None:
    name = refcoco_name(path)
    return f"{name} {split}" if name else None


def _expressions(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
        raise rows.BadRow("referring expression(s) must be a non-empty string or list of strings")
    return [s.strip() for s in items]


def load_refcoco_parquet(task: Task, root: Path, split: str, limit: int | None = None) -> list[dict[str, Any]]:
    """lmms-lab RefCOCO-family parquet: one sample per referring expression of each row."""

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        image = rows.embedded_image(row["image"])
        box = rows.xywh_box(row["bbox"])
        base = str(row.get("question_id") or row.get("file_name") or "")
        out = []
        for k, expr in enumerate(_expressions(row.get("answer", row.get("question")))):
            sample = {"query": {"expression": expr}, "solution": {"bbox": box}}
            if base:
                sample["id"] = f"{base}-{k}"
            out.append(rows.finish(task, sample, image))
        return out

    return rows.collect(task, rows.table_rows(root, [split]), convert, limit)


def _refs_file(root: Path) -> Path | None:
    for name in ("refs(unc).json", "refs(umd).json", "refs(google).json", "refs.json"):
        if (root / name).is_file():
            return root / name
    return None


def load_refer_json(task: Task, root: Path, split: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The refer toolkit's refs (as JSON) + COCO ``instances.json`` + images: one sample per sentence."""
    refs_path, instances_path = _refs_file(root), root / "instances.json"
    if refs_path is None or not instances_path.is_file():
        raise UserError(f"{root}: need refs(unc).json (or refs(umd).json / refs.json) and instances.json")
    refs, instances = rows.read_json(refs_path), rows.read_json(instances_path)
    if not isinstance(refs, list) or not isinstance(instances, dict):
        raise UserError(f"{refs_path}: expected a list of refs; {instances_path}: a COCO object")
    images = {img.get("id"): img for img in instances.get("images", []) if isinstance(img, dict)}
    anns = {ann.get("id"): ann for ann in instances.get("annotations", []) if isinstance(ann, dict)}
    folder = rows.images_dir(root)

    def convert(ref: dict[str, Any]) -> list[dict[str, Any]]:
        if not isinstance(ref, dict):
            raise rows.BadRow("a ref must be a JSON object")
        ann, img = anns.get(ref["ann_id"]), images.get(ref["image_id"])
        if ann is None:
            raise rows.BadRow(f"ann_id {ref['ann_id']} is not in {instances_path.name}")
        if img is None:
            raise rows.BadRow(f"image_id {ref['image_id']} is not in {instances_path.name}")
        box = rows.xywh_box(ann["bbox"])
        size = rows.row_numbers([img["width"], img["height"]], 2, "image width/height")
        sentences = [s.get("sent") if isinstance(s, dict) else s for s in ref["sentences"]]
        out = []
        for k, sent in enumerate(_expressions(sentences)):
            sample = {"id": f"ref{ref.get('ref_id', '?')}-{k}", "query": {"expression": sent},
                      "solution": {"bbox": box}, "image_size": size}
            out.append(rows.finish(task, sample, folder / str(img["file_name"])))
        return out

    mine = ((f"{refs_path}:ref {i}", ref) for i, ref in enumerate(refs, 1)
            if not isinstance(ref, dict) or ref.get("split") == split)
    return rows.collect(task, mine, convert, limit)


def load_qwen_refcoco_jsonl(task: Task, file: Path, found: rows.Rows, limit: int | None = None) -> list[dict[str, Any]]:
    """Qwen-VL's RefCOCO evaluation JSONL: ``image`` (relative path), ``sent``, ``bbox`` xyxy, ``width``/``height``."""

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        sample: dict[str, Any] = {"query": {"expression": _expressions(row["sent"])[0]},
                                  "solution": {"bbox": rows.xyxy_box(row["bbox"])}}
        if "width" in row and "height" in row:
            sample["image_size"] = rows.row_numbers([row["width"], row["height"]], 2, "width/height")
        return [rows.finish(task, sample, rows.local_image(file, row["image"]))]

    return rows.collect(task, found, convert, limit)


def load_pr1_json(task: Task, file: Path, found: rows.Rows, limit: int | None = None) -> list[dict[str, Any]]:
    """PR1 / VLM-R1's grounding files (``refcoco_val.json`` ...): a JSON list of ``{"image", "problem",
    "solution": [x1, y1, x2, y2] original pixels, "normalized_solution": 0-1000}``. ``image`` is relative to the
    COCO train2014 folder, found by :func:`rows.local_image`. ``normalized_solution`` is not read: ours are
    measured in pixels, which the pixel ``solution`` gives without rounding."""

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        sample = {"query": {"expression": _expressions(row["problem"])[0]},
                  "solution": {"bbox": rows.xyxy_box(row["solution"], "solution")}}
        return [rows.finish(task, sample, rows.local_image(file, row["image"]))]

    return rows.collect(task, found, convert, limit)


def load_refcoco(task: Task, root: Path, split: str, limit: int | None) -> Loaded | None:
    """A RefCOCO-family layout at ``root`` (refer JSON, lmms-lab parquet or the same columns through `datasets`:
    a ``save_to_disk`` directory or a cached Hub id such as ``lmms-lab/RefCOCO``; a file in the folder named like
    ``refcoco_val.json`` or ``refcocog_test.jsonl``, read by :func:`load_file`), else None."""
    if rows.is_dataset_source(root):
        return Loaded(load_refcoco_parquet(task, root, split, limit), "lmms-lab-datasets", _bench(root, split))
    if root.is_dir():
        if _refs_file(root) is not None:
            return Loaded(load_refer_json(task, root, split, limit), "refer-json", _bench(root, split))
        if rows.split_files(root, [split], "parquet"):
            return Loaded(load_refcoco_parquet(task, root, split, limit), "lmms-lab-parquet", _bench(root, split))
        named = sorted(f for f in root.glob(f"*_{split}.json*") if _REFCOCO_FILE.match(f.name))
        if named:
            return load_file(task, named[0], limit)
    return None


#: the row layouts of one grounding file (JSON list or JSONL), tried in this order
LAYOUTS = (
    rows.Layout("pr1-json", ("image", "problem", "solution")),
    rows.Layout("qwen-vl-jsonl", ("image", "sent", "bbox")),
    rows.Layout("jsonl", ("image", "expression")),
)


def load_file(task: Task, file: Path, limit: int | None, split: str | None = None) -> Loaded:
    """One grounding file in whichever of :data:`LAYOUTS` its first row has."""
    layout, found = rows.pick_layout(task, file, LAYOUTS)
    bench = file_benchmark(file)
    if layout.name == "pr1-json":
        return Loaded(load_pr1_json(task, file, found, limit), layout.name, bench)
    if layout.name == "qwen-vl-jsonl":
        return Loaded(load_qwen_refcoco_jsonl(task, file, found, limit), layout.name, bench)
    return Loaded(rows.load_jsonl(task, file, split, limit, _grounding_row), layout.name, bench)


def _grounding_row(row: dict[str, Any]) -> dict[str, Any]:
    if "bbox_xywh" in row:  # COCO / RefCOCO annotations
        bbox = rows.xywh_box(row["bbox_xywh"], "bbox_xywh")
    else:
        bbox = rows.xyxy_box(row["bbox"])
    return {"query": {"expression": str(row["expression"])}, "solution": {"bbox": bbox}}


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
    paper_benchmarks = PAPER_BENCHMARKS

    #: RL settings on the embedded base (issue 13; README "What run does"): Acc@0.5 0.066 -> 0.082 / 0.098 / 0.078
    #: on seeds 0, 1, 2 (without scale_rewards: 0.070 / 0.070 / 0.063, noise).
    tiny_run_defaults = tiny_rl.settings(steps=120, max_new_tokens=32, scale_rewards=True)

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
        return RewardResult(1.0 + overlap**self.iou_power, {"format": 1.0, "iou": overlap}, answer=box)

    def evaluate(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        if not records:
            return {}
        ious, centred, parsed = [], [], 0
        for record in records:
            try:
                box = self.parse(record.get("completion") or "")
            except ParseError:
                ious.append(0.0)
                centred.append(False)
                continue
            parsed += 1
            pred = pixel_box(box, record, self.space(record))
            ious.append(geometry.iou(pred, truth_box(record)))
            centred.append(geometry.center_inside(pred, truth_box(record)))
        values = np.asarray(ious)
        metrics = {f"acc@{t}": float(np.mean(values >= t)) for t in OFFICIAL_THRESHOLDS}
        metrics["acc_mean"] = float(np.mean([metrics[f"acc@{t}"] for t in THRESHOLDS]))
        metrics["center_acc"] = float(np.mean(centred))
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

    def load(self, path: str, split: str | None = None, limit: int | None = None) -> Loaded:
        """The RefCOCO family in any of its folder layouts (see :func:`load_refcoco`), else one file (``path``, or
        ``<path>/<split>.jsonl``) in one of :data:`LAYOUTS`: PR1/VLM-R1's JSON lists (:func:`load_pr1_json`),
        Qwen-VL's JSONL, or RefCOCO-style rows ``{"image": "rel/path.jpg", "expression": "...", "bbox": [x1, y1,
        x2, y2]}`` in pixels (or ``"bbox_xywh"`` as in COCO annotations), optional ``"image_size": [w, h]`` and
        ``"id"``. docs/data-layouts.md lists them all."""
        split = split or "train"
        loaded = load_refcoco(self, Path(path), split, limit)
        return loaded or load_file(self, rows.split_jsonl(self, path, split), limit, split)

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

    def draw_solution(self, sample: Mapping[str, Any]) -> Shapes:
        return Shapes(boxes=[[float(v) for v in sample["solution"]["bbox"]]])

    def draw_answer(self, answer: Box, sample: Mapping[str, Any]) -> Shapes:
        box = geometry.to_pixels(np.asarray(answer, dtype=np.float64), self.space(sample), sample["image_size"],
                                 resized_size(sample))
        return Shapes(boxes=[box.tolist()])


@hookimpl
def register_tasks(register: TaskRegister) -> None:
    register(GroundingTask())
