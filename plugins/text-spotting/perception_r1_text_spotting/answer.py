"""Parsing a text-spotting answer: untrusted model text -> a bounded list of (polygon, text) words.

Accepted: a JSON list ``[{"polygon": [[x, y], ...], "text": "..."}, ...]``, bare or inside a
```` ```json ```` fence. Anything else is a ParseError with a reason; nothing else is ever raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from perception_r1 import ParseError
from perception_r1.tasks.answers import (
    answer_numbers,
    bare_json_list,
    bounded_text,
    fenced_block,
    list_span,
    load_json,
)

MAX_CHARS = 300_000  # 200 polygons x 64 points fit comfortably; beyond is spam, not an answer
MAX_WORDS = 200
MAX_POINTS = 64
MAX_TEXT = 256


@dataclass(frozen=True)
class Word:
    polygon: tuple[tuple[float, float], ...]  # in the completion's coordinate space
    text: str


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
    points = [answer_numbers(point, 2, "a polygon point", limit=math.inf) for point in polygon]
    return Word(tuple(points), text)


def parse_words(text: str) -> list[Word]:
    text = bounded_text(text, MAX_CHARS)
    # every word has a "polygon" key (a word's text may be "polygon" too): far more than the cap is refused
    # before any JSON is parsed, so thousands of words cost a string count, not a parse (benchmarks/fuzz.py)
    if text.count('"polygon"') > 2 * MAX_WORDS:
        raise ParseError(f"more than {MAX_WORDS} words")
    data = bare_json_list(text)  # an unfenced list whose word holds ``` is not cut at the ```
    if data is None:
        data = load_json(list_span(fenced_block(text)))
    if not isinstance(data, list):
        raise ParseError("the answer is not a JSON list")
    if len(data) > MAX_WORDS:
        raise ParseError(f"more than {MAX_WORDS} words")
    return [_word(item) for item in data]
