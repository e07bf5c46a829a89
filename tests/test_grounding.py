"""Grounding task: contract kit, hand-computed rewards and metrics, reward hacking, parser properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_r1 import ParseError
from perception_r1.tasks.grounding import GroundingTask, parse_box
from perception_r1.testing import TaskContract, check_task

TASK = GroundingTask()
# 200x100 image, box 40x40 px; in norm1000 the box is (100,100),(300,500)
SAMPLE = {"image_size": [200, 100], "query": {"expression": "red circle"}, "solution": {"bbox": [20, 10, 60, 50]}}


def reward(text: str, **extra):
    return TASK.reward(text, {**SAMPLE, **extra})


def test_contract_kit():
    counts = check_task(TASK)
    assert counts["fuzzed_inputs"] > 200


class TestDiscoverable(TaskContract):
    task_name = "grounding"
    max_examples = 50


def test_prompt_is_the_papers():
    assert TASK.prompt(SAMPLE) == "Output the bounding box of the red circle in the image."


@pytest.mark.parametrize(
    "text",
    [
        "(100,100),(300,500)",
        "<|box_start|>(100,100),(300,500)<|box_end|>",
        "<|object_ref_start|>red circle<|object_ref_end|><|box_start|>(100,100),(300,500)<|box_end|>",
        "red circle(100,100),(300,500)",
        " ( 100 , 100 ) , ( 300 , 500 ) ",
        "[100, 100, 300, 500]",
        '{"bbox_2d": [100, 100, 300, 500]}',
        '```json\n[{"bbox_2d": [100, 100, 300, 500], "label": "red circle"}]\n```',
    ],
)
def test_accepted_forms_score_the_maximum(text):
    result = reward(text)
    assert result.total == 2.0 and result.components == {"format": 1.0, "iou": 1.0}


def test_hand_computed_partial_overlap():
    # pred (20,10)-(40,50) px: 800 px^2 inside a 1600 px^2 ground truth -> IoU 0.5
    result = reward("(100,100),(200,500)")
    assert result.components["iou"] == pytest.approx(0.5)
    assert result.total == pytest.approx(1.25)  # format 1 + 0.5 ** 2
    assert GroundingTask(iou_power=1).reward("(100,100),(200,500)", SAMPLE).total == pytest.approx(1.5)
    # one norm1000 unit = 0.2 px in x, beyond the 0.1 px dead zone: IoU (60 - 20.2) / 40
    assert reward("(101,100),(300,500)").components["iou"] == pytest.approx(39.8 / 40)


def test_every_coordinate_space():
    assert reward("[20, 10, 60, 50]", coords="pixels").total == 2.0
    assert reward("[0.1, 0.1, 0.3, 0.5]", coords="norm1").total == 2.0
    assert reward('{"bbox_2d": [40, 20, 120, 100]}', coords="resized", resized_size=[400, 200]).total == 2.0
    # the same numbers read in the wrong space are a poor box
    assert reward("[20, 10, 60, 50]").total < 1.1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "<",
        "<answer>",
        "<|box_start|><|box_end|>",
        "<anything at all",
        "(100,100)",
        "(100,100),(300,500),(1,1),(2,2)",
        "(100,100),(300,500)\n(0,0),(10,10)",
        "[100, 100, 300]",
        "[true, 100, 300, 500]",
        "[NaN, 100, 300, 500]",
        "(300,500),(100,100)",
        "(1 00,100),(300,500)",
        "the box is somewhere",
    ],
)
def test_malformed_answers_score_zero(text):
    result = reward(text)
    assert result.total == 0.0 and result.components == {"format": 0.0, "iou": None}
    with pytest.raises(ParseError):
        TASK.parse(text)


def test_reward_hacks_score_low():
    # the whole image: IoU = 1600 / 20000 = 0.08, the reward barely above the format point
    assert reward("(0,0),(1000,1000)").total == pytest.approx(1 + 0.08**2)
    # a tiny box in the middle of the truth: IoU 1 / 1600
    assert reward("(200,300),(205,310)").total < 1.01
    assert reward("(0,0),(1000,1000)" * 3).total == 0.0
    assert reward("x" * 10_000).total == 0.0


def test_hand_computed_metrics():
    records = [
        {**SAMPLE, "completion": "(100,100),(300,500)"},  # IoU 1
        {**SAMPLE, "completion": "(100,100),(200,500)"},  # IoU 0.5
        {**SAMPLE, "completion": "(140,100),(300,500)"},  # IoU 32 * 40 / 1600 = 0.8
        {**SAMPLE, "completion": "<"},  # does not parse: IoU 0
    ]
    metrics = TASK.evaluate(records)
    assert metrics["acc@0.5"] == pytest.approx(0.75)
    assert metrics["acc@0.75"] == pytest.approx(0.5)
    assert metrics["acc@0.95"] == pytest.approx(0.25)
    assert metrics["acc_mean"] == pytest.approx(0.5)
    assert metrics["miou"] == pytest.approx(0.575)
    assert metrics["format_rate"] == pytest.approx(0.75)
    assert TASK.evaluate([]) == {}


def test_synthetic_expression_names_exactly_one_object():
    rng = random.Random(5)
    for _ in range(20):
        sample = TASK.synthetic(rng)
        color, shape = sample["query"]["expression"].split()
        x1, y1, x2, y2 = sample["solution"]["bbox"]
        assert 0 <= x1 < x2 <= 112 and 0 <= y1 < y2 <= 112
        assert sample["image"].getpixel((int((x1 + x2) / 2), int(y2) - 1)) != (24, 24, 24)
        assert shape in ("circle", "square", "triangle") and color in ("red", "green", "blue", "yellow")


BOXES = st.tuples(st.floats(0, 3999), st.floats(0, 3999), st.floats(1, 2000), st.floats(1, 2000)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)


@settings(max_examples=200, deadline=None)
@given(
    box=BOXES,
    size=st.tuples(st.integers(50, 6000), st.integers(50, 6000)),
    resized=st.tuples(st.integers(28, 3000), st.integers(28, 3000)),
    space=st.sampled_from(["pixels", "norm1000", "norm1", "resized"]),
)
def test_rendered_truth_scores_the_maximum_in_every_space(box, size, resized, space):
    sample = {"image_size": list(size), "resized_size": list(resized), "coords": space, "solution": {"bbox": box}}
    text = TASK.render(sample)
    result = TASK.reward(text, sample)
    assert result.total == 2.0, (text, result)


@settings(max_examples=300, deadline=None)
@given(
    nums=st.tuples(*[st.integers(0, 500)] * 2, *[st.integers(0, 500)] * 2),
    spaces=st.lists(st.sampled_from(["", " ", "  ", "\n"]), min_size=10, max_size=10),
    tokens=st.booleans(),
    ref=st.sampled_from(["", "red circle", "<|object_ref_start|>the red circle<|object_ref_end|>"]),
)
def test_parser_reads_back_any_well_formed_box(nums, spaces, tokens, ref):
    x1, y1, dx, dy = nums
    x2, y2 = x1 + dx, y1 + dy
    s = spaces
    core = f"({s[0]}{x1}{s[1]},{s[2]}{y1}{s[3]}),{s[4]}({s[5]}{x2}{s[6]},{s[7]}{y2}{s[8]}){s[9]}"
    text = f"{ref}<|box_start|>{core}<|box_end|>" if tokens else f"{ref}{core}"
    assert parse_box(text) == (x1, y1, x2, y2)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parser_total_on_any_text(text):
    try:
        box = parse_box(text)
    except ParseError as exc:
        assert exc.reason
    else:
        assert len(box) == 4 and box[0] <= box[2] and box[1] <= box[3]


def test_load_jsonl_rows_from_local_files(tmp_path):
    from PIL import Image

    from perception_r1.errors import UserError

    Image.new("RGB", (200, 100)).save(tmp_path / "a.png")
    (tmp_path / "val.jsonl").write_text(
        '{"image": "a.png", "expression": "red circle", "bbox": [20, 10, 60, 50]}\n\n'
        '{"image": "a.png", "expression": "dog", "bbox_xywh": [20, 10, 40, 40], "image_size": [200, 100], "id": "x"}\n'
    )
    loaded = TASK.load(str(tmp_path), "val")
    samples = loaded.samples
    assert loaded.format == "jsonl" and loaded.benchmark is None
    assert [s["solution"]["bbox"] for s in samples] == [[20, 10, 60, 50], [20, 10, 60, 50]]
    assert [s["image_size"] for s in samples] == [[200, 100], [200, 100]]
    assert samples[1]["id"] == "x" and samples[0]["image"] == str(tmp_path / "a.png")
    assert TASK.reward("(100,100),(300,500)", samples[0]).total == 2.0
    (tmp_path / "train.jsonl").write_text('{"image": "a.png", "expression": "x", "bbox": [60, 10, 20, 50]}\n')
    with pytest.raises(UserError, match=r"train.jsonl:1: bad 'grounding' row \(bbox corners out of order"):
        TASK.load(str(tmp_path), "train")
    with pytest.raises(UserError, match="test.jsonl"):
        TASK.load(str(tmp_path), "test")
    assert len(TASK.load(str(tmp_path), "val", limit=1).samples) == 1
