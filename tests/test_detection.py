"""Detection task: parser, hand-computed reward components, reward hacking, COCO AP against pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_r1 import ParseError
from perception_r1.tasks import detection, geometry
from perception_r1.tasks.coco import COCO_CLASSES, ImageBoxes, coco_ap
from perception_r1.tasks.detection import (
    DEFAULT_MAX_OBJECTS,
    DetectionTask,
    DetectionWeights,
    MatchStats,
    match_objects,
    parse_objects,
)
from perception_r1.tasks.matching import minimize
from perception_r1.testing import check_discoverable, check_task

TASK = DetectionTask()
MAX = TASK.reward_range[1]


def sample(boxes, labels, size=(100, 100), **extra) -> dict:
    return {"image_size": list(size), "query": {}, "solution": {"boxes": boxes, "labels": labels}, **extra}


def answer(objects) -> str:
    return json.dumps([{"bbox_2d": box, "label": label} for box, label in objects])


# -- contract ------------------------------------------------------------------------------------
def test_contract() -> None:
    check_task(TASK, max_examples=150)


def test_discoverable_through_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "")  # built-ins only
    assert isinstance(check_discoverable("detection"), DetectionTask)


def test_prompts() -> None:
    assert len(COCO_CLASSES) == len(set(COCO_CLASSES)) == 80
    assert TASK.prompt({}) == "Please output bbox coordinates and names of " + ", ".join(COCO_CLASSES) + "."
    synthetic = TASK.synthetic(random.Random(0))
    assert TASK.prompt(synthetic) == "Please output bbox coordinates and names of circle, square, triangle."
    assert set(synthetic["solution"]["labels"]) <= {"circle", "square", "triangle"}


# -- parser --------------------------------------------------------------------------------------
GOOD = '[{"bbox_2d": [1, 2, 30, 40], "label": "Traffic  Light"}]'


@pytest.mark.parametrize(
    "text",
    [GOOD, f"```json\n{GOOD}\n```", f"```\n{GOOD}```", f"Here you go:\n```json\n{GOOD}\n```\nDone.", f"```json\n{GOOD}"],
)
def test_parse_accepts_fenced_and_bare_json(text: str) -> None:
    objects = parse_objects(text)
    assert objects.boxes.tolist() == [[1.0, 2.0, 30.0, 40.0]]
    assert objects.labels == ["traffic light"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "```json\n```",
        "{}",
        '{"bbox_2d": [1, 2, 3, 4], "label": "cat"}',
        "[1, 2, 3, 4]",
        '[{"bbox_2d": [1, 2, 3], "label": "cat"}]',
        '[{"bbox_2d": [1, 2, 3, "4"], "label": "cat"}]',
        '[{"bbox_2d": [1, 2, 3, true], "label": "cat"}]',
        '[{"bbox_2d": [1, 2, 3, NaN], "label": "cat"}]',
        '[{"bbox_2d": [1, 2, 3, Infinity], "label": "cat"}]',
        '[{"bbox_2d": [1, 2, 3, 1e999], "label": "cat"}]',
        '[{"bbox_2d": [1, 2, 3, ' + "9" * 4000 + '], "label": "cat"}]',
        '[{"bbox_2d": [1, 2, 3, 4], "label": ""}]',
        '[{"bbox_2d": [1, 2, 3, 4], "label": 7}]',
        '[{"bbox_2d": [1, 2, 3, 4], "label": "' + "x" * 65 + '"}]',
        '[{"bbox_2d": [1, 2, 3, 4]}]',
        "Here: " + GOOD,  # prose around bare JSON: only a fenced block may be embedded
        "[" * 20_000 + "]" * 20_000,
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        parse_objects(text)


def test_parse_caps_objects_and_length() -> None:
    one = {"bbox_2d": [0, 0, 1, 1], "label": "a"}
    assert len(parse_objects(json.dumps([one] * DEFAULT_MAX_OBJECTS)).labels) == DEFAULT_MAX_OBJECTS
    with pytest.raises(ParseError, match="more than"):
        parse_objects(json.dumps([one] * (DEFAULT_MAX_OBJECTS + 1)))
    with pytest.raises(ParseError, match="longer"):
        parse_objects(GOOD + " " * 70_000)


finite = st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-10**6, 10**6)
label = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda s: s.strip()
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(finite, min_size=4, max_size=4), label), max_size=20), st.booleans())
def test_parse_round_trips(objects, fenced: bool) -> None:
    text = answer(objects)
    if fenced:
        text = f"```json\n{text}\n```"
    parsed = parse_objects(text)
    assert parsed.boxes.shape == (len(objects), 4)
    assert parsed.boxes.tolist() == [[float(v) for v in box] for box, _ in objects]
    assert parsed.labels == [" ".join(lab.lower().split()) for _, lab in objects]


def test_a_label_holding_backticks_is_not_taken_for_a_code_fence() -> None:
    """Found by test_parse_round_trips: an unfenced answer whose label contains ``` parses whole."""
    parsed = parse_objects(answer([([0, 0, 0, 0], "```"), ([0, 0, 0, 0], "0")]))
    assert parsed.labels == ["```", "0"] and parsed.boxes.shape == (2, 4)
    fenced = parse_objects('noise [1] ```json\n[{"bbox_2d": [1, 2, 3, 4], "label": "cat"}]\n```')
    assert fenced.labels == ["cat"]  # text around a real fence still reads the fence


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='[]{}",:0123456789.-eE bbox_2dlabelcat`json\n', max_size=200))
def test_parse_is_total(text: str) -> None:
    try:
        parsed = parse_objects(text)
    except ParseError as exc:
        assert exc.reason
    else:
        assert parsed.boxes.shape == (len(parsed.labels), 4)
        assert np.isfinite(parsed.boxes).all()


# -- reward: hand-computed -----------------------------------------------------------------------
GT = sample([[10, 10, 30, 30], [50, 50, 90, 90]], ["cat", "dog"])


def test_reward_hand_computed() -> None:
    # exact cat; dog box with IoU 40*30/(40*40) = 0.75 but labelled cat; one far false positive
    text = answer([([10, 10, 30, 30], "cat"), ([50, 50, 90, 80], "cat"), ([0, 60, 10, 70], "dog")])
    result = TASK.reward(text, GT)
    expected = {"format": 1.0, "f1": 2 * 2 / (3 + 2), "class_accuracy": 0.5, "iou": (1 + 0.75) / 2,
                "missing_penalty": -0.5 * (1 / 3 + 0)}
    assert result.components == pytest.approx(expected)
    assert result.total == pytest.approx(1 + 0.75 * 0.8 + 0.5 + 0.875 - 1 / 6)


def test_iou_threshold_is_strict() -> None:
    # IoU exactly 0.5 is not a match: only the format point and the penalty remain
    result = TASK.reward(answer([([10, 10, 30, 20], "cat")]), sample([[10, 10, 30, 30]], ["cat"]))
    assert result.components["f1"] == 0.0
    assert result.total == pytest.approx(1 - 0.5 * (1 + 1))


def test_weights_come_from_the_constructor() -> None:
    task = DetectionTask(weights={"missing_penalty": 0.0, "f1": 2.0})
    assert task.reward_range == (0.0, 1 + 2 + 1 + 1)
    text = answer([([10, 10, 30, 30], "cat")])
    result = task.reward(text, GT)
    assert result.total == pytest.approx(1 + 2 * (2 / 3) + 1 + 1)
    assert DetectionTask().reward_range == (0.0, 3.75)
    assert DetectionTask(weights=DetectionWeights(format=0.25)).reward_range == (-0.75, 3.0)
    with pytest.raises(ValueError, match="f1"):
        DetectionWeights(f1=-1.0)
    with pytest.raises(ValueError):
        DetectionWeights(iou=float("nan"))


def test_labels_match_by_name_case_and_spacing() -> None:
    s = sample([[10, 10, 30, 30]], ["traffic light"])
    assert TASK.reward(answer([([10, 10, 30, 30], " Traffic   LIGHT ")]), s).total == pytest.approx(MAX)


def test_matching_prefers_the_right_class() -> None:
    # two identical truths with different classes: each prediction must take its own class
    s = sample([[10, 10, 50, 50], [10, 10, 50, 50]], ["cat", "dog"])
    result = TASK.reward(answer([([10, 10, 50, 50], "dog"), ([10, 10, 50, 50], "cat")]), s)
    assert result.components["class_accuracy"] == 1.0


def test_empty_truth() -> None:
    empty = sample([], [])
    assert TASK.reward("[]", empty).total == pytest.approx(MAX)
    assert TASK.reward("```json\n[]\n```", empty).total == pytest.approx(MAX)
    one = TASK.reward(answer([([1, 1, 5, 5], "cat")]), empty)
    assert one.total == pytest.approx(1 - 0.5)


def test_unparseable_scores_zero() -> None:
    result = TASK.reward("I see a cat.", GT)
    assert result.total == 0.0
    assert result.components["format"] == 0.0 and result.components["f1"] is None


# -- reward: vectorised matching equals the per-pair formula -------------------------------------
def _reference_match_objects(pred_boxes, pred_labels, gt_boxes, gt_labels, image_size, tolerance=None,
                             iou_threshold=0.5, matching="hungarian") -> MatchStats:
    """``match_objects`` as it was before vectorising: class mismatch by comparing label strings pair by
    pair, the IoU of each match as its own 1 x 1 ``iou_matrix``."""
    pred = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if len(pred) == 0 or len(gt) == 0:
        return MatchStats(len(pred), len(gt), np.zeros(0), np.zeros(0, dtype=bool))
    mismatch = np.array([[p != g for g in gt_labels] for p in pred_labels], dtype=np.float64)
    pred_n = geometry.from_pixels(pred, "norm1", image_size)
    gt_n = geometry.from_pixels(gt, "norm1", image_size)
    with np.errstate(over="ignore", invalid="ignore"):
        l1 = np.abs(pred_n[:, None, :] - gt_n[None, :, :]).sum(axis=-1)
    rows, cols = minimize(mismatch + 5.0 * l1 - 2.0 * geometry.giou_matrix(pred, gt))
    matched = pred[rows]
    if tolerance is not None:
        matched = geometry.snap(matched, gt[cols], tolerance)
    ious = np.array([geometry.iou_matrix(p, g)[0, 0] for p, g in zip(matched, gt[cols], strict=True)])
    same = np.array([pred_labels[r] == gt_labels[c] for r, c in zip(rows, cols, strict=True)], dtype=bool)
    keep = ious > iou_threshold
    return MatchStats(len(pred), len(gt), ious[keep], same[keep])


def _random_case(rng: random.Random) -> tuple[str, dict]:
    """A completion and sample: any space, 0-25 truths, predictions jittered (a little to a lot), some
    wrong classes, missed, duplicated, hallucinated, degenerate or inverted boxes, case/space label noise."""
    w, h = rng.choice([(100, 100), (640, 480), (333, 517)])
    space = rng.choice(["pixels", "norm1000", "norm1", "resized"])
    extra = {"coords": space}
    if space == "resized":
        extra["resized_size"] = [rng.choice([224, 448, 640]), rng.choice([224, 336])]
    classes = ["cat", "dog", "person", "traffic light"][: rng.randint(1, 4)]
    boxes, labels = [], []
    for _ in range(rng.randint(0, 25)):
        bw, bh = rng.uniform(1, w / 2), rng.uniform(1, h / 2)
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        boxes.append([x, y, x + bw, y + bh])
        labels.append(rng.choice(classes))
    truth = sample(boxes, labels, size=(w, h), **extra)
    objects = []
    for box, label in zip(boxes, labels, strict=True):
        if rng.random() < 0.15:
            continue  # missed
        noise = rng.choice([0.0, 0.0, 1.0, 5.0, 30.0])
        pixel_box = [v + rng.gauss(0, noise) for v in box]
        if rng.random() < 0.05:
            pixel_box = [pixel_box[2], pixel_box[3], pixel_box[0], pixel_box[1]]  # inverted
        label = label if rng.random() > 0.15 else rng.choice(classes)
        objects.append((pixel_box, rng.choice([label, label.upper(), f"  {label} "])))
        if rng.random() < 0.1:
            objects.append((pixel_box, label))  # duplicate
    for _ in range(rng.randint(0, 3)):  # hallucinated, some degenerate
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        objects.append(([x, y, x + rng.choice([0.0, rng.uniform(1, 50)]), y + rng.uniform(0, 50)],
                        rng.choice(classes + ["zebra"])))
    rng.shuffle(objects)
    unit = geometry.GRID_UNIT[space]
    written = []
    for pixel_box, label in objects:
        values = geometry.from_pixels(pixel_box, space, (w, h), extra.get("resized_size"))
        if rng.random() < 0.8:  # on the answer grid, as a model writes it; else full precision
            values = [round(v / unit) * unit for v in values]
        written.append(([float(v) for v in values], label))
    return answer(written), truth


def test_vectorised_matching_gives_identical_rewards(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(20261125)
    cases = [_random_case(rng) for _ in range(400)]
    tasks = [TASK, DetectionTask(iou_threshold=0.3), DetectionTask(iou_threshold=0.75)]
    new = [[task.reward(c, s) for c, s in cases] for task in tasks]
    monkeypatch.setattr(detection, "match_objects", _reference_match_objects)
    old = [[task.reward(c, s) for c, s in cases] for task in tasks]
    assert any(0 < r.total < MAX for r in new[0])  # the cases are not all trivial
    for new_results, old_results in zip(new, old, strict=True):
        for a, b in zip(new_results, old_results, strict=True):
            assert a.total == b.total and a.components == b.components  # identical, not approximately


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.lists(st.floats(-50, 150, allow_nan=False), min_size=4, max_size=4),
                       st.sampled_from(["a", "b", "c"])), max_size=8),
    st.lists(st.tuples(st.lists(st.floats(-50, 150, allow_nan=False), min_size=4, max_size=4),
                       st.sampled_from(["a", "b", "c"])), max_size=8),
    st.sampled_from([None, (0.5, 0.5), (2.0, 1.0)]),
)
def test_match_objects_equals_the_per_pair_formula(pred, gt, tolerance) -> None:
    args = (np.array([b for b, _ in pred]).reshape(-1, 4), [lab for _, lab in pred],
            np.array([b for b, _ in gt]).reshape(-1, 4), [lab for _, lab in gt], (100, 100))
    tol = None if tolerance is None else np.array(tolerance)
    got = match_objects(*args, tolerance=tol)
    expected = _reference_match_objects(*args, tolerance=tol)
    assert (got.n_pred, got.n_gt) == (expected.n_pred, expected.n_gt)
    assert got.ious.tobytes() == expected.ious.tobytes()
    assert got.same_class.dtype == bool and got.same_class.tolist() == expected.same_class.tolist()


# -- coordinate spaces ---------------------------------------------------------------------------
def test_norm1000_answer() -> None:
    s = sample([[64, 48, 320, 240]], ["cat"], size=(640, 480), coords="norm1000")
    assert TASK.render(s) == '```json\n[{"bbox_2d": [100, 100, 500, 500], "label": "cat"}]\n```'
    assert TASK.reward(TASK.render(s), s).total == pytest.approx(MAX)
    # the same numbers read as pixels miss the object
    assert TASK.reward(TASK.render(s), {**s, "coords": "pixels"}).total < 1.0


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["pixels", "norm1000", "norm1", "resized"]),
    st.tuples(st.integers(20, 2000), st.integers(20, 2000)),
    st.lists(st.tuples(st.floats(0, 0.8), st.floats(0, 0.8), st.floats(0.05, 0.2), st.floats(0.05, 0.2)),
             min_size=1, max_size=6),
)
def test_rendered_truth_is_perfect_in_every_space(space, size, rel_boxes) -> None:
    w, h = size
    boxes = [[x * w, y * h, (x + bw) * w, (y + bh) * h] for x, y, bw, bh in rel_boxes]
    labels = [random.Random(i).choice(["circle", "square"]) for i in range(len(boxes))]
    s = sample(boxes, labels, size=size, coords=space, resized_size=list(geometry.smart_resize(w, h)))
    assert TASK.reward(TASK.render(s), s).total == pytest.approx(MAX, abs=1e-6)


# -- reward hacking ------------------------------------------------------------------------------
SMALL = sample([[10, 10, 30, 30], [60, 15, 85, 40], [40, 70, 62, 95]], ["circle", "square", "triangle"], size=(112, 112))
HONEST_ONE = answer([([10, 10, 30, 30], "circle")])


def test_blind_hacks_score_low() -> None:
    whole = [0, 0, 112, 112]
    hacks = {
        "empty list": "[]",
        "every COCO class, whole image": answer([(whole, name) for name in COCO_CLASSES]),
        "one whole-image box": answer([(whole, "circle")]),
        "whole image, every shape": answer([(whole, name) for name in ("circle", "square", "triangle")]),
    }
    for name, text in hacks.items():
        total = TASK.reward(text, SMALL).total
        assert total <= 0.15 * MAX, f"{name} scores {total}"


@pytest.mark.parametrize("seed", range(5))
def test_spraying_every_class_scores_low(seed: int) -> None:
    # 240 random boxes: a lucky hit earns its IoU (mean over matches, as in the paper), nothing more
    rng = random.Random(seed)
    spray = []
    for name in COCO_CLASSES:
        for _ in range(3):
            x, y = rng.uniform(0, 90), rng.uniform(0, 90)
            spray.append(([x, y, x + rng.uniform(5, 22), y + rng.uniform(5, 22)], name))
    total = TASK.reward(answer(spray), SMALL).total
    assert total <= 0.3 * MAX
    assert total < 0.5 * TASK.reward(HONEST_ONE, SMALL).total


def test_duplicates_only_lower_the_reward() -> None:
    honest = TASK.reward(HONEST_ONE, SMALL).total
    previous = honest
    for copies in (2, 5, 20, 100, 300):
        total = TASK.reward(answer([([10, 10, 30, 30], "circle")] * copies), SMALL).total
        assert total < previous
        previous = total
    assert previous < honest - 0.8
    # more than the cap is a format error
    assert TASK.reward(answer([([10, 10, 30, 30], "circle")] * 301), SMALL).total == 0.0


def test_listing_every_class_on_the_true_boxes_loses_to_the_honest_answer() -> None:
    boxes = SMALL["solution"]["boxes"]
    honest = answer(list(zip(boxes, SMALL["solution"]["labels"], strict=True)))
    every_class = answer([(box, name) for box in boxes for name in COCO_CLASSES])
    duplicated = answer([(box, lab) for box, lab in zip(boxes, SMALL["solution"]["labels"], strict=True)] * 100)
    assert TASK.reward(honest, SMALL).total == pytest.approx(MAX)
    assert TASK.reward(every_class, SMALL).total < MAX - 1.0
    assert TASK.reward(duplicated, SMALL).total < MAX - 1.0


# -- evaluation: COCO AP -------------------------------------------------------------------------
# real-shaped fixture: COCO's own category ids (1, 3, 18), image ids and sizes, small/medium/large boxes
CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]
IMAGES = [{"id": 139, "width": 640, "height": 426}, {"id": 285, "width": 586, "height": 640},
          {"id": 632, "width": 640, "height": 483}]
GT_XYWH = {  # image id -> [(category id, [x, y, w, h])]
    139: [(1, [412.8, 157.6, 53.1, 138.3]), (1, [384.4, 172.2, 15.1, 35.7]), (3, [10.0, 200.0, 20.0, 12.0])],
    285: [(18, [13.0, 22.8, 535.4, 591.0])],
    632: [(1, [200.0, 100.0, 80.0, 200.0]), (3, [400.0, 300.0, 120.0, 60.0]), (18, [50.0, 350.0, 25.0, 20.0])],
}
DT_XYWH = {  # a hit, a near miss, a miss, a wrong class, a false positive, a duplicate
    139: [(1, [410.0, 160.0, 55.0, 135.0]), (1, [300.0, 50.0, 30.0, 30.0]), (3, [12.0, 201.0, 18.0, 11.0])],
    285: [(18, [20.0, 30.0, 520.0, 580.0]), (18, [20.0, 30.0, 520.0, 580.0]), (1, [100.0, 100.0, 50.0, 50.0])],
    632: [(3, [200.0, 100.0, 80.0, 200.0]), (3, [405.0, 310.0, 110.0, 45.0]), (18, [52.0, 352.0, 22.0, 17.0])],
}


def _direct_pycocotools(tmp_path) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotations = [
        {"id": n + 1, "image_id": image_id, "category_id": cat, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
        for n, (image_id, cat, box) in enumerate(
            (image_id, cat, box) for image_id, objs in GT_XYWH.items() for cat, box in objs
        )
    ]
    results = [{"image_id": i, "category_id": c, "bbox": b, "score": 1.0} for i, objs in DT_XYWH.items() for c, b in objs]
    gt_file, dt_file = tmp_path / "instances.json", tmp_path / "results.json"
    gt_file.write_text(json.dumps({"images": IMAGES, "annotations": annotations, "categories": CATEGORIES}))
    dt_file.write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        evaluator = COCOeval(gt, gt.loadRes(str(dt_file)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def _records() -> list[dict]:
    names = {c["id"]: c["name"] for c in CATEGORIES}
    records = []
    for image in IMAGES:
        truth = GT_XYWH[image["id"]]
        dets = DT_XYWH[image["id"]]
        completion = answer([(geometry.xywh_to_xyxy(b).tolist(), names[c]) for c, b in dets])
        records.append({
            **sample(geometry.xywh_to_xyxy([b for _, b in truth]).tolist(), [names[c] for c, _ in truth],
                     size=(image["width"], image["height"])),
            "completion": completion,
        })
    return records


def test_coco_ap_equals_pycocotools(tmp_path, capsys) -> None:
    stats = _direct_pycocotools(tmp_path)
    metrics = TASK.evaluate(_records())
    assert capsys.readouterr().out == "", "COCOeval printed to stdout"
    expected = {name: 100 * stats[i] for i, name in enumerate(["AP", "AP50", "AP75", "APs", "APm", "APl"])}
    assert all(v >= 0 for v in expected.values())  # the fixture defines every area range
    assert 0 < expected["AP"] < 100
    assert set(metrics) == set(expected)
    for name, value in metrics.items():  # pycocotools' raw stats to 1e-9 on its 0-1 scale (only 1e-12 rounding)
        assert abs(value / 100 - expected[name] / 100) <= 1e-9, name


def test_coco_ap_perfect_and_undefined_ranges() -> None:
    truth = [ImageBoxes((100, 100), [[10, 10, 50, 50]], ["cat"])]
    metrics = coco_ap(truth, truth)
    # exactly 100 although COCOeval's raw AP here is 0.9999999999999997 (the rounding to 1e-12 absorbs it)
    assert metrics == {"AP": 100.0, "AP50": 100.0, "AP75": 100.0, "APm": 100.0}  # 40x40: medium
    several = [ImageBoxes((640, 480), [[10, 10, 50, 50], [100, 100, 300, 300], [5, 5, 20, 20]], ["cat", "dog", "cat"]),
               ImageBoxes((640, 480), [[1, 1, 200, 400]], ["dog"])]
    assert set(coco_ap(several, several).values()) == {100.0}  # AP, AP50, AP75, APs, APm, APl
    nothing = [ImageBoxes((100, 100), np.zeros((0, 4)), [])]
    assert coco_ap(truth, nothing) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "APm": 0.0}
    unknown = [ImageBoxes((100, 100), [[10, 10, 50, 50]], ["zebra"])]  # no such truth category: dropped
    assert coco_ap(truth, unknown)["AP"] == 0.0
    with pytest.raises(ValueError, match="undefined"):
        coco_ap(nothing, nothing)


def test_evaluate_unparseable_completion_counts_as_no_boxes() -> None:
    records = [{**sample([[10, 10, 50, 50]], ["cat"]), "completion": "no idea"},
               {**sample([[10, 10, 50, 50]], ["cat"]), "completion": answer([([10, 10, 50, 50], "cat")])}]
    # one of two truths found, precision 1 -> AP = 101-point interpolated 0.5 recall = 51/101
    assert TASK.evaluate(records)["AP"] == pytest.approx(100 * 51 / 101)


# -- matching ablation: sequential (prediction i against truth i) ---------------------------------------
SEQUENTIAL = detection.SequentialDetectionTask()


def test_default_matching_is_hungarian() -> None:
    assert TASK.matching == "hungarian" and SEQUENTIAL.matching == "sequential"
    swapped = answer([([50, 50, 90, 90], "dog"), ([10, 10, 30, 30], "cat")])
    assert TASK.reward(swapped, GT).total == pytest.approx(MAX)  # order does not matter to Hungarian
    with pytest.raises(ValueError, match="sequential"):
        DetectionTask(matching="greedy")


def test_sequential_reward_hand_computed() -> None:
    # the right boxes in the other order: pred 0 (dog box) vs truth 0 (cat box) IoU 0, same for pred 1:
    # nothing kept, F1 0, penalty -0.5 (1 + 1): only the format point minus 1 remains
    swapped = answer([([50, 50, 90, 90], "dog"), ([10, 10, 30, 30], "cat")])
    result = SEQUENTIAL.reward(swapped, GT)
    assert result.components == pytest.approx({"format": 1.0, "f1": 0.0, "class_accuracy": 0.0, "iou": 0.0,
                                               "missing_penalty": -1.0})
    assert result.total == pytest.approx(0.0)
    # in order, plus one extra box at the end: 2 kept of 3 predictions, F1 4/5, FP rate 1/3
    extra = answer([([10, 10, 30, 30], "cat"), ([50, 50, 90, 80], "cat"), ([0, 60, 10, 70], "dog")])
    result = SEQUENTIAL.reward(extra, GT)
    expected = {"format": 1.0, "f1": 0.8, "class_accuracy": 0.5, "iou": (1 + 0.75) / 2, "missing_penalty": -1 / 6}
    assert result.components == pytest.approx(expected)
    assert result.total == pytest.approx(1 + 0.75 * 0.8 + 0.5 + 0.875 - 1 / 6)
    # the extra box first shifts every pair: pred 0 vs cat IoU 0, pred 1 (cat box) vs dog box IoU 0 -> none kept
    shifted = answer([([0, 60, 10, 70], "dog"), ([10, 10, 30, 30], "cat"), ([50, 50, 90, 90], "dog")])
    assert SEQUENTIAL.reward(shifted, GT).components["f1"] == 0.0
    assert TASK.reward(shifted, GT).components["f1"] == pytest.approx(0.8)


def test_sequential_in_order_equals_hungarian() -> None:
    rendered = SEQUENTIAL.render({**GT, "coords": "pixels"})
    assert SEQUENTIAL.reward(rendered, GT).total == pytest.approx(MAX) == TASK.reward(rendered, GT).total


def test_sequential_is_registered_and_keeps_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "")
    assert isinstance(check_discoverable("detection-sequential"), detection.SequentialDetectionTask)
    check_task(SEQUENTIAL, max_examples=50)


def test_assign_pairs() -> None:
    from perception_r1.tasks.matching import assign

    cost = np.array([[5.0, 0.0], [0.0, 5.0], [1.0, 1.0]])
    assert [list(a) for a in assign(cost)] == [[0, 1], [1, 0]]
    assert [list(a) for a in assign(cost, "sequential")] == [[0, 1], [0, 1]]
    assert [len(a) for a in assign(np.zeros((0, 3)), "sequential")] == [0, 0]
    with pytest.raises(ValueError, match="hungarian"):
        assign(cost, "greedy")
