"""The contract kit catches broken tasks: it must fail on each kind of mistake a plugin author makes."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from perception_r1 import PaperBenchmark, ParseError, RewardResult, Shapes, Task
from perception_r1.testing import check_task


class GoodTask(Task):
    name = "upper"
    prompt_template = "Write {word} in capitals."
    solution_schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    primary_metric = "accuracy"

    def parse(self, text):
        text = text[:1000].strip()
        if not text:
            raise ParseError("empty answer")
        return text

    def reward(self, completion, sample):
        try:
            answer = self.parse(completion)
        except ParseError:
            return RewardResult(0.0, {"format": 0.0, "exact": None})
        exact = float(answer == sample["solution"]["text"])
        return RewardResult(exact, {"format": 1.0, "exact": exact})

    def evaluate(self, records):
        return {"accuracy": sum(self.reward(r["completion"], r).total for r in records) / max(len(records), 1)}

    def render(self, sample):
        return sample["solution"]["text"]

    def synthetic(self, rng):
        word = rng.choice(["cat", "dog", "owl"])
        image = Image.new("RGB", (8, 8))
        return {"image": image, "image_size": [8, 8], "query": {"word": word}, "solution": {"text": word.upper()}}


def test_a_correct_task_passes():
    counts = check_task(GoodTask(), max_examples=50)
    assert counts["fuzzed_inputs"] > 50


class RaisingParser(GoodTask):
    def parse(self, text):
        return text.split()[0]  # IndexError on blank input


class OutOfRange(GoodTask):
    def reward(self, completion, sample):
        result = super().reward(completion, sample)
        return result if result.components["format"] else RewardResult(-0.5, result.components)


class NaNReward(GoodTask):
    def reward(self, completion, sample):
        result = super().reward(completion, sample)
        return result if result.components["format"] else RewardResult(float("nan"), result.components)


class PerfectAnswerNotMax(GoodTask):
    def render(self, sample):
        return sample["solution"]["text"].lower()


class BadSchema(GoodTask):
    solution_schema = {"type": "nonsense"}


class SyntheticBreaksSchema(GoodTask):
    def synthetic(self, rng):
        return {**super().synthetic(rng), "solution": {"txt": "CAT"}}


class WrongBestMetric(GoodTask):
    def evaluate(self, records):
        return {"accuracy": 0.5}


class DrawsNaN(GoodTask):
    def draw_solution(self, sample):
        return Shapes(boxes=[[0.0, 0.0, float("nan"), 4.0]])


class DrawsADict(GoodTask):
    def draw_answer(self, answer, sample):
        return {"text": answer}


class NegativeObjects(GoodTask):
    def objects(self, solution):
        return -1


class BacktrackingParser(GoodTask):
    def parse(self, text):
        if not re.match(r"^(\w+\s?)+$", text[:1000]):  # nested quantifiers: exponential on a near-miss
            raise ParseError("not words")
        return super().parse(text)


class EmptyEvaluateDivides(GoodTask):
    def evaluate(self, records):
        return {"accuracy": sum(self.reward(r["completion"], r).total for r in records) / len(records)}


class NoImage(GoodTask):
    def synthetic(self, rng):
        return {**super().synthetic(rng), "image": None}


class RewardReturnsNone(GoodTask):
    def reward(self, completion, sample):
        return None if not completion.strip() else super().reward(completion, sample)


class PaperMetricNotReported(GoodTask):
    paper_benchmarks = {"Upper val": PaperBenchmark({"acc@0.5": (0.5, 0.6)})}


class PaperNumbersNotAPair(GoodTask):
    paper_benchmarks = {"Upper val": PaperBenchmark({"accuracy": (0.5,)})}


class WellDrawnPaperTask(GoodTask):
    paper_benchmarks = {"Upper val": PaperBenchmark({"accuracy": (0.5, 0.6)}, perplexity=1.0)}

    def draw_solution(self, sample):
        return Shapes(text=sample["solution"]["text"], polygons=[[[0, 0], [8, 0], [8, 8]]], labels=["word"])

    def objects(self, solution):
        return len(solution["text"])


def test_optional_parts_given_well_pass():
    check_task(WellDrawnPaperTask(), max_examples=20)


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (RaisingParser(), "parse raised IndexError"),
        (OutOfRange(), "outside reward_range"),
        (NaNReward(), "is not finite"),
        (PerfectAnswerNotMax(), "the ground truth as a completion scores 0.0"),
        (BadSchema(), "solution_schema is not a valid JSON Schema"),
        (SyntheticBreaksSchema(), "synthetic sample 0 breaks the schema"),
        (WrongBestMetric(), "perfect predictions give accuracy=0.5"),
        (DrawsNaN(), "draw_solution .* coordinate nan that is not a finite number"),
        (DrawsADict(), r"draw_answer \(sample 0\) returned dict, not Shapes"),
        (NegativeObjects(), "objects .* returned -1"),
        (PaperMetricNotReported(), "metric 'acc@0.5' is not one evaluate"),
        (PaperNumbersNotAPair(), "must be a finite .base, Perception-R1. pair"),
        (BacktrackingParser(), "parse took .* catastrophic regex backtracking"),
        (EmptyEvaluateDivides(), r"evaluate\(\[\]\) raised ZeroDivisionError"),
        (NoImage(), "synthetic sample 0 has no PIL image"),
        (RewardReturnsNone(), "'upper': reward returned NoneType .*, not a RewardResult"),
    ],
)
def test_kit_rejects_a_broken_task(task, message):
    with pytest.raises(AssertionError, match=message):
        check_task(task, max_examples=50)


class PrefixedBacktrackingParser(GoodTask):
    """The issue's example: the nested quantifier sits behind a literal prefix, so fixed hostile strings
    never reach it; a correct answer's prefix followed by a pumped character does."""

    def parse(self, text):
        if text.startswith("answer:") and not re.match(r"^answer:\s*((?:[A-Za-z]+,?)+)\.$", text[:1000]):
            raise ParseError("not a list of words")
        return super().parse(text.removeprefix("answer: ").removesuffix("."))

    def render(self, sample):
        return f"answer: {super().render(sample)}."


def test_the_kit_finds_backtracking_behind_a_literal_prefix():
    with pytest.raises(AssertionError, match="parse took .* catastrophic regex backtracking"):
        check_task(PrefixedBacktrackingParser())
