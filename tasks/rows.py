"""Helpers for a task's ``load``: read the rows of local data files, check their values, make samples, and
name the ``file:row`` of a bad row. The built-in tasks use them; so can any plugin.

A loader walks ``(where, row)`` pairs (:func:`jsonl_rows`, :func:`parquet_rows`, or its own, e.g. one per
entry of a JSON list) and turns each row into samples with a ``convert(row) -> list[sample]`` function that
raises :class:`BadRow` (KeyError and TypeError count too) when the row is wrong; :func:`collect` runs it and
reports a bad row as a one-line :class:`~perception_r1.errors.UserError` ``<file>:<row>: bad '<task>' row
(<reason>)``. :func:`finish` completes a sample: its image, ``image_size`` (from the image header when the row
has none), ``task``, and the solution validated against the task's schema.

Parquet is read with ``pyarrow`` (a ``datasets`` dependency) batch by batch rather than through
``datasets.load_dataset``, which would first copy a multi-GB file into its cache and lose the row numbers.
A `datasets` source (a ``save_to_disk`` directory, or a Hub id in the local cache) gives the same rows through
:func:`dataset_rows` (``source[split]:row n``); :func:`table_rows` picks parquet files or that.
Embedded images stay compressed in memory (``PIL.Image.open`` on the bytes decodes lazily).
"""

from __future__ import annotations

import io
import itertools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from perception_r1.contract import Task
from perception_r1.data import limits
from perception_r1.data.hf import dataset_rows, is_dataset_source, named_rows, open_split
from perception_r1.data.io import MAX_LINE_BYTES, read_jsonl
from perception_r1.errors import UserError
from perception_r1.tasks import geometry

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")

Rows = Iterator[tuple[str, dict[str, Any]]]


class BadRow(ValueError):
    """One row is wrong; :func:`collect` adds ``file:row``."""


# -- values ------------------------------------------------------------------------------------------
def row_number(value: Any, what: str) -> float:
    """``value`` as a finite float below :data:`~perception_r1.data.limits.MAX_NUMBER` in magnitude (a JSON
    boolean is not a number; a 400-digit integer is refused, never an OverflowError), or BadRow."""
    if isinstance(value, bool) or not isinstance(value, int | float) or limits.number_problem(value):
        shown = repr(value)
        raise BadRow(f"{what} must be a finite number below {limits.MAX_NUMBER:g}, got {shown[:40]}")
    return float(value)


def row_numbers(values: Any, n: int, what: str) -> list[float]:
    """``values`` as a list of ``n`` finite floats, or BadRow."""
    if not isinstance(values, list | tuple) or len(values) != n:
        raise BadRow(f"{what} must be a list of {n} numbers, got {values!r}"[:200])
    return [row_number(v, what) for v in values]


def xywh_box(values: Any, what: str = "bbox") -> list[float]:
    """A COCO ``[x, y, w, h]`` box as ``[x1, y1, x2, y2]``."""
    box = row_numbers(values, 4, what)
    if box[2] < 0 or box[3] < 0:
        raise BadRow(f"{what} has a negative width or height")
    return [float(v) for v in geometry.xywh_to_xyxy(box).reshape(4)]


def xyxy_box(values: Any, what: str = "bbox") -> list[float]:
    """An ``[x1, y1, x2, y2]`` box with its corners in order."""
    box = row_numbers(values, 4, what)
    if box[2] < box[0] or box[3] < box[1]:
        raise BadRow(f"{what} corners out of order (need x1 <= x2, y1 <= y2)")
    return box


# -- images ------------------------------------------------------------------------------------------
def image_size(image: Any) -> list[int]:
    """``[w, h]`` of a PIL image or an image file (the header only is read)."""
    try:
        if isinstance(image, Image.Image):
            size = [image.width, image.height]
        else:
            with Image.open(image) as im:
                size = [im.width, im.height]
    except (OSError, Image.DecompressionBombError) as exc:
        raise BadRow(f"cannot open image {str(image)[-200:]} ({exc})") from exc
    if size[0] * size[1] > limits.MAX_IMAGE_PIXELS:
        raise BadRow(f"image {str(image)[-200:]} is {size[0]} x {size[1]} pixels, more than the cap of "
                     f"{limits.MAX_IMAGE_PIXELS:,} (a decompression bomb, or downscale it first)")
    return size


def embedded_image(value: Any) -> Image.Image:
    """A parquet ``image`` cell ({bytes, path} as `datasets` writes it) as a lazily decoded PIL image."""
    data = value.get("bytes") if isinstance(value, dict) else value
    if not isinstance(data, bytes | bytearray):
        raise BadRow("image column holds no image bytes")
    try:
        image = Image.open(io.BytesIO(data))
    except (OSError, Image.DecompressionBombError) as exc:
        raise BadRow(f"image bytes are not an image ({exc})") from exc
    image_size(image)  # the pixel cap
    return image


def images_dir(root: Path) -> Path:
    """``<root>/images`` when there is one, else ``root``."""
    return root / "images" if (root / "images").is_dir() else root


# -- samples -----------------------------------------------------------------------------------------
def validate(task: Task, sample: dict[str, Any]) -> None:
    """BadRow naming the schema path when the sample's solution breaks the task's schema."""
    if problem := limits.solution_problem(task, sample["solution"]):
        raise BadRow(problem)


def finish(task: Task, sample: dict[str, Any], image: Any) -> dict[str, Any]:
    """``sample`` with its image (a PIL image or a path, which must exist), ``image_size``, ``task``,
    validated."""
    sample["image"] = image
    if not isinstance(image, Image.Image):
        sample["image_path"] = str(image)
        try:
            exists = Path(image).is_file()
        except OSError as exc:  # a name longer than the OS allows
            raise BadRow(f"image file name {str(image)[-80:]!r} is unusable ({exc.strerror})") from exc
        if not exists:
            raise BadRow(f"image file {image} does not exist")
        if not limits.image_allowed(image):
            raise BadRow(f"image {image} is outside the data directory (allow more with {limits.ENV_IMAGE_ROOTS})")
    sample.setdefault("image_size", image_size(image))
    if problem := limits.size_problem(sample["image_size"]):
        raise BadRow(problem)
    validate(task, sample)
    return sample


def collect(task: Task, rows: Rows, convert: Callable[[dict[str, Any]], list[dict[str, Any]]],
            limit: int | None) -> list[dict[str, Any]]:
    """The samples ``convert`` makes of ``rows``, at most ``limit``; a bad row is a UserError naming it.
    A sample without an ``id`` gets one from its row's place (``val.jsonl-3``)."""
    samples: list[dict[str, Any]] = []
    for where, row in rows:
        try:
            made = convert(row)
        except (BadRow, KeyError, TypeError) as exc:
            reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise UserError(f"{where}: bad '{task.name}' row ({reason})") from exc
        for sample in made:
            sample.setdefault("id", where.rsplit("/", 1)[-1].replace(":row ", "-").replace(":", "-"))
        samples += made
        if limit is not None and len(samples) >= limit:
            return samples[:limit]
    return samples


# -- files -------------------------------------------------------------------------------------------
def jsonl_rows(file: Path) -> Rows:
    """(``file:line``, object) for every non-blank line; a line that is not a JSON object is a UserError."""
    return ((f"{file}:{lineno}", row) for lineno, row in read_jsonl(file))


def parquet_rows(files: list[Path]) -> Rows:
    """(``file:row n``, row as a dict) for every row of the parquet ``files``, in order."""
    import pyarrow.parquet as pq

    for file in files:
        try:
            reader = pq.ParquetFile(file)
        except Exception as exc:  # pyarrow raises its own error types for a corrupt file
            raise UserError(f"{file}: not a readable parquet file ({exc})") from exc
        row = 0
        for batch in reader.iter_batches(batch_size=256):
            for item in batch.to_pylist():
                row += 1
                yield f"{file}:row {row}", item


def dataset_table(source: str | Path, names: list[str]) -> tuple[Any, Rows]:
    """A `datasets` source's first split of ``names`` as a ``datasets.Dataset`` (images undecoded) and its rows
    (``source[split]:row n``): for a loader that needs the features too (e.g. a ClassLabel's names)."""
    table, split = open_split(source, names)
    return table, named_rows(table, source, split)


def table_rows(root: Path, names: list[str]) -> Rows:
    """The rows of the first split of ``names``: a `datasets` source's, else ``<root>/[data/]<name>-*.parquet``."""
    if is_dataset_source(root):
        return dataset_rows(root, names)
    return parquet_rows(split_files(root, names, "parquet"))


def split_files(root: Path, names: list[str], ext: str) -> list[Path]:
    """``<root>/[data/]<name>-*.<ext>`` (or ``<name>.<ext>``) for the first name that has any."""
    for name in names:
        for folder in (root, root / "data"):
            files = sorted(folder.glob(f"{name}-*.{ext}")) + sorted(folder.glob(f"{name}.{ext}"))
            if files:
                return files
    return []


def split_jsonl(task: Task, path: str | Path, split: str | None) -> Path:
    """``<path>/<split>.jsonl`` (``train`` by default), or ``path`` itself when it is a file."""
    file = Path(path)
    if file.is_dir():
        file = file / f"{split or 'train'}.jsonl"
    if not file.is_file():
        raise UserError(f"task '{task.name}': no data file {file} (expected <data>/<split>.jsonl)")
    return file


def read_json(path: Path) -> Any:
    """A whole JSON file; UserError naming it when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    except (ValueError, RecursionError) as exc:  # bad syntax or bytes, a 5000-digit integer, deep nesting
        raise UserError(f"{path}: not valid JSON ({str(exc)[:200] or type(exc).__name__})") from exc


def load_jsonl(task: Task, path: str | Path, split: str | None, limit: int | None,
               to_sample: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    """Samples of the simple JSONL layout ``<path>/<split>.jsonl`` (or the file ``path``), one per line (or per
    entry when the file is a JSON list).

    ``to_sample(row)`` gives a sample's ``query`` and ``solution`` (raising BadRow / KeyError on a bad row);
    ``image`` is a path relative to the file's folder; ``image_size`` (else read from the image header) and
    ``id`` (else ``<file stem>-<line>``) are optional.
    """
    file = split_jsonl(task, path, split)

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        sample = to_sample(row)
        if "image_size" in row:
            sample["image_size"] = row_numbers(row["image_size"], 2, "image_size")
        sample["id"] = str(row["id"])
        return [finish(task, sample, str(file.parent / str(row["image"])))]

    rows = ((where, {"id": f"{file.stem}-{where.rsplit(':', 1)[1]}", **row}) for where, row in file_rows(file))
    return collect(task, rows, convert, limit)


# -- layouts of one file ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """A row layout a task reads from a JSON / JSONL file: its name and the keys every row must have."""

    name: str
    required: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.name} {{{', '.join(self.required)}}}"


def file_rows(file: Path) -> Rows:
    """(``file:row``, object) for every row of a JSONL file or of a JSON list (pretty-printed or not; ``row`` is
    then the 1-based entry). The first non-blank character decides: ``[`` is a JSON list, anything else JSONL."""
    with file.open("rb") as handle:
        start = handle.read(4096).lstrip()[:1]
    if start == b"{" and _one_object(file):
        raise UserError(f"{file}: one JSON object, not rows (a JSON list of objects, or JSONL: one object per line)")
    if start != b"[":
        yield from jsonl_rows(file)
        return
    entries = read_json(file)
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise UserError(f"{file}:{n}: expected a JSON object, got {type(entry).__name__}")
        yield f"{file}:{n}", entry


def _one_object(file: Path) -> bool:
    """Whether ``file`` is a single JSON object spread over lines (pretty-printed), which JSONL is not."""
    with file.open("rb") as handle:
        first = handle.readline(MAX_LINE_BYTES + 1)  # bounded: jsonl_rows names a line past the cap
    try:
        json.loads(first)
        return False  # a whole object on line 1: JSONL
    except (ValueError, RecursionError):
        pass
    try:
        return isinstance(json.loads(file.read_bytes()), dict)
    except (ValueError, RecursionError):
        return False  # not JSON as a whole either: JSONL reading names the bad line


def pick_layout(task: Task, file: Path, layouts: Sequence[Layout]) -> tuple[Layout, Rows]:
    """The layout of ``file`` (the first whose keys its first row has) and all its rows; else a UserError that
    names the layout it came closest to, the keys it lacks, and every layout the task reads."""
    rows = file_rows(file)
    first = next(rows, None)
    if first is None:
        raise UserError(f"{file}: no rows")
    where, row = first
    for layout in layouts:
        if all(key in row for key in layout.required):
            return layout, itertools.chain([first], rows)
    tried = max(layouts, key=lambda lay: sum(key in row for key in lay.required))
    missing = ", ".join(repr(key) for key in tried.required if key not in row)
    known = "; ".join(layout.describe() for layout in layouts)
    raise UserError(f"{where}: matches no '{task.name}' layout (tried {tried.name}: missing {missing}); "
                    f"the '{task.name}' layouts are: {known}")


def local_image(file: Path, relative: Any, subfolder: str = "") -> Path:
    """An image a row names relative to an image directory, as the official evaluation files do: looked up
    beside ``file``, in its ``images/`` folder, then under each directory of ``PERCEPTION_R1_IMAGE_ROOTS``
    (which also lets images outside ``--data`` be read; see :mod:`perception_r1.data.limits`); in each of them
    also under ``subfolder`` when given (PageOCR's script joins ``<lang>_pdf_png/`` to its image directory)."""
    if not isinstance(relative, str) or not relative.strip():
        raise BadRow("image must be a non-empty path")
    bases = [file.parent, images_dir(file.parent)]
    bases += [Path(p) for p in os.environ.get(limits.ENV_IMAGE_ROOTS, "").split(os.pathsep) if p]
    for folder in [place for base in bases for place in ([base, base / subfolder] if subfolder else [base])]:
        try:
            if (folder / relative).is_file():
                return folder / relative
        except OSError as exc:  # a name longer than the OS allows
            raise BadRow(f"image file name {relative[-80:]!r} is unusable ({exc.strerror})") from exc
    also = f" (or their {subfolder}/)" if subfolder else ""
    raise BadRow(f"image {relative[-200:]} is not beside {file.name}, in images/ or under a directory of "
                 f"{limits.ENV_IMAGE_ROOTS}{also}")
