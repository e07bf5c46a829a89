"""The task: name the colour of the single shape in the image, in one word.

Replace this with your own task; keep the five methods (parse, reward, evaluate, render, synthetic)
and the class attributes, and the contract tests in ``tests/`` keep working.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from perception_r1 import ParseError, RewardResult, Task
from perception_r1.tasks.scenes import COLORS, SHAPES, place_objects

TASK_NAME = "template"
KNOWN_COLOR_REWARD = TASK_NAME + ".known_color"
MAX_CHARS = 64  # a colour name is one short word; never read more of an untrusted answer
FORMAT_WEIGHT = 0.1


class ColorTask(Task):
    name = TASK_NAME
    description = "Name the colour of the single shape in the image (from the plugin template)"
    prompt_template = "What colour is the {shape} in the image? Answer with one word."
    default_query = {"shape": "shape"}
    coord_space = "none"
    solution_schema = {
        "type": "object",
        "required": ["color"],
        "properties": {"color": {"type": "string", "minLength": 1}},
    }
    reward_range = (0.0, 1.0)
    primary_metric = "accuracy"

    def parse(self, text: str) -> str:
        """One alphabetic word, case and a final full stop ignored. A list of colours is not an answer."""
        if not isinstance(text, str) or len(text) > MAX_CHARS:
            raise ParseError(f"expected one word of at most {MAX_CHARS} characters")
        word = text.strip().removesuffix(".").strip().lower()
        if not word.isascii() or not word.isalpha():
            raise ParseError("expected exactly one word of letters")
        return word

    def reward(self, completion: str, sample: Mapping[str, Any]) -> RewardResult:
        try:
            answer = self.parse(completion)
        except ParseError:
            return RewardResult(0.0, {"format": 0.0, "accuracy": None})
        correct = float(answer == sample["solution"]["color"].lower())
        total = FORMAT_WEIGHT + (1 - FORMAT_WEIGHT) * correct
        return RewardResult(total, {"format": 1.0, "accuracy": correct}, answer=answer)  # logged, not re-parsed

    def evaluate(self, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        results = [self.reward(r["completion"], r).components for r in records]
        n = max(1, len(results))
        return {
            "accuracy": sum(c["accuracy"] or 0.0 for c in results) / n,
            "parse_rate": sum(c["format"] for c in results) / n,
        }

    def render(self, sample: Mapping[str, Any]) -> str:
        return sample["solution"]["color"]

    def synthetic(self, rng: random.Random) -> dict[str, Any]:
        shape, color = rng.choice(SHAPES), rng.choice(list(COLORS))
        scene = place_objects(rng, [(shape, color)], size=(112, 112), min_size=24, max_size=60)
        return {"image": scene.image, "image_size": [112, 112], "query": {"shape": shape}, "solution": {"color": color}}


def known_color(completions: Sequence[str], samples: Sequence[Mapping[str, Any]], **_: Any) -> list[float | None]:
    """An extra (shaping) reward: 1 if the answer names a colour the scenes use, 0 if another word,
    None when it is not one word (the task's own format component already scores that)."""
    out: list[float | None] = []
    task = ColorTask()
    for completion in completions:
        try:
            out.append(float(task.parse(completion) in COLORS))
        except ParseError:
            out.append(None)
    return out
