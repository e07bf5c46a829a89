"""Parsing a text-spotting answer: untrusted model text -> a bounded list of (polygon, text) words.

Accepted: a JSON list ``[{"polygon": [[x, y], ...], "text": "..."}, ...]``, bare or inside a
```` ```json ```` fence. Anything else is a ParseError with a reason; nothing else is ever raised.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from perception_r1 import ParseError

MAX_CHARS = 300_000  # 200 polygons x 64 points fit comfortably; beyond is spam, not an answer
MAX_WORDS = 200
MAX_POINTS = 64
MAX_TEXT = 256


@dataclass(frozen=True)
class Word:
    polygon: tuple[tuple[float, float], ...]  # in the completion's coordinate space
    text: str


def _no_constants(name: str) -> Any:
    raise ParseError(f"{name} is not a coordinate")


def _json_span(text: str) -> str:
    """The JSON list inside the first ``` fence if any, else from the first '[' to the last ']'."""
    start = text.find("```")
    if start >= 0:
        end = text.find("```", start + 3)
        text = text[start + 3 : end if end >= 0 else len(text)]
        if text.startswith("json"):
            text = text[4:]
    first, last = text.find("["), text.rfind("]")
    if first < 0 or last < first:
        raise ParseError("no JSON list in the answer")
    return text[first : last + 1]


def _number(value: Any) -> float:
    # bool is an int subclass: `true` is not a coordinate
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError("a polygon point is not two numbers")
    out = float(value)
    if not math.isfinite(out):
        raise ParseError("a coordinate is not finite")
    return out


def _word(item: Any) -> Word:
    if not isinstance(item, dict):
        raise ParseError("a list item is not an object")
    polygon, text = item.get("polygon"), item.get("text")
    if not isinstance(text, str):
        raise ParseError('a word has no "text" string')
    if len(text) > MAX_TEXT:
        raise ParseError(f"a word's text is longer than {MAX_TEXT} characters")
    if not isinstance(polygon, list) or not 3 <= len(polygon) <= MAX_POINTS:
        raise ParseError(f'"polygon" must be a list of 3 to {MAX_POINTS} [x, y] points')
    points = []
    for point in polygon:
        if not isinstance(point, list) or len(point) != 2:
            raise ParseError("a polygon point is not [x, y]")
        points.append((_number(point[0]), _number(point[1])))
    return Word(tuple(points), text)


def parse_words(text: str) -> list[Word]:
    if not isinstance(text, str):
        raise ParseError("the answer is not text")
    if len(text) > MAX_CHARS:
        raise ParseError(f"answer longer than {MAX_CHARS} characters")
    span = _json_span(text)
    try:
        data = json.loads(span, parse_constant=_no_constants)
    except ParseError:
        raise
    except (ValueError, RecursionError) as exc:  # bad JSON, 5000-deep nesting, 100k-digit integers
        raise ParseError(f"invalid JSON ({type(exc).__name__})") from None
    if not isinstance(data, list):
        raise ParseError("the answer is not a JSON list")
    if len(data) > MAX_WORDS:
        raise ParseError(f"more than {MAX_WORDS} words")
    return [_word(item) for item in data]
