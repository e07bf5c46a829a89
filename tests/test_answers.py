"""The shared answer grammar (perception_r1.tasks.answers): totality, bounded time, round trips, huge numbers."""

from __future__ import annotations

import json
import math
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_r1 import ParseError
from perception_r1.tasks import answers
from perception_r1.tasks.counting import parse_centres
from perception_r1.tasks.detection import parse_objects
from perception_r1.tasks.grounding import parse_box

HUGE = "9" * 400  # a valid JSON integer that float() cannot hold: OverflowError before the fix


def total(fn, *args):
    """fn(*args), or None when it raised ParseError (anything else propagates and fails the test)."""
    try:
        return fn(*args)
    except ParseError as exc:
        assert exc.reason
        return None


# -- never anything but ParseError ---------------------------------------------------------------------
grammar = st.text(alphabet='[]{}()",:;0123456789.-eE bbox_2dlabelpointjsonNaInfity`\n<|>_', max_size=300)
anything = st.one_of(st.text(max_size=300), grammar, st.none(), st.integers(), st.binary(max_size=20))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=5), kids, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(anything)
def test_text_functions_raise_only_parse_error(text) -> None:
    total(answers.require_text, text)
    total(answers.bounded_text, text, 100)
    total(answers.answer_body, text, 100)
    if isinstance(text, str):
        total(answers.json_answer, text)
        total(answers.load_json, text)
        total(answers.list_span, answers.fenced_block(text))
        total(answers.compact, text)
        assert answers.bare_json_list(text) is None or text.strip().startswith("[")
        assert isinstance(answers.unfence(text), str)


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(0, 5))
def test_numbers_raise_only_parse_error(value, n) -> None:
    out = total(answers.answer_numbers, value, n, "x")
    if out is not None:
        assert len(out) == n and all(math.isfinite(v) and abs(v) < answers.MAX_NUMBER for v in out)
    out = total(answers.answer_numbers, value, n, "x", math.inf)
    if out is not None:
        assert all(math.isfinite(v) for v in out)


# -- huge and non-finite numbers ------------------------------------------------------------------------
@pytest.mark.parametrize("value", [int(HUGE), 10**400, -(10**400), float("inf"), float("nan"), 1e9, True, "1", None])
def test_a_huge_or_odd_number_is_a_parse_error(value) -> None:
    with pytest.raises(ParseError):
        answers.answer_number(value, "x")
    with pytest.raises(ParseError):
        answers.answer_numbers([value, 0], 2, "x")


def test_no_limit_still_refuses_what_float_cannot_hold() -> None:
    assert answers.answer_number(1e300, "x", math.inf) == 1e300
    with pytest.raises(ParseError):
        answers.answer_number(10**400, "x", math.inf)


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_box, f"[1, 2, 3, {HUGE}]"),
        (parse_box, f'{{"bbox_2d": [1, 2, 3, {HUGE}]}}'),
        (parse_centres, f"[[1, {HUGE}]]"),
        (parse_centres, f'[{{"point_2d": [1, {HUGE}]}}]'),
        (parse_objects, f'[{{"bbox_2d": [1, 2, 3, {HUGE}], "label": "cat"}}]'),
        (parse_box, "[1, 2, 3, " + "9" * 5000 + "]"),  # past Python's int digit limit: ValueError inside json
    ],
)
def test_a_400_digit_integer_in_an_answer_is_a_parse_error(parse, text) -> None:
    with pytest.raises(ParseError):
        parse(text)


# -- bounded time on 1 MB inputs ---------------------------------------------------------------------
MB = 1_000_000
BIG = [
    "(" * MB,
    "1" * MB,
    "1 " * (MB // 2),
    "```" * (MB // 3),
    "[" * MB,
    "[" * (MB // 2) + "]" * (MB // 2),
    "<|box_start|>" + "(1,2)," * (MB // 6),
    "a" * MB + "```json\n[1]\n```",
    '["' + "`" * MB + '"]',
    "9" * MB,
    "red " * (MB // 4) + "(1,2),(3,4)",
]


@pytest.mark.parametrize("text", BIG, ids=range(len(BIG)))
def test_bounded_time_on_a_megabyte(text: str) -> None:
    start = time.perf_counter()
    total(answers.answer_body, text, MB)
    total(answers.json_answer, text)
    total(answers.bare_json_list, text)
    total(answers.list_span, answers.fenced_block(text))
    total(answers.load_json, text)
    total(answers.compact, text)
    flat = re.sub(r"\s+", "", text)
    re.fullmatch(rf"{answers.REF}(?:{answers.BOX_START})?{answers.BOX}(?:{answers.BOX_END})?", flat)
    re.compile(answers.REF).match(flat)
    for parse in (parse_box, parse_centres, parse_objects):
        total(parse, text)
    assert time.perf_counter() - start < 10.0  # linear: well under a second on an idle core


# -- round trips ----------------------------------------------------------------------------------------
coord = st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6, allow_nan=False)
word = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({"bbox_2d": st.lists(coord, min_size=4, max_size=4), "label": word}), max_size=8),
       st.sampled_from(["{}", "```json\n{}\n```", "```\n{}```", "Here:\n```json\n{}\n```\ndone", "```json\n{}"]))
def test_json_answers_round_trip(objects, wrapper: str) -> None:
    text = wrapper.replace("{}", json.dumps(objects))
    assert answers.json_answer(text) == objects
    values = [answers.answer_numbers(o["bbox_2d"], 4, "box", math.inf) for o in objects]
    assert values == [tuple(float(v) for v in o["bbox_2d"]) for o in objects]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({"label": word}), min_size=1, max_size=4), st.sampled_from(["", "  ", "\n"]))
def test_an_unfenced_list_holding_backticks_parses_whole(objects, pad: str) -> None:
    objects[0]["label"] = "```" + objects[0]["label"]
    text = pad + json.dumps(objects) + pad
    assert answers.bare_json_list(text) == objects
    assert answers.json_answer(text) == objects


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=50), st.sampled_from(["", "json"]))
def test_unfence_round_trips(body: str, tag: str) -> None:
    body = body.strip()
    if body.startswith("json") or body.endswith("`") or body.startswith("`"):
        return  # ambiguous with the tag / the fence itself
    assert answers.unfence(f" ```{tag}\n{body}\n``` ") == body
    assert answers.unfence(body) == body


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 10**6) | st.floats(0, 1000, allow_nan=False), min_size=4, max_size=4),
       st.sampled_from(["pixels", "norm1000", "norm1", "resized"]))
def test_the_number_grid_round_trips(values, space: str) -> None:
    x1, y1, x2, y2 = (answers.format_number(v, answers.decimals_for(space)) for v in values)
    text = answers.compact(f"<|box_start|>({x1}, {y1}), ({x2},{y2})<|box_end|>")
    match = re.fullmatch(rf"{answers.BOX_START}{answers.BOX}{answers.BOX_END}", text)
    assert match is not None
    decimals = answers.decimals_for(space)
    assert [float(v) for v in match.groups()] == [round(v, decimals) for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-500, 500), min_size=4, max_size=4))
def test_check_box_keeps_ordered_boxes_and_refuses_swapped_corners(values) -> None:
    x1, y1, x2, y2 = values
    if x1 <= x2 and y1 <= y2:
        assert answers.check_box(values) == tuple(values)
    else:
        with pytest.raises(ParseError, match="out of order"):
            answers.check_box(values)


def test_answer_body_bounds_and_empties() -> None:
    assert answers.answer_body("  ```json\n[1]\n```  ", 100) == "[1]"
    with pytest.raises(ParseError, match="longer"):
        answers.answer_body("x" * 101, 100)
    for empty in ("", "   ", "``````", "```json```"):
        with pytest.raises(ParseError, match="empty"):
            answers.answer_body(empty, 100)
    with pytest.raises(ParseError, match="not text"):
        answers.answer_body(None, 100)


def test_compact_refuses_a_split_number() -> None:
    assert answers.compact(" (1, 2) ,\n(3,4) ") == "(1,2),(3,4)"
    with pytest.raises(ParseError, match="space inside a number"):
        answers.compact("(1 2,3)")


def test_fenced_block_reads_the_first_fence_and_drops_the_tag() -> None:
    assert answers.fenced_block("noise ```json\n[1]\n``` more ```[2]```") == "[1]\n"
    assert answers.fenced_block("```[1]") == "[1]"  # truncated answer: no closing fence
    assert answers.fenced_block("no fence") == "no fence"
    assert answers.list_span("Sure: [1, 2] ok") == "[1, 2]"
    with pytest.raises(ParseError):
        answers.list_span("] no list [")
