"""Text spotting: discovery, the contract kit, hand-computed rewards and metrics, reward hacking."""

import json
import random

import numpy as np
import pytest
from perception_r1_text_spotting import TextSpotting

from perception_r1.testing import TaskContract, check_discoverable

A = {"polygon": [[0, 0], [10, 0], [10, 10], [0, 10]], "text": "cat"}
B = {"polygon": [[50, 50], [70, 50], [70, 60], [50, 60]], "text": "house"}
SAMPLE = {"image_size": [100, 100], "query": {}, "solution": {"words": [A, B]}}
TASK = TextSpotting()


def answer(*words):
    return json.dumps(list(words))


def reward(*words, sample=SAMPLE):
    return TASK.reward(answer(*words), sample)


def test_installed_and_discovered():
    task = check_discoverable("text-spotting")
    assert isinstance(task, TextSpotting)


class TestTextSpottingContract(TaskContract):
    task_name = "text-spotting"
    max_examples = 100


# -- reward, by hand ------------------------------------------------------------------------------
def test_perfect_answer():
    result = reward(A, B)
    assert result.total == pytest.approx(1.0)
    assert result.components == {"format": 1.0, "f1": 1.0, "iou": 1.0, "text": 1.0}


def test_one_word_of_two():
    # f1 = 2*1/(1+2); iou and text are means over the one matched pair
    result = reward(A)
    assert result.components["f1"] == pytest.approx(2 / 3)
    assert result.total == pytest.approx(0.1 + 0.4 * 2 / 3 + 0.25 + 0.25)


def test_shifted_polygon_below_iou_threshold():
    shifted = {"polygon": [[5, 0], [15, 0], [15, 10], [5, 10]], "text": "cat"}  # inter 50, union 150
    result = reward(shifted)
    assert result.components["iou"] == pytest.approx(1 / 3)
    assert result.components["f1"] == 0.0
    assert result.total == pytest.approx(0.1 + 0.25 / 3 + 0.25)


def test_misread_word_and_case():
    # "cats" vs "cat": edit distance 1 over 4 characters; "HOUSE" equals "house"
    result = reward({**A, "text": "cats"}, {**B, "text": "HOUSE"})
    assert result.components["text"] == pytest.approx((0.75 + 1.0) / 2)
    assert result.total == pytest.approx(0.1 + 0.4 + 0.25 + 0.25 * 0.875)


def test_right_place_wrong_word_still_matches_by_location():
    result = reward({**A, "text": "zzz"}, B)  # "zzz" vs "cat": nothing in common
    assert result.components["f1"] == 1.0
    assert result.components["text"] == pytest.approx(0.5)


def test_other_coordinate_spaces_and_fences():
    norm = {"polygon": [[0, 0], [100, 0], [100, 100], [0, 100]], "text": "cat"}  # norm1000 of 100 px = 10 px
    sample = {**SAMPLE, "coords": "norm1000"}
    b_norm = {"polygon": [[500, 500], [700, 500], [700, 600], [500, 600]], "text": "house"}
    assert reward(norm, b_norm, sample=sample).total == pytest.approx(1.0)
    fenced = "Here you go:\n```json\n" + answer(A, B) + "\n```\n"
    assert TASK.reward(fenced, SAMPLE).total == pytest.approx(1.0)
    for space in ("norm1", "norm1000"):
        s = {**SAMPLE, "coords": space}
        assert TASK.reward(TASK.render(s), s).total == pytest.approx(1.0)


def test_bad_format_scores_zero():
    for text in ["", "cat house", '[{"polygon": [[0, 0], [1, 1]], "text": "cat"}]', '[{"polygon": [[0,0],[1,0],[1,1]]}]',
                 '[{"polygon": [[0, 0], [1, 0], [true, 1]], "text": "a"}]', '[{"polygon": [[0,0],[1,0],[NaN,1]], "text": "a"}]',
                 '{"polygon": [[0, 0], [1, 0], [1, 1]], "text": "a"}']:
        result = TASK.reward(text, SAMPLE)
        assert result.total == 0.0 and result.components["format"] == 0.0, text


def test_a_huge_integer_is_a_format_error_not_a_crash():
    huge = {"polygon": [[0, 0], [10, 0], [10, int("9" * 400)], [0, 10]], "text": "cat"}
    result = reward(huge, B)
    assert result.total == 0.0 and result.components["format"] == 0.0


def test_a_word_holding_backticks_is_not_taken_for_a_code_fence():
    """The shared grammar's fix (perception_r1.tasks.answers.bare_json_list): an unfenced list parses whole."""
    ticks = {**A, "text": "ca```t"}
    assert [w.text for w in TASK.parse(answer(ticks, B))] == ["ca```t", "house"]
    assert TASK.reward("noise ```json\n" + answer(A, B) + "\n```", SAMPLE).total == pytest.approx(1.0)


# -- reward hacking ----------------------------------------------------------------------------------
def test_empty_list_gets_format_only():
    assert reward().total == pytest.approx(0.1)


def test_one_polygon_over_the_whole_image():
    everything = {"polygon": [[0, 0], [100, 0], [100, 100], [0, 100]], "text": "cat"}
    result = reward(everything)
    assert result.components["f1"] == 0.0
    assert result.components["iou"] == pytest.approx(0.01)  # 100 px of A over 10000
    assert result.total == pytest.approx(0.1 + 0.25 * 0.01 + 0.25)
    assert result.total < reward(A).total


def test_duplicated_words_cost_f1():
    result = reward(A, A, B, B)
    assert result.components["f1"] == pytest.approx(2 * 2 / (4 + 2))
    assert result.total < 0.9


def test_spam_is_bounded():
    assert reward(*[A] * 200).components["f1"] == pytest.approx(2 / 202)
    assert reward(*[A] * 201).total == 0.0  # over the cap: not an answer
    many_points = {"polygon": [[i % 10, i // 10] for i in range(65)], "text": "cat"}
    assert reward(many_points).total == 0.0


def test_degenerate_polygons_never_raise():
    bowtie = {"polygon": [[0, 0], [10, 10], [10, 0], [0, 10]], "text": "cat"}
    line = {"polygon": [[0, 0], [5, 5], [10, 10]], "text": "cat"}
    huge = {"polygon": [[-1e300, -1e300], [1e300, -1e300], [1e300, 1e300]], "text": "cat"}
    for word in (bowtie, line, huge):
        result = reward(word)
        assert 0.0 <= result.total <= 1.0
        assert all(v is None or np.isfinite(v) for v in result.components.values())
    assert reward(bowtie).components["iou"] == pytest.approx(25 / 100)  # the repaired half of the bowtie
    assert reward(line).components["iou"] == 0.0


def test_no_words_in_the_image():
    empty = {**SAMPLE, "solution": {"words": []}}
    assert TASK.reward("[]", empty).total == pytest.approx(1.0)
    assert TASK.reward(answer(A), empty).total == pytest.approx(0.1)


# -- metrics, by hand ---------------------------------------------------------------------------------
def test_end_to_end_and_detection_f1():
    records = [
        {**SAMPLE, "completion": answer({**A, "text": "CAT"}, {**B, "text": "hose"})},  # e2e 1, det 2
        {**SAMPLE, "solution": {"words": [A]}, "completion": "no idea"},  # 0 predictions, 1 truth
    ]
    m = TASK.evaluate(records)
    # e2e: TP 1, P 2, G 3; detection: TP 2
    assert m["e2e_precision"] == pytest.approx(0.5)
    assert m["e2e_recall"] == pytest.approx(1 / 3)
    assert m["e2e_f1"] == pytest.approx(2 / 5)
    assert m["det_precision"] == pytest.approx(1.0)
    assert m["det_recall"] == pytest.approx(2 / 3)
    assert m["det_f1"] == pytest.approx(4 / 5)
    assert m["parse_rate"] == pytest.approx(0.5)


def test_duplicates_count_once_in_the_metric():
    m = TASK.evaluate([{**SAMPLE, "completion": answer(A, A, B)}])
    assert (m["e2e_precision"], m["e2e_recall"]) == (pytest.approx(2 / 3), 1.0)


# -- synthetic data -------------------------------------------------------------------------------------
def test_synthetic_polygons_cover_the_ink():
    from shapely.geometry import Point, Polygon

    rng = random.Random(3)
    for _ in range(8):
        sample = TASK.synthetic(rng)
        w, h = sample["image_size"]
        assert w == h and w in (112, 224)
        assert 1 <= len(sample["solution"]["words"]) <= 3
        pixels = np.asarray(sample["image"])
        colors, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
        ink = np.any(pixels != colors[counts.argmax()], axis=-1)  # the background is the commonest colour
        shapes = [Polygon(word["polygon"]).buffer(2.0) for word in sample["solution"]["words"]]
        ys, xs = np.nonzero(ink)
        outside = [(x, y) for x, y in zip(xs, ys, strict=True)
                   if not any(s.contains(Point(x + 0.5, y + 0.5)) for s in shapes)]
        assert len(outside) <= 0.01 * len(xs), f"{len(outside)} of {len(xs)} ink pixels outside the polygons"


def test_synthetic_is_deterministic():
    a, b = TASK.synthetic(random.Random(7)), TASK.synthetic(random.Random(7))
    assert a["solution"] == b["solution"]
    assert a["image"].tobytes() == b["image"].tobytes()


# -- the framework treats it as a built-in: report drawing and perceptual perplexity -------------
@pytest.fixture
def installed(monkeypatch):
    """A fresh registry that sees every installed plugin (text-spotting included)."""
    from perception_r1.registry import reset_registry

    monkeypatch.delenv("PERCEPTION_R1_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


def test_drawing_puts_words_in_original_pixels():
    sample = {**SAMPLE, "coords": "norm1000"}
    truth = TASK.draw_solution(sample)
    assert truth.polygons == [A["polygon"], B["polygon"]] and truth.labels == ["cat", "house"]
    pred = TASK.draw_answer(TASK.parse(answer({"polygon": [[0, 0], [100, 0], [100, 100]], "text": "cat"})), sample)
    assert pred.polygons == [[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]] and pred.labels == ["cat"]
    assert TASK.objects(SAMPLE["solution"]) == 2 and TASK.objects({"words": []}) == 0


def test_report_draws_truth_and_predicted_polygons(tmp_path, installed):
    import base64
    import io
    import re

    from PIL import Image

    from perception_r1.data import io as pio
    from perception_r1.evaluate.evaluation import record_of
    from perception_r1.evaluate.report import PREDICTION, TRUTH, VIEW, build_report

    far = {"polygon": [[20, 70], [40, 70], [40, 90], [20, 90]], "text": "dog"}
    record = record_of({"id": "w-1", "task": "text-spotting", "coords": "pixels", **SAMPLE}, answer(far), TASK)
    pio.write_jsonl(tmp_path / "predictions.jsonl", [record])
    page = build_report(tmp_path)
    assert "not installed" not in page and "perceptual perplexity of these samples: 2" in page
    (png,) = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    picture = Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB")
    s = VIEW / 100

    def colour_near(x, y):
        return {picture.getpixel((int(x * s) + dx, int(y * s) + dy)) for dx in (-1, 0, 1) for dy in (-1, 0, 1)}

    assert TRUTH in colour_near(60, 50)  # top edge of the true word "house"
    assert TRUTH in colour_near(0.5, 5)  # left edge of the true word "cat"
    assert PREDICTION in colour_near(30, 90)  # bottom edge of the predicted word "dog"
    assert PREDICTION not in colour_near(60, 50) and TRUTH not in colour_near(30, 80)


def test_perplexity_counts_words(installed):
    import math
    import os
    import subprocess
    import sys

    from perception_r1.data.synthetic import synthetic_samples
    from perception_r1.registry import get_registry

    samples = synthetic_samples(get_registry().task("text-spotting"), "train", 6, seed=0)
    counts = [len(s["solution"]["words"]) for s in samples]
    assert max(counts) > 1  # several words per image: more than one matching
    env = {k: v for k, v in os.environ.items() if k != "PERCEPTION_R1_PLUGINS"}
    result = subprocess.run([sys.executable, "-m", "perception_r1.cli", "perplexity", "--task", "text-spotting",
                             "--limit", "6", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["multi_object"] and out["max_objects"] == max(counts)
    assert out["mean"] == pytest.approx(sum(math.factorial(n) for n in counts) / len(counts), rel=1e-12)
