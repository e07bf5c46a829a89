"""Rewards at scale: this project's detection and counting rewards vs the per-sample alternatives.

Detection: ``DetectionTask.reward`` (parse + Hungarian multi-subject matching) vs the reward other
projects build from pycocotools: per completion, parse the JSON, build in-memory ``COCO`` ground-truth
and result objects, run ``COCOeval`` (evaluate / accumulate / summarize) and take AP as the reward.
Both sides start from the same completion text and the same sample, at 10, 100 and 300 boxes (predictions
= ground truths in number; predictions are jittered truths, 10% with a wrong class, shuffled).

Counting: ``CountingTask.reward`` on 10 / 100 / 200 points (Qwen2-VL box tokens in 0-1000 space) vs the
same reward written the way per-sample reward functions usually are: the distance matrix by Python
loops over the pairs, then scipy's Hungarian.

    python benchmarks/rewards.py            # full run (about a minute)
    python benchmarks/rewards.py --smoke    # 1 sample per size, 1 round: checks the script runs

Targets (issue 8): detection >= 20x faster than per-sample COCOeval and < 5 ms/sample at 100 x 100.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from typing import Any

import numpy as np
from _common import best_of, machine, parse_args, pycocotools_stats, table

from perception_r1.tasks.coco import COCO_CLASSES
from perception_r1.tasks.counting import CountingTask
from perception_r1.tasks.detection import DetectionTask

IMAGE_SIZE = (640, 480)
SMOKE = {"batch": 1, "repeats": 1}


# -- synthetic samples ---------------------------------------------------------------------------
def detection_sample(rng: random.Random, n: int) -> tuple[str, dict[str, Any]]:
    """A completion with ``n`` predicted boxes and a sample with ``n`` ground-truth boxes (pixels)."""
    w, h = IMAGE_SIZE
    boxes, labels = [], []
    for _ in range(n):
        bw, bh = rng.uniform(8, 160), rng.uniform(8, 160)
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        boxes.append([round(x, 1), round(y, 1), round(x + bw, 1), round(y + bh, 1)])
        labels.append(rng.choice(COCO_CLASSES[:20]))
    objects = []
    for box, label in zip(boxes, labels, strict=True):
        jitter = [v + rng.gauss(0, 3) for v in box]
        pred_label = label if rng.random() > 0.1 else rng.choice(COCO_CLASSES[:20])
        objects.append({"bbox_2d": [int(round(v)) for v in jitter], "label": pred_label})
    rng.shuffle(objects)
    completion = "```json\n" + json.dumps(objects) + "\n```"
    sample = {"image_size": list(IMAGE_SIZE), "coords": "pixels", "solution": {"boxes": boxes, "labels": labels}}
    return completion, sample


def counting_sample(rng: random.Random, n: int) -> tuple[str, dict[str, Any]]:
    """A completion with ``n`` boxes in Qwen2-VL 0-1000 box tokens and ``n`` ground-truth points (pixels)."""
    w, h = IMAGE_SIZE
    points = [[rng.uniform(10, w - 10), rng.uniform(10, h - 10)] for _ in range(n)]
    lines = []
    for px, py in points:
        cx, cy = (px + rng.gauss(0, 4)) / w * 1000, (py + rng.gauss(0, 4)) / h * 1000
        x1, y1, x2, y2 = (int(max(0, min(1000, v))) for v in (cx - 10, cy - 10, cx + 10, cy + 10))
        lines.append(f"<|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>")
    rng.shuffle(lines)
    completion = "<|object_ref_start|>objects<|object_ref_end|>" + "\n".join(lines)
    return completion, {"image_size": list(IMAGE_SIZE), "coords": "norm1000", "solution": {"points": points}}


# -- the alternatives ----------------------------------------------------------------------------
def cocoeval_reward(completion: str, sample: dict[str, Any]) -> float:
    """AP of one completion against its sample with pycocotools, as per-sample COCOeval rewards do it."""
    text = completion.strip().removeprefix("```json").removesuffix("```")
    try:
        objects = json.loads(text)
    except ValueError:
        return 0.0
    names = sorted(set(sample["solution"]["labels"]))
    cat = {name: i + 1 for i, name in enumerate(names)}
    w, h = sample["image_size"]
    annotations = []
    for i, ((x1, y1, x2, y2), label) in enumerate(zip(sample["solution"]["boxes"], sample["solution"]["labels"],
                                                      strict=True)):
        annotations.append({"id": i + 1, "image_id": 1, "category_id": cat[label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    detections = []
    for obj in objects:
        if obj.get("label") in cat:
            x1, y1, x2, y2 = obj["bbox_2d"]
            detections.append({"image_id": 1, "category_id": cat[obj["label"]], "bbox": [x1, y1, x2 - x1, y2 - y1],
                               "score": 1.0})
    if not detections:
        return 0.0
    dataset = {"images": [{"id": 1, "width": w, "height": h}], "annotations": annotations,
               "categories": [{"id": i, "name": n} for n, i in cat.items()]}
    return max(0.0, float(pycocotools_stats(dataset, detections)[0]))


def loop_counting_reward(completion: str, sample: dict[str, Any], task: CountingTask) -> float:
    """The counting reward with the distance matrix built pair by pair in Python, then scipy's Hungarian."""
    from scipy.optimize import linear_sum_assignment

    from perception_r1 import ParseError

    try:
        centres = task.parse(completion)  # the same parser: only the matching is compared
    except ParseError:
        return 0.0
    w, h = sample["image_size"]
    pred = [(x / 1000 * w, y / 1000 * h) for x, y in centres.tolist()]
    gt = sample["solution"]["points"]
    if not pred or not gt:
        return float(not pred and not gt)
    cost = [[math.hypot(px - gx, py - gy) for gx, gy in gt] for px, py in pred]
    rows, cols = linear_sum_assignment(np.asarray(cost))
    mean = sum(cost[r][c] for r, c in zip(rows, cols, strict=True)) / len(rows)
    return min(len(pred), len(gt)) / max(len(pred), len(gt)) * max(0.0, 1.0 - mean / math.hypot(w, h))


# -- measurement ---------------------------------------------------------------------------------
def per_sample_ms(fn, pairs: list[tuple[str, dict[str, Any]]], repeats: int) -> tuple[float, float]:
    """(best ms per sample over the batch, mean reward): the batch is scored in full each round."""
    rewards: list[float] = []

    def run() -> None:
        rewards[:] = [fn(c, s) for c, s in pairs]

    seconds = best_of(run, repeats=repeats, min_seconds=0.3)
    return 1000.0 * seconds / len(pairs), float(np.mean(rewards))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="samples per size")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (fastest counts)")
    args = parse_args(parser, SMOKE)
    batch, repeats = args.batch, args.repeats
    print(f"machine: {machine()}")
    print(f"batch of {batch} samples per size; best of {repeats} rounds; ms per sample\n")

    detection = DetectionTask()
    rows = []
    for n in (10, 100, 300):
        rng = random.Random(n)
        pairs = [detection_sample(rng, n) for _ in range(batch)]
        ours, our_mean = per_sample_ms(lambda c, s: detection.reward(c, s).total, pairs, repeats)
        theirs, their_mean = per_sample_ms(cocoeval_reward, pairs, repeats)
        rows.append([f"{n} x {n}", f"{ours:.2f}", f"{theirs:.2f}", f"{theirs / ours:.1f}x",
                     f"{our_mean:.3f}", f"{their_mean:.3f}"])
    print("Detection reward (parse + match) vs per-sample pycocotools COCOeval AP reward")
    print(table(["pred x gt", "ours ms", "COCOeval ms", "speed-up", "our reward", "COCOeval AP"], rows))
    at_100 = rows[1]
    ours_100, speedup_100 = float(at_100[1]), float(at_100[3].rstrip("x"))
    print(f"target at 100 x 100: >= 20x and < 5 ms -> {speedup_100:.1f}x, {ours_100:.2f} ms: "
          f"{'met' if speedup_100 >= 20 and ours_100 < 5 else 'MISSED'}\n")

    counting = CountingTask()
    rows = []
    for n in (10, 100, 200):
        rng = random.Random(1000 + n)
        pairs = [counting_sample(rng, n) for _ in range(batch)]
        ours, our_mean = per_sample_ms(lambda c, s: counting.reward(c, s).total, pairs, repeats)
        theirs, their_mean = per_sample_ms(lambda c, s: loop_counting_reward(c, s, counting), pairs, repeats)
        rows.append([f"{n} points", f"{ours:.2f}", f"{theirs:.2f}", f"{theirs / ours:.1f}x",
                     f"{our_mean:.3f}", f"{their_mean:.3f}"])
    print("Counting reward (parse + match) vs the same reward with a Python-loop distance matrix")
    print(table(["points", "ours ms", "loop ms", "speed-up", "our reward", "loop reward"], rows))


if __name__ == "__main__":
    main()
