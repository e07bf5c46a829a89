"""The answer grammar the tasks share: completion text -> answer body, code fences, JSON, numbers and
the Qwen2-VL number grid (``(x1,y1),(x2,y2)`` boxes and ``(x,y)`` points).

Model output is untrusted, so every function here is pure, raises nothing but
:class:`perception_r1.ParseError` on a bad answer, and runs in time linear in its (capped) input:
lengths are checked before any parsing, fences are found by string search (a lazy DOTALL regex
backtracks quadratically), and the grid patterns run on whitespace-free text with bounded repeats.
Tasks compose these pieces into their own formats; plugins may use them too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from perception_r1 import ParseError
from perception_r1.data.io import reject_non_finite
from perception_r1.data.limits import (
    MAX_NUMBER,  # `numbers` refuses larger: no image is a billion pixels wide
)

FENCE = "```"

Box = tuple[float, float, float, float]

# -- text and code fences -------------------------------------------------------------------------


def require_text(text: Any) -> str:
    """``text`` itself; ParseError when a completion is not a string (a tokenizer bug, a None)."""
    if not isinstance(text, str):
        raise ParseError("completion is not text")
    return text


def bounded_text(text: Any, max_chars: int) -> str:
    """``text`` when it is a string of at most ``max_chars`` characters: the cap that keeps parsing
    bounded in time and memory whatever the model writes."""
    if len(require_text(text)) > max_chars:
        raise ParseError(f"answer longer than {max_chars} characters")
    return text


def unfence(text: str) -> str:
    """The body of a whole-answer Markdown code fence (language tag ``json`` dropped), or the stripped
    text when the answer is not one fence."""
    text = text.strip()
    if len(text) < 6 or not (text.startswith(FENCE) and text.endswith(FENCE)):
        return text
    inner = text[3:-3]  # string slicing, not a regex: a lazy DOTALL pattern backtracks quadratically
    return inner.removeprefix("json").strip()


def answer_body(text: Any, max_chars: int) -> str:
    """The answer inside a completion (whole-answer fence and surrounding space removed); ParseError if
    there is none or the completion is not text or longer than ``max_chars`` (bounded parsing)."""
    body = unfence(bounded_text(text, max_chars))
    if not body:
        raise ParseError("empty answer")
    return body


def fenced_block(text: str) -> str:
    """The content of the first ``` fence, a first line that is only a language tag (```json) dropped;
    the whole text when there is no fence. An unclosed fence runs to the end (a truncated answer)."""
    start = text.find(FENCE)
    if start < 0:
        return text
    body = text[start + len(FENCE) :]
    end = body.find(FENCE)
    body = body if end < 0 else body[:end]
    first_line, newline, rest = body.partition("\n")
    if newline and first_line.strip().isalpha():
        body = rest
    return body


def list_span(text: str) -> str:
    """From the first ``[`` to the last ``]``: a JSON list with prose around it; ParseError if none."""
    first, last = text.find("["), text.rfind("]")
    if first < 0 or last < first:
        raise ParseError("no JSON list in the answer")
    return text[first : last + 1]


# -- JSON -----------------------------------------------------------------------------------------


def load_json(text: str) -> Any:
    """``json.loads`` without NaN / Infinity, with every failure as ParseError: bad syntax, nesting
    deep enough to recurse out, integers past Python's digit limit."""
    try:
        return json.loads(text, parse_constant=reject_non_finite)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"not valid JSON ({type(exc).__name__})") from None


def bare_json_list(text: str) -> Any:
    """An unfenced JSON list holding ``` inside a string (a label), parsed whole; else None.

    Without this the first ``` inside such a string is taken for a code fence and a valid answer breaks
    (found by hypothesis in detection, commit 4e18657). Answers that are not whole JSON return None, so
    a fenced block inside them is read as before.
    """
    stripped = text.strip()
    if not stripped.startswith("[") or FENCE not in stripped:
        return None
    try:
        return load_json(stripped)
    except ParseError:
        return None


def json_answer(text: str) -> Any:
    """The JSON value of an answer that is bare JSON or holds a fenced JSON block (prose around the
    fence is fine); ParseError when it is empty or not JSON."""
    value = bare_json_list(text)
    if value is not None:
        return value
    block = fenced_block(text).strip()
    if not block:
        raise ParseError("empty answer")
    return load_json(block)


# -- numbers --------------------------------------------------------------------------------------


def answer_number(value: Any, what: str, limit: float = MAX_NUMBER) -> float:
    """A JSON number as a finite float below ``limit`` in magnitude, or ParseError.

    JSON booleans are not numbers; a 400-digit integer overflows ``float()`` (OverflowError), which
    is a ParseError here like NaN and infinity.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(f"{what} must hold numbers only")
    try:
        out = float(value)
    except OverflowError:
        raise ParseError(f"{what} has a non-finite or huge number") from None
    if not (math.isfinite(out) and abs(out) < limit):
        raise ParseError(f"{what} has a non-finite or huge number")
    return out


def answer_numbers(values: Any, n: int, what: str, limit: float = MAX_NUMBER) -> tuple[float, ...]:
    """``values`` as a list of exactly ``n`` numbers (see :func:`answer_number`), or ParseError."""
    if not isinstance(values, list) or len(values) != n:
        raise ParseError(f"{what} must be a list of {n} numbers")
    return tuple(answer_number(v, what, limit) for v in values)


def check_box(box: Sequence[float]) -> Box:
    """``box`` as ``(x1, y1, x2, y2)``; swapped corners are a format error, never silently reordered."""
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        raise ParseError("box corners out of order (need x1 <= x2 and y1 <= y2)")
    return (x1, y1, x2, y2)


# -- the number grid: Qwen2-VL boxes and points ---------------------------------------------------
# The patterns run on the answer with all whitespace removed (see :func:`compact`), which keeps them
# free of ambiguous adjacent repeats: every match is linear in the input length.

#: a plain decimal with bounded digits (``12``, ``-3``, ``0.25``): never huge, never backtracking far
NUM = r"(-?\d{1,9}(?:\.\d{1,9})?)"
POINT = rf"\({NUM},{NUM}\)"
BOX = rf"{POINT},{POINT}"
BOX_START, BOX_END = r"<\|box_start\|>", r"<\|box_end\|>"
#: Qwen2-VL's object-reference tokens around a short expression
OBJECT_REF = r"<\|object_ref_start\|>[^<>]{0,200}<\|object_ref_end\|>"
#: the object reference: Qwen2-VL's tokens, or the bare text left when they were decoded away
REF = rf"(?:{OBJECT_REF}|[^\d()\[\]{{}}<>|]{{0,200}})"
_SPLIT_NUMBER = re.compile(r"[\d.]\s+[\d.]")


def compact(text: str) -> str:
    """``text`` without whitespace; ParseError when that would glue two numbers together."""
    if _SPLIT_NUMBER.search(text):
        raise ParseError("space inside a number")
    return re.sub(r"\s+", "", text)


def decimals_for(space: str) -> int:
    """How a perfect model writes numbers in ``space``: integers, except 3 decimals in norm1."""
    return 3 if space == "norm1" else 0


def format_number(value: float, decimals: int) -> str:
    """``value`` written on the answer grid: an integer, or ``decimals`` decimals."""
    return str(round(value)) if decimals == 0 else f"{value:.{decimals}f}"
