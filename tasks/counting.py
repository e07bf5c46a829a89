"""Counting: one box (or point) per instance of an object kind; the count is the number of items.

Answer formats accepted by :meth:`CountingTask.parse` (whitespace anywhere except inside numbers):

* Qwen2-VL boxes ``(x1,y1),(x2,y2)``, each optionally in ``<|box_start|>...<|box_end|>``, items
  separated by nothing, newlines, ``,`` or ``;``, after an optional object reference
  (``<|object_ref_start|>red squares<|object_ref_end|>`` or its bare text).
  Inside box tokens a group holds one box ``(x1,y1),(x2,y2)`` or one point ``(x,y)``. Without box
  tokens the answer is read as boxes when it has an even number of tuples and each pair is joined by
  a comma (Qwen's ``(x1,y1),(x2,y2)``), otherwise as points: write points one per line or with ``;``.
* JSON (optionally in a ```json fence): a list of ``[x1,y1,x2,y2]``, ``[x,y]``, ``{"bbox_2d": [...]}``
  or ``{"point_2d": [x, y]}`` items.
* Count 0: ``none`` or ``[]`` (optionally after the object-reference tokens). An empty answer is a
  format failure, not "zero": silence must not be a free reward.

Bounds on untrusted output: at most :data:`MAX_CHARS` characters and :data:`MAX_ITEMS` items (both
are ParseError beyond), scanned item by item, so time and memory are linear and capped.

Reward (Perception-R1): the predicted centres are Hungarian-matched to the ground-truth points
(:mod:`perception_r1.tasks.matching`, minimum total distance), then
``total = count_ratio * distance`` with ``count_ratio = min(P, G) / max(P, G)`` and
``distance = max(0, 1 - mean matched distance / image diagonal)``; 0 when the format fails. The paper
measures distances in 0-1000 space over ``1000 * sqrt 2``; here they are measured in original pixels
over the pixel diagonal, which is the same for square images and does not depend on the answer's
space. ``P = G = 0`` ("none" for an empty scene) is perfect (1.0). Components: ``format``,
``count_ratio``, ``distance`` (None when nothing is matched). Distances have the same answer-grid
dead zone as grounding (:func:`geometry.grid_tolerance`), so the rounded ground truth earns exactly 1.

A count-only sample (PixMo-Count's evaluation JSONL gives a count and no points) has nothing to match
centres with: its reward is ``count_ratio`` alone (1 only for the exact count) and ``distance`` is None.

Metrics: ``accuracy`` (exact count, the official evaluate_counting.py's and the paper's; a non-parsing answer
is wrong; PR1's evaluate_counting.py counts the ``<|box_start|>...<|box_end|>`` spans that read as
``(x1,y1),(x2,y2)`` and ignores the rest, where a malformed item fails the whole answer here; it also reads
an answer without any span as no count, so a truth of 0 is never right there, while ``none`` counts 0 here),
``accuracy_official`` (that official count, :func:`official_span_count`, the paper's numbers are compared
with it), ``mae`` (mean absolute count error; a non-parsing answer counts as 0 items) and ``format_rate``.

Worst cases (measured in tests/test_reward_hacking.py, 3 objects, reward range [0, 1]): an honest answer
with 2 of 3 exact centres scores 0.667; one whole-image box 0.333; a grid of 100 points 0.029; 300 duplicate
boxes 0.008; empty, format tokens only, '<...', the prompt copied back and a bare number score 0.
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
from perception_r1.tasks import answers, geometry, matching, rows, tiny_rl
from perception_r1.tasks.scenes import COLORS, SHAPES, place_objects, plural

#: most items (boxes or points) an answer may hold: far above any scene, far below a memory problem
MAX_ITEMS = 500
#: longest completion parsed: MAX_ITEMS boxes with box tokens fit
MAX_CHARS = 32_000

_TUPLE = re.compile(answers.POINT)
_GROUP = re.compile(rf"{answers.BOX_START}{answers.POINT}(?:,{answers.POINT})?{answers.BOX_END}")
_PREFIX = re.compile(answers.REF)
_NONE = re.compile(rf"(?:{answers.OBJECT_REF})?(?:none|\[\])\.?", re.IGNORECASE)
_SEP = ",;"


def _too_many() -> ParseError:
    return ParseError(f"more than {MAX_ITEMS} items")


def _scan(text: str, pos: int, item: re.Pattern[str]) -> tuple[list[tuple[Any, ...]], list[str]]:
    """Items matched back to back from ``pos`` with at most one separator between them; their
    groups and the separators. Stops at MAX_ITEMS + 1 so the work is capped."""
    items: list[tuple[Any, ...]] = []  # a match's groups: str, or None where an optional group did not take part
    seps: list[str] = []
    end = len(text) - 1 if text.endswith(".") else len(text)
    while pos < end:
        if items:
            sep = text[pos] if text[pos] in _SEP else ""
            seps.append(sep)
            pos += len(sep)
        match = item.match(text, pos, end)
        if not match:
            raise ParseError(f"unexpected text at character {pos} of the compacted answer")
        items.append(match.groups())
        if len(items) > MAX_ITEMS:
            raise _too_many()
        pos = match.end()
    if not items:
        raise ParseError("no boxes or points")
    return items, seps


def _centres(boxes: list[tuple[float, ...]], points: list[tuple[float, ...]]) -> np.ndarray:
    """Box centres (corners checked) then points, as one ``(N, 2)`` array; order is irrelevant."""
    centres = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if boxes:
        centres = np.concatenate([geometry.box_centers([answers.check_box(b) for b in boxes]), centres])
    return centres


def _from_json(value: Any) -> np.ndarray:
    if not isinstance(value, list):
        raise ParseError("a JSON answer must be a list of boxes or points")
    if len(value) > MAX_ITEMS:
        raise _too_many()
    boxes, points = [], []
    for item in value:
        if isinstance(item, dict):
            if "bbox_2d" in item:
                boxes.append(answers.answer_numbers(item["bbox_2d"], 4, "bbox_2d"))
            elif "point_2d" in item:
                points.append(answers.answer_numbers(item["point_2d"], 2, "point_2d"))
            else:
                raise ParseError("an item needs bbox_2d or point_2d")
        elif isinstance(item, list) and len(item) in (2, 4):
            (boxes if len(item) == 4 else points).append(answers.answer_numbers(item, len(item), "an item"))
        else:
            raise ParseError("an item must be [x1, y1, x2, y2], [x, y] or an object with bbox_2d / point_2d")
    return _centres(boxes, points)


def parse_centres(text: str) -> np.ndarray:
    """The ``(N, 2)`` centres of the boxes / points of a completion, in its own space. See the module
    docstring for the formats."""
    body = answers.answer_body(text, MAX_CHARS)  # counting's own bound: hundreds of boxes
    if body[0] in "[{":
        return _from_json(answers.load_json(body))
    flat = answers.compact(body)
    if _NONE.fullmatch(flat):
        return np.zeros((0, 2))
    start = _PREFIX.match(flat).end()  # type: ignore[union-attr]  # REF can match the empty string: never None
    if flat.startswith("<|box_start|>", start):
        groups, _ = _scan(flat, start, _GROUP)
        boxes = [tuple(float(v) for v in g) for g in groups if g[2] is not None]
        points = [tuple(float(v) for v in g[:2]) for g in groups if g[2] is None]
        return _centres(boxes, points)
    tuples, seps = _scan(flat, start, _TUPLE)
    values = [tuple(float(v) for v in t) for t in tuples]
    if len(values) % 2 == 0 and all(sep == "," for sep in seps[::2]):
        return _centres([values[i] + values[i + 1] for i in range(0, len(values), 2)], [])
    return _centres([], values)


def truth_count(solution: Mapping[str, Any]) -> int:
    """How many objects a solution holds: its points, or its ``count`` when it gives no points."""
    return len(solution["points"]) if "points" in solution else int(solution["count"])


def count_reward(centres: np.ndarray, sample: Mapping[str, Any], space: str) -> tuple[float, float, float | None]:
    """(total, count_ratio, distance) of answer ``centres`` (in ``space``) against the sample's points; a
    count-only sample (no points to match) is scored on its count: total = count_ratio, distance None."""
    p, g = len(centres), truth_count(sample["solution"])
    if p == 0 and g == 0:
        return 1.0, 1.0, None
    if p == 0 or g == 0:
        return 0.0, 0.0, None
    if "points" not in sample["solution"]:
        return min(p, g) / max(p, g), min(p, g) / max(p, g), None
    gt = np.asarray(sample["solution"]["points"], dtype=np.float64).reshape(-1, 2)
    size, resized = sample["image_size"], sample.get("resized_size")
    pred = geometry.to_pixels(centres, space, size, resized)
    dist = geometry.point_distances(pred, gt, geometry.grid_tolerance(space, size, resized))
    rows, cols = matching.minimize(dist)
    diagonal = float(np.hypot(*np.asarray(size, dtype=np.float64)))
    mean = float(np.mean(dist[rows, cols]))
    distance = max(0.0, 1.0 - mean / diagonal) if np.isfinite(mean) else 0.0
    ratio = min(p, g) / max(p, g)
    return ratio * distance, ratio, distance


# -- the official count: PR1's evaluate_counting.py ----------------------------------------------------------
#: the official script's spans (its regex, no DOTALL: a span does not cross a line)
OFFICIAL_SPAN = re.compile(r"<\|box_start\|>(.*?)<\|box_end\|>")
_NUM = r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*"
_PAIR = rf"(?:\({_NUM},{_NUM}\)|\[{_NUM},{_NUM}\])"
#: what the official ``(x1, y1), (x2, y2) = eval(span)`` accepts, for literals: two number pairs, bare or bracketed
_END = r"\s*(?:,\s*)?"  # an optional trailing comma, one whitespace run on each side (no nested \s*)
OFFICIAL_BOX = re.compile(rf"\s*(?:{_PAIR}\s*,\s*{_PAIR}|\(\s*{_PAIR}\s*,\s*{_PAIR}{_END}\)|"
                          rf"\[\s*{_PAIR}\s*,\s*{_PAIR}{_END}\])\s*")


def official_span_count(completion: str) -> int | None:
    """The count PR1's evaluate_counting.py reads: the ``<|box_start|>...<|box_end|>`` spans whose content unpacks
    as ``(x1, y1), (x2, y2)``; None (never a right count) when none does. The script ``eval``s each span; here a
    span counts when it is two number pairs as literals, so arithmetic such as ``(1+1,2),(3,4)``, which ``eval``
    would accept, does not count (no model writes it; model output is never evaluated)."""
    count = sum(1 for span in OFFICIAL_SPAN.findall(completion) if OFFICIAL_BOX.fullmatch(span))
    return count or None


# -- data: PixMo-Count, and a plain JSONL -----------------------------------------------------------
#: the paper's counting results (accuracy as a fraction) and the perceptual perplexity it measured
PAPER_BENCHMARKS = {
    "PixMo-Count val": PaperBenchmark({"accuracy_official": (0.602, 0.781)}, perplexity=229_202.0),
    "PixMo-Count test": PaperBenchmark({"accuracy_official": (0.505, 0.756)}, perplexity=229_202.0),
}


def _pixmo_points(value: Any) -> list[list[float]]:
    if value is None:
        return []
    if isinstance(value, dict):  # `datasets` sequence-of-struct layout: {"x": [...], "y": [...]}
        xs, ys = value.get("x") or [], value.get("y") or []
        if len(xs) != len(ys):
            raise rows.BadRow("points x and y have different lengths")
        value = [{"x": x, "y": y} for x, y in zip(xs, ys, strict=True)]
    if not isinstance(value, list):
        raise rows.BadRow("points must be a list of {x, y}")
    return [[rows.row_number(p["x"], "point x"), rows.row_number(p["y"], "point y")] for p in value]


def _find_image(folder: Path, row: dict[str, Any]) -> Path:
    sha = row.get("image_sha256")
    if sha:
        exact = folder / str(sha)
        if exact.is_file():
            return exact
        for ext in rows.IMAGE_EXTS:
            if (folder / f"{sha}{ext}").is_file():
                return folder / f"{sha}{ext}"
    url = row.get("image_url")
    if url:
        name = Path(str(url).split("?")[0]).name
        if name and (folder / name).is_file():
            return folder / name
    raise rows.BadRow(f"no image file for sha256 {sha} / url {url} in {folder}")


def load_pixmo_count(task: Task, root: Path, split: str, limit: int | None = None) -> list[dict[str, Any]]:
    """PixMo-Count parquet ``<root>/[data/]<split>-*.parquet`` (``validation`` for ``val``): ``points``
    ([{x, y}] pixels), ``count``, ``label``, ``image_sha256``/``image_url`` with the downloaded images in
    ``<root>/images/`` named by sha256 (any extension) or by the URL's file name; or an ``image`` column
    with the bytes."""
    names = ["validation", "val"] if split == "val" else [split]
    files = rows.split_files(root, names, "parquet")
    if not files and not rows.is_dataset_source(root):
        raise UserError(f"{root}: no '{names[0]}' parquet files (expected {root}/[data/]{names[0]}-*.parquet)")
    folder = rows.images_dir(root)

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        points = _pixmo_points(row.get("points"))
        count = row.get("count")
        if count is not None and int(count) != len(points):
            raise rows.BadRow(f"count {count} but {len(points)} points (the counting task needs every point)")
        label = row["label"]
        if not isinstance(label, str) or not label.strip():
            raise rows.BadRow("label must be a non-empty string")
        image = rows.embedded_image(row["image"]) if row.get("image") is not None else _find_image(folder, row)
        sample = {"query": {"object": label.strip()}, "solution": {"points": points}}
        if row.get("image_sha256"):
            sample["id"] = f"{row['image_sha256'][:16]}-{label.strip()}"
        return [rows.finish(task, sample, image)]

    return rows.collect(task, rows.table_rows(root, names), convert, limit)


def _ground_truth(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ITEMS:
        raise rows.BadRow(f"ground_truth must be an integer count from 0 to {MAX_ITEMS}, got {value!r}"[:120])
    return value


def load_pixmo_eval(task: Task, file: Path, found: rows.Rows, limit: int | None = None) -> list[dict[str, Any]]:
    """PR1's PixMo-Count evaluation JSONL (``pixmo_count_test540_counting_problems_label.jsonl``,
    ``pixmo_count_validation540_counting_problems_label.jsonl``):
    ``{"image_path", "question", "ground_truth": int}`` per line, ``question`` being the object to count; the
    image is found by :func:`rows.local_image`. The samples hold a count and no points (see
    :func:`count_reward`)."""

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        question = row["question"]
        if not isinstance(question, str) or not question.strip():
            raise rows.BadRow("question must be a non-empty string")
        sample = {"query": {"object": question.strip()}, "solution": {"count": _ground_truth(row["ground_truth"])}}
        return [rows.finish(task, sample, rows.local_image(file, row["image_path"]))]

    return rows.collect(task, found, convert, limit)


#: the row layouts of one counting file (JSONL or JSON list), tried in this order
LAYOUTS = (
    rows.Layout("pixmo-count-eval", ("image_path", "question", "ground_truth")),
    rows.Layout("jsonl", ("image", "object", "points")),
)
#: PR1's names: pixmo_count_test540_counting_problems_label.jsonl, pixmo_count_validation540_...; short ones too
_PIXMO_FILE = re.compile(r"^pixmo_count_(val|validation|test)\d*(?:_\w+)?\.jsonl?$", re.IGNORECASE)
_PIXMO_SPLITS = {"val": "val", "validation": "val", "test": "test"}


def file_benchmark(file: Path) -> str | None:
    """The paper benchmark a file's name says it is (``pixmo_count_validation540_counting_problems_label.jsonl``
    -> 'PixMo-Count val')."""
    match = _PIXMO_FILE.match(file.name)
    return f"PixMo-Count {_PIXMO_SPLITS[match.group(1).lower()]}" if match else None


def load_file(task: Task, file: Path, limit: int | None, split: str) -> Loaded:
    """One counting file in whichever of :data:`LAYOUTS` its first row has."""
    layout, found = rows.pick_layout(task, file, LAYOUTS)
    if layout.name == "pixmo-count-eval":
        return Loaded(load_pixmo_eval(task, file, found, limit), layout.name, file_benchmark(file))
    return Loaded(rows.load_jsonl(task, file, split, limit, _counting_row), layout.name, file_benchmark(file))


def _counting_row(row: dict[str, Any]) -> dict[str, Any]:
    points = row["points"]
    if not isinstance(points, list):
        raise rows.BadRow("points must be a list of [x, y]")
    solution: dict[str, Any] = {"points": [rows.row_numbers(p, 2, "a point") for p in points]}
    if "boxes" in row:
        solution["boxes"] = [rows.xyxy_box(b, "a box") for b in row["boxes"]]
    return {"query": {"object": str(row["object"])}, "solution": solution}


class CountingTask(Task):
    name = "counting"
    description = "Box every instance of an object kind; the count is the number of boxes (Hungarian-matched centres)."
    prompt_template = "Output all the bounding boxes of the {object}"
    coord_space = "norm1000"
    solution_schema = {
        "type": "object",
        # points (pixels), or only a count (PixMo-Count's evaluation files): accuracy needs nothing more
        "anyOf": [{"required": ["points"]}, {"required": ["count"]}],
        "properties": {
            "count": {"type": "integer", "minimum": 0, "maximum": MAX_ITEMS},
            "points": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            },
            # optional: boxes of the same instances, in the same order (render writes boxes then)
            "boxes": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
            },
        },
    }
    reward_range = (0.0, 1.0)
    primary_metric = "accuracy"
    default_query = {"object": "objects"}
    paper_benchmarks = PAPER_BENCHMARKS

    #: RL settings on the embedded base (issue 13; README "What run does"): accuracy 0.406 -> 0.414 / 0.430 /
    #: 0.430 on seeds 0, 1, 2. Without scale_rewards: lr 5e-5 gave 0.422 / 0.371 / 0.434, lr 2e-5 0.402 (seed 0);
    #: with it, lr 5e-5 gave 0.422 on seed 1 where 2e-5 gave 0.430.
    tiny_run_defaults = tiny_rl.settings(steps=60, max_new_tokens=160, learning_rate=2e-5, scale_rewards=True)

    def parse(self, text: str) -> np.ndarray:
        return parse_centres(text)

    def reward(self, completion: str, sample: Mapping[str, Any]) -> RewardResult:
        try:
            centres = self.parse(completion)
        except ParseError:
            return RewardResult(0.0, {"format": 0.0, "count_ratio": None, "distance": None})
        total, ratio, distance = count_reward(centres, sample, self.space(sample))
        return RewardResult(total, {"format": 1.0, "count_ratio": ratio, "distance": distance}, answer=centres)

    def evaluate(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        if not records:
            return {}
        correct, errors, parsed, official = 0, 0.0, 0, 0
        for record in records:
            truth = truth_count(record["solution"])
            official += official_span_count(record.get("completion") or "") == truth
            try:
                predicted = len(self.parse(record.get("completion") or ""))
            except ParseError:
                errors += truth
                continue
            parsed += 1
            correct += predicted == truth
            errors += abs(predicted - truth)
        n = len(records)
        return {"accuracy": correct / n, "accuracy_official": official / n, "mae": errors / n, "format_rate": parsed / n}

    def render(self, sample: Mapping[str, Any]) -> str:
        """Boxes when the solution has them (Qwen2-VL box tokens in norm1000, ``bbox_2d`` JSON
        otherwise), else points; ``none`` for an empty scene."""
        solution, space = sample["solution"], self.space(sample)
        if truth_count(solution) == 0:
            return "none"
        if "points" not in solution:
            raise UserError("a count-only sample (PixMo-Count evaluation file) has no boxes or points to write")
        points = solution["points"]
        boxes = solution.get("boxes")
        use_boxes = boxes is not None and len(boxes) == len(points)
        values = geometry.from_pixels(boxes if use_boxes else points, space, sample["image_size"], sample.get("resized_size"))
        rows = [[answers.format_number(v, answers.decimals_for(space)) for v in row] for row in values]
        if space == "norm1000":
            if use_boxes:
                return "\n".join(f"<|box_start|>({a},{b}),({c},{d})<|box_end|>" for a, b, c, d in rows)
            return "\n".join(f"({a},{b})" for a, b in rows)
        key = "bbox_2d" if use_boxes else "point_2d"
        return "[" + ", ".join(f'{{"{key}": [{", ".join(row)}]}}' for row in rows) + "]"

    def load(self, path: str, split: str | None = None, limit: int | None = None) -> Loaded:
        """PixMo-Count parquet (see :func:`load_pixmo_count`), else one file (``path``, or
        ``<path>/<split>.jsonl``) in one of :data:`LAYOUTS`: PR1's PixMo-Count evaluation JSONL
        (:func:`load_pixmo_eval`), or PixMo-Count-style rows ``{"image": "rel/path.jpg", "object": "people",
        "points": [[x, y], ...]}`` in pixels, optional ``"boxes"`` (same instances, same order), ``"image_size":
        [w, h]`` and ``"id"``. docs/data-layouts.md lists them all."""
        split, root = split or "train", Path(path)
        if rows.is_dataset_source(root):  # the same columns through `datasets` (save_to_disk dir, cached Hub id)
            return Loaded(load_pixmo_count(self, root, split, limit), "pixmo-count-datasets", f"PixMo-Count {split}")
        if root.is_dir() and rows.split_files(root, ["validation" if split == "val" else split], "parquet"):
            return Loaded(load_pixmo_count(self, root, split, limit), "pixmo-count-parquet", f"PixMo-Count {split}")
        return load_file(self, rows.split_jsonl(self, path, split), limit, split)

    def synthetic(self, rng: random.Random) -> dict[str, Any]:
        """0-6 objects of one (color, shape) kind to count, among 0-2 distractors of other kinds."""
        shape, color = rng.choice(SHAPES), rng.choice(list(COLORS))
        others = [(s, c) for s in SHAPES for c in COLORS if (s, c) != (shape, color)]
        n_target, n_distract = rng.randint(0, 6), rng.randint(0, 2)
        kinds = [(shape, color)] * n_target + [rng.choice(others) for _ in range(n_distract)]
        scene = place_objects(rng, kinds, min_size=14, max_size=26)
        boxes = [o.box for o in scene.objects if (o.shape, o.color) == (shape, color)]
        centres = geometry.box_centers(boxes).tolist() if boxes else []
        return {
            "image": scene.image,
            "image_size": list(scene.image.size),
            "query": {"object": f"{color} {plural(shape)}"},
            "solution": {"points": centres, "boxes": boxes},
        }

    def draw_solution(self, sample: Mapping[str, Any]) -> Shapes:
        solution = sample["solution"]
        return Shapes(boxes=[[float(v) for v in box] for box in solution.get("boxes") or []],
                      points=[[float(v) for v in point] for point in solution.get("points") or []])

    def draw_answer(self, answer: np.ndarray, sample: Mapping[str, Any]) -> Shapes:
        if len(answer) == 0:
            return Shapes()
        points = geometry.to_pixels(answer, self.space(sample), sample["image_size"], sample.get("resized_size"))
        return Shapes(points=points.tolist())

    def objects(self, solution: Mapping[str, Any]) -> int:
        return truth_count(solution)


@hookimpl
def register_tasks(register: TaskRegister) -> None:
    register(CountingTask())
