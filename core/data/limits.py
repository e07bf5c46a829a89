"""The caps that keep memory and time bounded whatever a file says, and the checks that apply them.

Every size a file gives that drives an allocation or a loop is checked here before it is used:

- :data:`MAX_IMAGE_SIDE`: ``image_size`` / ``resized_size`` values are finite, positive and at most this many
  pixels (a 400-digit integer, ``1e400`` or ``Infinity`` is a ``file:line`` error, not an OverflowError later).
- :data:`MAX_NUMBER`: every number in a ground truth is finite and below this in magnitude (as model answers,
  model answers: :mod:`perception_r1.tasks.answers` reads this one).
- :data:`MAX_IMAGE_PIXELS`: an image file with more pixels (by its header, before decoding) is refused; a
  decompression bomb (20000 x 20000 in 48 KB) never gets decoded. PIL's own ``Image.MAX_IMAGE_PIXELS`` is set
  to the same value, so any other path PIL opens raises ``DecompressionBombError`` above twice it.
- :data:`MAX_KEPT_PIXELS`: an image above this is downscaled when it is opened for a model (its
  ``image_size`` stays the original's, so ground truth in original pixels is unchanged); Qwen2-VL's processor
  resizes to at most 12.8 M pixels anyway.

Which image files may be read (:func:`image_allowed`): a data set's images must lie inside its ``--data``
directory (after ``..`` and symbolic links are resolved; absolute paths too), and a report embeds a record's
``image_path`` only from inside the run directory or a directory given from outside it: ``report --data DIR``
on the command line (the trainer's own end-of-run report passes the ``--data`` it was given). A root is never
taken from a file inside the directory being reported (``config.yaml`` ``data:``, ``metrics.json``
``data_dir``): whoever wrote that directory would choose what the page embeds. Further directories are allowed
with ``PERCEPTION_R1_IMAGE_ROOTS=/dir1:/dir2``. A data file naming ``/home/me/.ssh/...`` or ``../../private.png``
is then a ``file:row`` error, and a report never embeds a file it was not meant to.

- :data:`MAX_OBJECTS`: no list in a ground truth (detection boxes, counting points, labels) holds more items;
  a record with more is a ``file:line`` error before any matching runs (matching costs truth x predictions).
- ``perception_r1.data.io.MAX_LINE_BYTES``: no JSONL line is longer; a longer one (or ``/dev/zero``) is a
  ``file:line`` error, read in bounded memory.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from PIL import Image

from perception_r1.contract import Task

MAX_IMAGE_SIDE = 100_000
MAX_NUMBER = 1e9
MAX_IMAGE_PIXELS = 50_000_000  # ~7000 x 7000: 150 MB as RGB
MAX_KEPT_PIXELS = 4096 * 4096
MAX_DEPTH = 32  # a ground truth nested deeper than this is not one
#: items in any one list of a ground truth: COCO images have at most ~100 boxes, LVIS ~800; matching a
#: truth against predictions costs their product, so 100k truth boxes took 207 s before this cap
MAX_OBJECTS = 5_000

Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# PIL warns between MAX_IMAGE_PIXELS and twice it; such images are refused here with one line (pixels_problem),
# so the warning would only be a second, traceback-like line on stderr
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
ENV_IMAGE_ROOTS = "PERCEPTION_R1_IMAGE_ROOTS"
#: the directories images may be read from while a data set loads (set by the core's loader)
_ROOTS: ContextVar[tuple[Path, ...] | None] = ContextVar("image_roots", default=None)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def size_problem(value: Any, what: str = "image_size") -> str | None:
    """Why ``value`` is not a ``[width, height]`` in pixels within the cap; None when it is one."""
    ok = isinstance(value, list | tuple) and len(value) == 2 and all(_is_number(v) for v in value)
    if ok and all(0 < v <= MAX_IMAGE_SIDE for v in value):  # int comparison: a 400-digit integer never overflows
        return None
    shown = repr(value)
    return f"'{what}' must be [width, height], each a positive number of pixels up to {MAX_IMAGE_SIDE:,}, got " + (
        shown if len(shown) <= 60 else shown[:57] + "...")


def number_problem(value: Any, path: str = "", depth: int = 0) -> str | None:
    """Where in ``value`` (a JSON value) a number is non-finite or beyond :data:`MAX_NUMBER`, the nesting is
    deeper than :data:`MAX_DEPTH` or a list holds more than :data:`MAX_OBJECTS` items; None when usable."""
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels at {path or 'the top'}"
    if _is_number(value):
        if isinstance(value, int) and abs(value) < MAX_NUMBER:
            return None
        if isinstance(value, float) and math.isfinite(value) and abs(value) < MAX_NUMBER:
            return None
        return f"non-finite or huge number at {path or 'the top'} (numbers must be below {MAX_NUMBER:g})"
    if isinstance(value, list | dict) and len(value) > MAX_OBJECTS:  # before walking it: bounded time
        kind = "list" if isinstance(value, list) else "object"
        return f"{kind} of {len(value):,} items at {path or 'the top'}, more than {MAX_OBJECTS:,} objects per sample"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if problem := number_problem(item, f"{path}/{key}" if path else str(key), depth + 1):
            return problem
    return None


def pixels_problem(image: Image.Image) -> str | None:
    """Why an opened (not yet decoded) image is refused: more pixels than :data:`MAX_IMAGE_PIXELS`."""
    if image.width * image.height > MAX_IMAGE_PIXELS:
        return (f"image is {image.width} x {image.height} pixels, more than the cap of {MAX_IMAGE_PIXELS:,} "
                f"(a decompression bomb, or downscale it first)")
    return None


def decode_capped(image: Image.Image) -> Image.Image:
    """``image`` decoded as RGB, downscaled (aspect kept) when it has more than :data:`MAX_KEPT_PIXELS`."""
    pixels = image.width * image.height
    if pixels > MAX_KEPT_PIXELS:
        scale = math.sqrt(MAX_KEPT_PIXELS / pixels)
        target = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image.draft("RGB", target)  # JPEG: decode at a reduced size straight away
        return image.convert("RGB").resize(target, Image.Resampling.BILINEAR)
    return image.convert("RGB")


def solution_problem(task: Task, solution: Any) -> str | None:
    """Why a ground truth cannot be used by ``task``: a non-finite or huge number, nesting too deep, or the
    task's schema (``Task.validate_solution``); None when it is usable."""
    import jsonschema

    if problem := number_problem(solution):
        return f"solution has a {problem}"
    try:
        task.validate_solution(solution)
    except jsonschema.ValidationError as exc:
        at = "/".join(str(p) for p in exc.absolute_path)
        message = exc.message if len(exc.message) <= 200 else exc.message[:80] + " ... " + exc.message[-60:]
        return f"solution breaks the '{task.name}' schema{' at ' + at if at else ''}: {message}"
    return None


def _env_roots() -> list[Path]:
    return [Path(p) for p in os.environ.get(ENV_IMAGE_ROOTS, "").split(os.pathsep) if p]


def image_allowed(path: str | Path, roots: Any = None) -> bool:
    """True when ``path`` (resolved) lies inside one of ``roots`` (default: the roots of the data set being
    loaded; no data set loading and no roots given: any path) or of ``PERCEPTION_R1_IMAGE_ROOTS``."""
    roots = _ROOTS.get() if roots is None else tuple(roots)
    if roots is None:
        return True
    try:
        target = Path(path).resolve()
        return any(target.is_relative_to(Path(root).resolve()) for root in [*roots, *_env_roots()])
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a name too long, a NUL byte
        return False


@contextlib.contextmanager
def image_roots(*roots: str | Path) -> Iterator[None]:
    """While the block runs, data-set images must lie inside ``roots`` (see :func:`image_allowed`)."""
    token = _ROOTS.set(tuple(Path(r) for r in roots))
    try:
        yield
    finally:
        _ROOTS.reset(token)
