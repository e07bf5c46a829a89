"""Counting task: contract kit, hand-computed rewards and metrics, reward hacking, parser properties."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_r1 import ParseError
from perception_r1.tasks.counting import MAX_ITEMS, CountingTask, parse_centres
from perception_r1.testing import TaskContract, check_task

TASK = CountingTask()
# 200x100 image; two 20x20 squares centred at (50, 50) and (150, 50) px
# norm1000: boxes (200,400),(300,600) and (700,400),(800,600); centres (250,500) and (750,500)
SAMPLE = {
    "image_size": [200, 100],
    "query": {"object": "red squares"},
    "solution": {"points": [[50, 50], [150, 50]], "boxes": [[40, 40, 60, 60], [140, 40, 160, 60]]},
}
EMPTY = {"image_size": [200, 100], "query": {"object": "red squares"}, "solution": {"points": []}}
PERFECT = "<|box_start|>(200,400),(300,600)<|box_end|><|box_start|>(700,400),(800,600)<|box_end|>"
DIAGONAL = math.hypot(200, 100)


def reward(text: str, sample=SAMPLE, **extra):
    return TASK.reward(text, {**sample, **extra})


def test_contract_kit():
    assert check_task(TASK)["fuzzed_inputs"] > 200


class TestDiscoverable(TaskContract):
    task_name = "counting"
    max_examples = 50


def test_prompt_is_the_papers():
    assert TASK.prompt(SAMPLE) == "Output all the bounding boxes of the red squares"


@pytest.mark.parametrize(
    "text",
    [
        PERFECT,
        "<|object_ref_start|>red squares<|object_ref_end|>" + PERFECT,
        "(200,400),(300,600)\n(700,400),(800,600)",
        "(200, 400), (300, 600), (700, 400), (800, 600)",
        "(250,500)\n(750,500)",
        "(250,500); (750,500)",
        "(750,500)\n(250,500)",  # order does not matter: Hungarian matching
        "<|box_start|>(250,500)<|box_end|>, <|box_start|>(700,400),(800,600)<|box_end|>",
        "[[200, 400, 300, 600], [700, 400, 800, 600]]",
        '```json\n[{"bbox_2d": [200, 400, 300, 600]}, {"point_2d": [750, 500]}]\n```',
    ],
)
def test_accepted_forms_score_the_maximum(text):
    result = reward(text)
    assert result.total == 1.0 and result.components == {"format": 1.0, "count_ratio": 1.0, "distance": 1.0}


def test_hand_computed_rewards():
    one = reward("<|box_start|>(200,400),(300,600)<|box_end|>")
    assert one.total == pytest.approx(0.5) and one.components["count_ratio"] == pytest.approx(0.5)
    # 50 norm1000 units = 10 px off in x, minus the 0.1 px dead zone; mean over the 2 matches
    shifted = reward("(300,500)\n(750,500)")
    expected = 1 - (9.9 / 2) / DIAGONAL
    assert shifted.components["distance"] == pytest.approx(expected)
    assert shifted.total == pytest.approx(expected)
    three = reward("(250,500); (750,500); (500,500)")
    assert three.total == pytest.approx(2 / 3)
    assert reward("[[50, 50], [150, 50]]", coords="pixels").total == 1.0
    assert reward("(50,50)\n(150,50)", coords="pixels").total == 1.0
    assert reward("(0.25,0.5)\n(0.75,0.5)", coords="norm1").total == 1.0
    assert reward("(100,100)\n(300,100)", coords="resized", resized_size=[400, 200]).total == 1.0


def test_count_zero():
    assert reward("none", EMPTY).total == 1.0
    assert reward("[]", EMPTY).components == {"format": 1.0, "count_ratio": 1.0, "distance": None}
    assert reward("(250,500)", EMPTY).total == 0.0
    result = reward("none")
    assert result.total == 0.0 and result.components == {"format": 1.0, "count_ratio": 0.0, "distance": None}


@pytest.mark.parametrize(
    "text",
    ["", "   ", "<", "<answer>", "<|box_start|><|box_end|>", "There are none", "two", "(300,600),(200,400)",
     "(1 00,400),(300,600)", "[[1, 2, 3]]", '[{"label": "x"}]', "[[NaN, 1]]", "(1,2),(3,4)" * 2000],
)
def test_malformed_answers_score_zero(text):
    result = reward(text)
    assert result.total == 0.0 and result.components["format"] == 0.0
    with pytest.raises(ParseError):
        TASK.parse(text)


def test_reward_hacks_score_low():
    box = "<|box_start|>(200,400),(300,600)<|box_end|>"
    assert reward(box * 400).total <= 2 / 400
    assert reward(box * (MAX_ITEMS + 1)).total == 0.0
    assert reward("(500,500)\n" * 300).total < 0.01
    # one box over the whole image: count half right, centre far from both
    assert reward("(0,0),(1000,1000)").total < 0.5
    assert reward("none " * 5).total == 0.0
    assert reward("", EMPTY).total == 0.0  # silence is not "zero objects"


def test_hand_computed_metrics():
    records = [
        {**SAMPLE, "completion": PERFECT},  # 2 of 2
        {**SAMPLE, "completion": "(250,500)"},  # 1 of 2
        {**EMPTY, "completion": "none"},  # 0 of 0
        {**SAMPLE, "completion": "<"},  # does not parse: wrong, counts as 0
    ]
    metrics = TASK.evaluate(records)
    # official: only the box spans count, and 'none' is no count (never right)
    assert metrics == pytest.approx({"accuracy": 0.5, "accuracy_official": 0.25, "mae": 0.75, "format_rate": 0.75})
    assert TASK.evaluate([]) == {}


def test_synthetic_counts_match_the_objects():
    rng = random.Random(7)
    counts = set()
    for _ in range(40):
        sample = TASK.synthetic(rng)
        points, boxes = sample["solution"]["points"], sample["solution"]["boxes"]
        counts.add(len(points))
        assert len(points) == len(boxes) <= 6
        for (x, y), (x1, y1, x2, y2) in zip(points, boxes, strict=True):
            assert (x, y) == ((x1 + x2) / 2, (y1 + y2) / 2)
        color = sample["query"]["object"].split()[0]
        assert color in ("red", "green", "blue", "yellow") and sample["query"]["object"].endswith("s")
    assert {0, 6} <= counts  # the whole range, empty scenes included


POINTS = st.lists(st.tuples(st.floats(0, 3999), st.floats(0, 3999)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    points=POINTS,
    size=st.tuples(st.integers(50, 6000), st.integers(50, 6000)),
    resized=st.tuples(st.integers(28, 3000), st.integers(28, 3000)),
    space=st.sampled_from(["pixels", "norm1000", "norm1", "resized"]),
    with_boxes=st.booleans(),
    half=st.floats(1, 300),
)
def test_rendered_truth_scores_the_maximum_in_every_space(points, size, resized, space, with_boxes, half):
    solution = {"points": [list(p) for p in points]}
    if with_boxes:
        solution["boxes"] = [[x - half, y - half, x + half, y + half] for x, y in points]
    sample = {"image_size": list(size), "resized_size": list(resized), "coords": space, "solution": solution}
    text = TASK.render(sample)
    assert TASK.reward(text, sample).total == 1.0, text


@settings(max_examples=200, deadline=None)
@given(
    boxes=st.lists(st.tuples(*[st.integers(0, 500)] * 4), min_size=1, max_size=20),
    sep=st.sampled_from(["", "\n", ", ", ";", " "]),
    tokens=st.booleans(),
)
def test_parser_reads_back_any_list_of_boxes(boxes, sep, tokens):
    full = [(x, y, x + w, y + h) for x, y, w, h in boxes]
    items = [f"({a}, {b}),({c},{d})" for a, b, c, d in full]
    if tokens:
        items = [f"<|box_start|>{i}<|box_end|>" for i in items]
    elif sep == "" or sep == " ":
        sep = "\n"  # bare tuples need a visible break or a comma between boxes
    centres = parse_centres(sep.join(items))
    expected = np.array([[(a + c) / 2, (b + d) / 2] for a, b, c, d in full])
    np.testing.assert_allclose(centres, expected)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789(),;. \n<|>box_startend[]{}none", max_size=300))
def test_parser_total_on_any_text(text):
    try:
        centres = parse_centres(text)
    except ParseError as exc:
        assert exc.reason
    else:
        assert centres.ndim == 2 and centres.shape[1] == 2 and len(centres) <= MAX_ITEMS
        assert np.all(np.isfinite(centres))


def test_load_jsonl_rows_from_local_files(tmp_path):
    from PIL import Image

    from perception_r1.errors import UserError

    Image.new("RGB", (200, 100)).save(tmp_path / "a.png")
    (tmp_path / "train.jsonl").write_text(
        '{"image": "a.png", "object": "red squares", "points": [[50, 50], [150, 50]]}\n'
        '{"image": "a.png", "object": "cats", "points": [], "image_size": [200, 100]}\n'
    )
    samples = TASK.load(str(tmp_path / "train.jsonl")).samples
    assert [len(s["solution"]["points"]) for s in samples] == [2, 0]
    assert samples[0]["image_size"] == [200, 100]
    assert TASK.reward("(250,500)\n(750,500)", samples[0]).total == 1.0
    assert TASK.reward("none", samples[1]).total == 1.0
    (tmp_path / "val.jsonl").write_text('{"image": "a.png", "object": "x", "points": [[1, 2, 3]]}\n')
    with pytest.raises(UserError, match=r"val.jsonl:1: bad 'counting' row \(a point must be a list of 2"):
        TASK.load(str(tmp_path), "val")


def test_an_answer_with_many_boxes_is_within_the_parse_bound():
    """Counting allows hundreds of boxes (MAX_CHARS 32,000), more than grounding's one-box bound."""
    boxes = [{"bbox_2d": [i, i, i + 10, i + 10], "label": "dog"} for i in range(80)]
    text = json.dumps(boxes)
    assert len(text) > 2000
    assert parse_centres(text).shape == (80, 2)
