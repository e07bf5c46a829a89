"""Adversarial completions against every built-in reward: each must score below an honest, imperfect answer.

"Honest" here is a modest answer a weak model could give (a box at IoU ~0.6, a count off by one, a word
with one typo, half the objects found). A reward that lets a trick beat that is a reward a policy will
learn to game. Each case's score is printed in the failure message.
"""

from __future__ import annotations

import json

import pytest

from perception_r1.registry import get_registry, reset_registry
from perception_r1.tasks.coco import COCO_CLASSES

W, H = 200, 200


@pytest.fixture(scope="module")
def tasks():
    reset_registry()
    return get_registry().tasks


def _score(task, completion, solution, coords="pixels"):
    return task.reward(completion, {"image_size": [W, H], "solution": solution, "coords": coords}).total


GROUNDING = {"bbox": [40, 40, 100, 100]}
GROUNDING_HONEST = "(46,46),(100,100)"  # IoU (54/60)^2 = 0.81
GROUNDING_HACKS = {
    "empty": "",
    "only format tokens": "<|box_start|><|box_end|>",
    "starts with <": "<answer>",
    "whole image": "(0,0),(200,200)",
    "prompt copied back": "Output the bounding box of the red circle in the image.",
    "two boxes": "(40,40),(100,100),(0,0),(200,200)",
    "answer repeated": "(40,40),(100,100) (40,40),(100,100)",
    "degenerate box": "(40,40),(40,40)",
    "huge numbers": "(-1e308,-1e308),(1e308,1e308)",
}


@pytest.mark.parametrize("name", GROUNDING_HACKS)
def test_grounding_hacks(tasks, name):
    task = tasks["grounding"]
    honest = _score(task, GROUNDING_HONEST, GROUNDING)
    hack = _score(task, GROUNDING_HACKS[name], GROUNDING)
    assert hack < honest, f"grounding '{name}' scores {hack:.3f} >= honest {honest:.3f}"


COUNTING = {"points": [[30, 30], [100, 100], [170, 170]]}
COUNTING_HONEST = "(30,30)\n(100,100)"  # two of three, exact: 2/3
COUNTING_HACKS = {
    "empty": "",
    "only format tokens": "<|box_start|><|box_end|>",
    "starts with <": "<count>3</count>",
    "whole image": "<|box_start|>(0,0),(200,200)<|box_end|>",
    "hundreds of duplicates": "\n".join(["(100,100)"] * 300),
    "grid of points": "\n".join(f"({x},{y})" for x in range(0, 200, 20) for y in range(0, 200, 20)),
    "prompt copied back": "Output all the bounding boxes of the red circles",
    "a number instead of boxes": "3",
}


@pytest.mark.parametrize("name", COUNTING_HACKS)
def test_counting_hacks(tasks, name):
    task = tasks["counting"]
    honest = _score(task, COUNTING_HONEST, COUNTING)
    hack = _score(task, COUNTING_HACKS[name], COUNTING)
    assert hack < honest, f"counting '{name}' scores {hack:.3f} >= honest {honest:.3f}"


OCR = {"text": "quick brown fox"}
OCR_HONEST = "quick brown fax"
OCR_HACKS = {
    "empty": "",
    "whitespace": "   \n\t ",
    "prompt copied back": "OCR this image.",
    "answer repeated": "quick brown fox quick brown fox",
    "alphabet": "abcdefghijklmnopqrstuvwxyz",
    "huge output": "quick brown fox " * 10_000,
}


@pytest.mark.parametrize("name", OCR_HACKS)
def test_ocr_hacks(tasks, name):
    task = tasks["ocr"]
    honest = _score(task, OCR_HONEST, OCR, coords="none")
    hack = _score(task, OCR_HACKS[name], OCR, coords="none")
    assert hack < honest, f"ocr '{name}' scores {hack:.3f} >= honest {honest:.3f}"


def _det(objs):
    return json.dumps([{"bbox_2d": box, "label": label} for box, label in objs])


DETECTION = {"boxes": [[10, 10, 60, 60], [120, 120, 180, 180]], "labels": ["person", "dog"]}
DETECTION_HONEST = _det([([12, 12, 60, 60], "person")])  # one of two found
DETECTION_HACKS = {
    "empty": "",
    "empty list": "[]",
    "starts with <": "<json>[]</json>",
    "whole image": _det([([0, 0, 200, 200], "person")]),
    "every COCO class, whole image": _det([([0, 0, 200, 200], c) for c in COCO_CLASSES]),
    "every COCO class on each true box": _det([(b, c) for b in DETECTION["boxes"] for c in COCO_CLASSES]),
    "hundreds of duplicates": _det([([10, 10, 60, 60], "person")] * 250),
    "prompt copied back": "Please output bbox coordinates and names of person, dog.",
}


@pytest.mark.parametrize("name", DETECTION_HACKS)
def test_detection_hacks(tasks, name):
    task = tasks["detection"]
    honest = _score(task, DETECTION_HONEST, DETECTION)
    hack = _score(task, DETECTION_HACKS[name], DETECTION)
    assert hack < honest, f"detection '{name}' scores {hack:.3f} >= honest {honest:.3f}"
