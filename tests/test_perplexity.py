"""Perceptual perplexity: mean number of matchings per sample, checked against counts by hand."""

from __future__ import annotations

import json
import math

import pytest
from helpers import run_cli

from perception_r1.data.synthetic import synthetic_samples
from perception_r1.evaluate.perplexity import format_big, perplexity
from perception_r1.registry import get_registry


def test_hand_counted_set():
    # 0, 1, 3 and 4 objects: 0! + 1! + 3! + 4! = 1 + 1 + 6 + 24 = 32 matchings over 4 samples
    result = perplexity([0, 1, 3, 4])
    assert result["mean"] == 8.0 and result["log10_mean"] == pytest.approx(math.log10(8))
    assert result["mean_objects"] == 2.0 and result["max_objects"] == 4


def test_single_answer_tasks_have_perplexity_one():
    registry = get_registry()
    grounding, ocr = registry.task("grounding"), registry.task("ocr")
    assert grounding.objects({"bbox": [1, 2, 3, 4]}) is None and ocr.objects({"text": "abc"}) is None
    result = perplexity([None, None])
    assert result["mean"] == 1.0 and not result["multi_object"]


def test_multi_object_tasks_count_their_objects():
    registry = get_registry()
    assert registry.task("counting").objects({"points": [[1, 2]] * 3, "boxes": []}) == 3
    assert registry.task("detection").objects({"boxes": [[0, 0, 1, 1]] * 2, "labels": ["a", "b"]}) == 2


def test_huge_values_stay_finite_in_log10():
    # one sample with 200 boxes: 200! ~ 7.89e374 overflows a float; the log10 does not
    result = perplexity([200, 0])
    assert result["mean"] is None
    assert result["log10_mean"] == pytest.approx(math.lgamma(201) / math.log(10) - math.log10(2), abs=1e-9)
    assert format_big(result["log10_mean"]).endswith("e+374")
    assert format_big(math.log10(229_202)) == "229,202"


def test_synthetic_counting_set_matches_a_hand_count():
    task = get_registry().task("counting")
    samples = synthetic_samples(task, "train", 12, seed=0)
    counts = [len(s["solution"]["points"]) for s in samples]
    # counted by hand from the 12 generated scenes (seeded: the same on every machine)
    assert counts == [1, 2, 6, 1, 3, 3, 4, 0, 3, 6, 6, 4]
    # 1 + 2 + 720 + 1 + 6 + 6 + 24 + 1 + 6 + 720 + 720 + 24 = 2231 matchings over 12 samples
    expected = 2231 / 12
    assert perplexity(task.objects(s["solution"]) for s in samples)["mean"] == pytest.approx(expected, rel=1e-12)

    result = run_cli("perplexity", "--task", "counting", "--limit", "12", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["samples"] == 12 and out["mean"] == pytest.approx(expected, rel=1e-12)
    text = run_cli("perplexity", "--task", "grounding", "--limit", "5")
    assert "perceptual perplexity: 1 (log10 0.000)" in text.stdout


def test_bad_split_is_one_line():
    result = run_cli("perplexity", "--task", "counting", "--split", "test")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "synthetic data has splits" in result.stderr
