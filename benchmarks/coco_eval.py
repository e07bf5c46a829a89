"""COCO AP of 5,000 synthetic images: ``perception_r1.tasks.coco.coco_ap`` vs plain pycocotools.

Both sides get the same synthetic ground truth (1-15 boxes of the 80 COCO classes per 640x480 image)
and the same predictions (jittered truths, some with the wrong class, some missed, some extra boxes;
every box scored 1.0 as in the paper). Plain pycocotools is what a user writes by hand: build the
ground-truth ``COCO`` from a dict, ``loadRes`` the detection list, evaluate / accumulate / summarize.
faster-coco-eval (optional, ``pip install faster-coco-eval``) runs on the same dicts; it counts as a
usable backend only when its 12 stats equal pycocotools' to 1e-9.

``coco_ap`` reports percent rounded to PERCENT_DECIMALS (10) decimals, so it is compared with the plain stats rounded the
same way (must be exactly equal) and, unrounded, the largest absolute difference is printed.

    python benchmarks/coco_eval.py                 # 5,000 images
    python benchmarks/coco_eval.py --images 500    # a quicker run
    python benchmarks/coco_eval.py --smoke         # 20 images, 1 round: checks the script runs
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
from typing import Any

import numpy as np
from _common import alternating, installed, machine, parse_args, pycocotools_stats, table

from perception_r1.tasks.coco import COCO_CLASSES, PERCENT_DECIMALS, STAT_NAMES, ImageBoxes, coco_ap

IMAGE_SIZE = (640.0, 480.0)
TOLERANCE = 1e-9
SMOKE = {"images": 20, "rounds": 1}


def synthetic(n_images: int, seed: int = 0) -> tuple[list[ImageBoxes], list[ImageBoxes]]:
    rng = random.Random(seed)
    w, h = IMAGE_SIZE
    truths, predictions = [], []
    for _ in range(n_images):
        boxes, labels = [], []
        for _ in range(rng.randint(1, 15)):
            bw, bh = rng.uniform(4, 300), rng.uniform(4, 300)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            boxes.append([x, y, x + bw, y + bh])
            labels.append(rng.choice(COCO_CLASSES))
        pred_boxes, pred_labels = [], []
        for box, label in zip(boxes, labels, strict=True):
            if rng.random() < 0.15:  # missed
                continue
            scale = rng.choice([2.0, 6.0, 20.0])  # good, fair and poor localisation
            pred_boxes.append([v + rng.gauss(0, scale) for v in box])
            pred_labels.append(label if rng.random() > 0.1 else rng.choice(COCO_CLASSES))
        for _ in range(rng.randint(0, 3)):  # hallucinated boxes
            x, y = rng.uniform(0, w - 50), rng.uniform(0, h - 50)
            pred_boxes.append([x, y, x + rng.uniform(5, 50), y + rng.uniform(5, 50)])
            pred_labels.append(rng.choice(COCO_CLASSES))
        truths.append(ImageBoxes(IMAGE_SIZE, np.array(boxes), labels))
        predictions.append(ImageBoxes(IMAGE_SIZE, np.array(pred_boxes).reshape(-1, 4), pred_labels))
    return truths, predictions


def coco_dicts(truths: list[ImageBoxes], predictions: list[ImageBoxes]) -> tuple[dict[str, Any], list[dict]]:
    """The ground-truth dataset dict and the detection list, written as a user would for pycocotools."""
    names = sorted({label for t in truths for label in t.labels})
    cat = {name: i + 1 for i, name in enumerate(names)}
    images, annotations, detections = [], [], []
    for image_id, (t, p) in enumerate(zip(truths, predictions, strict=True), start=1):
        images.append({"id": image_id, "width": t.image_size[0], "height": t.image_size[1]})
        for (x1, y1, x2, y2), label in zip(t.boxes.tolist(), t.labels, strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat[label],
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        for (x1, y1, x2, y2), label in zip(p.boxes.tolist(), p.labels, strict=True):
            if label in cat:
                detections.append({"image_id": image_id, "category_id": cat[label],
                                   "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 1.0})
    dataset = {"images": images, "annotations": annotations,
               "categories": [{"id": i, "name": n} for n, i in cat.items()]}
    return dataset, detections


def faster_coco_eval(dataset: dict[str, Any], detections: list[dict]) -> np.ndarray:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(dataset)
        dt = gt.loadRes(detections)
        ev = COCOeval_faster(gt, dt, iouType="bbox", print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats[:12], dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per side (fastest counts)")
    args = parse_args(parser, SMOKE)
    print(f"machine: {machine()}")
    truths, predictions = synthetic(args.images)
    n_gt = sum(len(t.labels) for t in truths)
    n_dt = sum(len(p.labels) for p in predictions)
    print(f"{args.images} images, {n_gt} ground-truth boxes, {n_dt} predicted boxes (score 1.0)\n")

    fast_installed = installed("faster_coco_eval", "the faster-coco-eval side")
    # warm-up on a few images: imports and first-call costs stay out of the timings
    small = coco_dicts(truths[:20], predictions[:20])
    coco_ap(truths[:20], predictions[:20])
    pycocotools_stats(*small)
    if fast_installed:
        faster_coco_eval(*small)

    sides = {
        "ours": lambda: coco_ap(truths, predictions),
        # plain pycocotools: the time includes building its dicts, as coco_ap's includes building them
        "plain": lambda: pycocotools_stats(*coco_dicts(truths, predictions)),
    }
    if fast_installed:
        sides["fast"] = lambda: faster_coco_eval(*coco_dicts(truths, predictions))
    results = alternating(sides, args.rounds)
    (t_ours, ours), (t_plain, plain) = results["ours"], results["plain"]
    rounded = {name: round(100.0 * float(plain[i]), PERCENT_DECIMALS) for name, i in STAT_NAMES.items() if plain[i] >= 0}
    raw_diff = max(abs(ours[name] / 100.0 - plain[STAT_NAMES[name]]) for name in ours)
    equal = rounded == ours
    rows = [["tasks.coco.coco_ap", f"{t_ours:.2f}", f"{t_plain / t_ours:.2f}x", f"{ours['AP']:.6f}",
             f"{ours['AP50']:.6f}", f"{ours['AP75']:.6f}", "same keys and values" if equal else "DIFFERENT"],
            ["plain pycocotools", f"{t_plain:.2f}", "1.00x", f"{100 * plain[0]:.6f}", f"{100 * plain[1]:.6f}",
             f"{100 * plain[2]:.6f}", "reference"]]

    fast_note = "faster-coco-eval not installed"
    t_fast, fast = results.get("fast", (0.0, None))
    if fast is not None:
        fast_diff = float(np.max(np.abs(fast - plain)))
        identical = fast_diff <= TOLERANCE
        rows.append(["faster-coco-eval", f"{t_fast:.2f}", f"{t_plain / t_fast:.2f}x", f"{100 * fast[0]:.6f}",
                     f"{100 * fast[1]:.6f}", f"{100 * fast[2]:.6f}",
                     f"max abs diff {fast_diff:.1e}: {'identical' if identical else 'NOT identical'}"])
        fast_note = (f"faster-coco-eval: {t_plain / t_fast:.2f}x pycocotools, "
                     + ("identical to 1e-9: usable" if identical else "differs: not usable as a drop-in"))
    print(table(["backend", "seconds", "speed vs plain", "AP", "AP50", "AP75", "check"], rows))
    print(f"\ncoco_ap vs plain pycocotools: unrounded max abs diff {raw_diff:.1e} (0-1 scale; coco_ap rounds percent "
          f"to {PERCENT_DECIMALS} decimals), rounded the same way: {'exactly equal' if equal else 'DIFFERENT'}; "
          f"target 1e-9 on the unrounded stats: {'met' if raw_diff <= TOLERANCE else 'rounding only'}")
    print(fast_note)


if __name__ == "__main__":
    main()
