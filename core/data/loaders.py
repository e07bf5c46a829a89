"""Loaders for the paper's data sets, read from files a user downloaded (no hub is reachable).

Every loader returns samples in the task contract's format (see :mod:`perception_r1.contract`), boxes in
original-image pixels xyxy, validated against the task's ``solution_schema``; a bad row is a one-line
:class:`UserError` naming ``file:row`` (JSONL/parquet: 1-based row; JSON lists: 1-based entry).

Formats (``split`` is the trainer's/CLI's name: ``train``, ``val``, ``test``, ``testA``, ``testB``):

==============  ==========================================================================================
grounding       * lmms-lab RefCOCO / RefCOCOplus / RefCOCOg parquet: ``<dir>/[data/]<split>-*.parquet``,
                  columns ``image`` ({bytes, path}), ``answer`` (referring expressions), ``bbox`` (COCO xywh)
                * refer toolkit as JSON: ``<dir>/refs(unc).json`` (or ``refs(umd).json`` / ``refs.json``:
                  list of refs with ``split``, ``ann_id``, ``image_id``, ``sentences``) + ``<dir>/instances.json``
                  (COCO) + images in ``<dir>/images/`` (``refs(*).p`` pickles are never opened: convert them)
                * Qwen-VL evaluation JSONL ``<dir>/<name>_<split>.jsonl``: ``image``, ``sent``, ``bbox`` xyxy
counting        PixMo-Count parquet ``<dir>/[data/]<split>-*.parquet`` (``validation`` for ``val``): ``points``
                ([{x, y}] pixels), ``count``, ``label``, ``image_sha256``/``image_url`` with the downloaded images
                in ``<dir>/images/`` named by sha256 (any extension) or by the URL's file name; or an ``image``
                column with the bytes
ocr             page-OCR JSONL ``<dir>/<split>.jsonl`` (or the file itself): ``image`` (relative path), ``text``
detection       COCO 2017: ``<dir>/annotations/instances_<split>2017.json`` + ``<dir>/<split>2017/`` images
==============  ==========================================================================================

Parquet is read with ``pyarrow`` (a ``datasets`` dependency) batch by batch rather than through
``datasets.load_dataset``, which would first copy a multi-GB file into its cache and lose the row numbers.
Embedded images stay compressed in memory (``PIL.Image.open`` on the bytes decodes lazily).
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from PIL import Image

from perception_r1.contract import Task
from perception_r1.data.io import read_jsonl
from perception_r1.errors import UserError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


@dataclass
class Loaded:
    """Samples read from local files, the format they were in and the paper benchmark they are (if any)."""

    samples: list[dict[str, Any]]
    format: str
    benchmark: str | None = None


class BadRow(ValueError):
    """One row is wrong; the loader adds ``file:row``."""


# -- small helpers --------------------------------------------------------------------------------
def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRow(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _numbers(values: Any, n: int, what: str) -> list[float]:
    if not isinstance(values, list | tuple) or len(values) != n:
        raise BadRow(f"{what} must be a list of {n} numbers, got {values!r}"[:200])
    return [_number(v, what) for v in values]


def xywh_box(values: Any, what: str = "bbox") -> list[float]:
    x, y, w, h = _numbers(values, 4, what)
    if w < 0 or h < 0:
        raise BadRow(f"{what} has a negative width or height")
    return [x, y, x + w, y + h]


def xyxy_box(values: Any, what: str = "bbox") -> list[float]:
    box = _numbers(values, 4, what)
    if box[2] < box[0] or box[3] < box[1]:
        raise BadRow(f"{what} corners out of order (need x1 <= x2, y1 <= y2)")
    return box


def _validate(task: Task, sample: dict[str, Any]) -> None:
    try:
        task.validate_solution(sample["solution"])
    except jsonschema.ValidationError as exc:
        at = "/".join(str(p) for p in exc.absolute_path)
        raise BadRow(f"solution breaks the '{task.name}' schema{' at ' + at if at else ''}: {exc.message}") from exc


def _image_size(image: Any) -> list[int]:
    try:
        if isinstance(image, Image.Image):
            return [image.width, image.height]
        with Image.open(image) as im:  # reads the header only
            return [im.width, im.height]
    except OSError as exc:
        raise BadRow(f"cannot open image {image} ({exc})") from exc


def _embedded_image(value: Any) -> Image.Image:
    """A parquet ``image`` cell ({bytes, path} as `datasets` writes it) as a lazily decoded PIL image."""
    data = value.get("bytes") if isinstance(value, dict) else value
    if not isinstance(data, bytes | bytearray):
        raise BadRow("image column holds no image bytes")
    try:
        return Image.open(io.BytesIO(data))
    except OSError as exc:
        raise BadRow(f"image bytes are not an image ({exc})") from exc


def _finish(task: Task, sample: dict[str, Any], image: Any) -> dict[str, Any]:
    sample["image"] = image
    if not isinstance(image, Image.Image):
        sample["image_path"] = str(image)
        if not Path(image).is_file():
            raise BadRow(f"image file {image} does not exist")
    sample.setdefault("image_size", _image_size(image))
    sample["task"] = task.name
    _validate(task, sample)
    return sample


def _rows_parquet(files: list[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
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


def _collect(
    task: Task, rows: Iterator[tuple[str, dict[str, Any]]], convert: Callable[[dict[str, Any]], list[dict[str, Any]]],
    limit: int | None,
) -> list[dict[str, Any]]:
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


def _split_files(root: Path, names: list[str], ext: str) -> list[Path]:
    """``<root>/[data/]<name>-*.<ext>`` (or ``<name>.<ext>``) for the first name that has any."""
    for name in names:
        for folder in (root, root / "data"):
            files = sorted(folder.glob(f"{name}-*.{ext}")) + sorted(folder.glob(f"{name}.{ext}"))
            if files:
                return files
    return []


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from exc


def _images_dir(root: Path) -> Path:
    return root / "images" if (root / "images").is_dir() else root


# -- grounding: RefCOCO / RefCOCO+ / RefCOCOg -------------------------------------------------------
REFCOCO_NAMES = {"refcoco": "RefCOCO", "refcoco+": "RefCOCO+", "refcocoplus": "RefCOCO+", "refcocog": "RefCOCOg"}


def refcoco_name(path: Path) -> str | None:
    """'RefCOCO', 'RefCOCO+' or 'RefCOCOg' from a folder or file name, else None."""
    for part in reversed(path.parts):
        key = part.lower().split("_")[0].removesuffix(".jsonl")
        if key in REFCOCO_NAMES:
            return REFCOCO_NAMES[key]
    return None


def _expressions(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
        raise BadRow("referring expression(s) must be a non-empty string or list of strings")
    return [s.strip() for s in items]


def load_refcoco_parquet(task: Task, root: Path, split: str, limit: int | None = None) -> list[dict[str, Any]]:
    """lmms-lab RefCOCO-family parquet: one sample per referring expression of each row."""
    files = _split_files(root, [split], "parquet")
    if not files:
        raise UserError(f"{root}: no '{split}' parquet files (expected {root}/[data/]{split}-*.parquet)")

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        image = _embedded_image(row["image"])
        box = xywh_box(row["bbox"])
        base = str(row.get("question_id") or row.get("file_name") or "")
        out = []
        for k, expr in enumerate(_expressions(row.get("answer", row.get("question")))):
            sample = {"query": {"expression": expr}, "solution": {"bbox": box}}
            if base:
                sample["id"] = f"{base}-{k}"
            out.append(_finish(task, sample, image))
        return out

    return _collect(task, _rows_parquet(files), convert, limit)


def _refs_file(root: Path) -> Path | None:
    for name in ("refs(unc).json", "refs(umd).json", "refs(google).json", "refs.json"):
        if (root / name).is_file():
            return root / name
    return None


def load_refer_json(task: Task, root: Path, split: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The refer toolkit's refs (as JSON) + COCO ``instances.json`` + images: one sample per sentence."""
    refs_path = _refs_file(root)
    instances_path = root / "instances.json"
    if refs_path is None or not instances_path.is_file():
        raise UserError(f"{root}: need refs(unc).json (or refs(umd).json / refs.json) and instances.json")
    refs, instances = _read_json(refs_path), _read_json(instances_path)
    if not isinstance(refs, list) or not isinstance(instances, dict):
        raise UserError(f"{refs_path}: expected a list of refs; {instances_path}: a COCO object")
    images = {img.get("id"): img for img in instances.get("images", []) if isinstance(img, dict)}
    anns = {ann.get("id"): ann for ann in instances.get("annotations", []) if isinstance(ann, dict)}
    folder = _images_dir(root)

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for i, ref in enumerate(refs, 1):
            if isinstance(ref, dict) and ref.get("split") != split:
                continue
            yield f"{refs_path}:ref {i}", ref

    def convert(ref: dict[str, Any]) -> list[dict[str, Any]]:
        if not isinstance(ref, dict):
            raise BadRow("a ref must be a JSON object")
        ann = anns.get(ref["ann_id"])
        if ann is None:
            raise BadRow(f"ann_id {ref['ann_id']} is not in {instances_path.name}")
        img = images.get(ref["image_id"])
        if img is None:
            raise BadRow(f"image_id {ref['image_id']} is not in {instances_path.name}")
        box = xywh_box(ann["bbox"])
        size = _numbers([img["width"], img["height"]], 2, "image width/height")
        sentences = [s.get("sent") if isinstance(s, dict) else s for s in ref["sentences"]]
        out = []
        for k, sent in enumerate(_expressions(sentences)):
            sample = {"id": f"ref{ref.get('ref_id', '?')}-{k}", "query": {"expression": sent},
                      "solution": {"bbox": box}, "image_size": size}
            out.append(_finish(task, sample, folder / str(img["file_name"])))
        return out

    return _collect(task, rows(), convert, limit)


def load_qwen_refcoco_jsonl(task: Task, file: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Qwen-VL's RefCOCO evaluation JSONL: ``image`` (relative path), ``sent``, ``bbox`` xyxy, ``width``/``height``."""
    folder = _images_dir(file.parent)

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        sample: dict[str, Any] = {"query": {"expression": _expressions(row["sent"])[0]},
                                  "solution": {"bbox": xyxy_box(row["bbox"])}}
        if "width" in row and "height" in row:
            sample["image_size"] = _numbers([row["width"], row["height"]], 2, "width/height")
        return [_finish(task, sample, folder / str(row["image"]))]

    rows = ((f"{file}:{lineno}", row) for lineno, row in read_jsonl(file))
    return _collect(task, rows, convert, limit)


# -- counting: PixMo-Count ----------------------------------------------------------------------------
def _pixmo_points(value: Any) -> list[list[float]]:
    if value is None:
        return []
    if isinstance(value, dict):  # `datasets` sequence-of-struct layout: {"x": [...], "y": [...]}
        xs, ys = value.get("x") or [], value.get("y") or []
        if len(xs) != len(ys):
            raise BadRow("points x and y have different lengths")
        value = [{"x": x, "y": y} for x, y in zip(xs, ys, strict=True)]
    if not isinstance(value, list):
        raise BadRow("points must be a list of {x, y}")
    return [[_number(p["x"], "point x"), _number(p["y"], "point y")] for p in value]


def _find_image(folder: Path, row: dict[str, Any]) -> Path:
    sha = row.get("image_sha256")
    if sha:
        exact = folder / str(sha)
        if exact.is_file():
            return exact
        for ext in IMAGE_EXTS:
            if (folder / f"{sha}{ext}").is_file():
                return folder / f"{sha}{ext}"
    url = row.get("image_url")
    if url:
        name = Path(str(url).split("?")[0]).name
        if name and (folder / name).is_file():
            return folder / name
    raise BadRow(f"no image file for sha256 {sha} / url {url} in {folder}")


def load_pixmo_count(task: Task, root: Path, split: str, limit: int | None = None) -> list[dict[str, Any]]:
    names = ["validation", "val"] if split == "val" else [split]
    files = _split_files(root, names, "parquet")
    if not files:
        raise UserError(f"{root}: no '{names[0]}' parquet files (expected {root}/[data/]{names[0]}-*.parquet)")
    folder = _images_dir(root)

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        points = _pixmo_points(row.get("points"))
        count = row.get("count")
        if count is not None and int(count) != len(points):
            raise BadRow(f"count {count} but {len(points)} points (the counting task needs every point)")
        label = row["label"]
        if not isinstance(label, str) or not label.strip():
            raise BadRow("label must be a non-empty string")
        image = _embedded_image(row["image"]) if row.get("image") is not None else _find_image(folder, row)
        sample = {"query": {"object": label.strip()}, "solution": {"points": points}}
        if row.get("image_sha256"):
            sample["id"] = f"{row['image_sha256'][:16]}-{label.strip()}"
        return [_finish(task, sample, image)]

    return _collect(task, _rows_parquet(files), convert, limit)


# -- OCR: page-OCR JSONL ------------------------------------------------------------------------------
def load_page_ocr(task: Task, path: str | Path, split: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """``<path>/<split>.jsonl`` (or the file ``path``): ``{"image": "rel/path.png", "text": "..."}`` per line."""
    file = Path(path)
    if file.is_dir():
        file = file / f"{split or 'train'}.jsonl"
    if not file.is_file():
        raise UserError(f"task '{task.name}': no data file {file} (expected <data>/<split>.jsonl)")

    def convert(row: dict[str, Any]) -> list[dict[str, Any]]:
        text = row["text"]
        if not isinstance(text, str):
            raise BadRow("text must be a string")
        sample = {"query": {}, "solution": {"text": text}}
        if "id" in row:
            sample["id"] = str(row["id"])
        return [_finish(task, sample, file.parent / str(row["image"]))]

    rows = ((f"{file}:{lineno}", row) for lineno, row in read_jsonl(file))
    return _collect(task, rows, convert, limit)


# -- detection: COCO 2017 -------------------------------------------------------------------------------
def coco_files(root: Path, split: str) -> tuple[Path, Path]:
    """(annotations file, image folder) of a COCO 2017 layout; ``val`` -> ``val2017``."""
    name = split if split.endswith("2017") else f"{split}2017"
    for ann in (root / "annotations" / f"instances_{name}.json", root / f"instances_{name}.json"):
        if ann.is_file():
            return ann, root / name
    raise UserError(f"{root}: no annotations/instances_{name}.json (COCO 2017 layout)")


def load_coco(task: Task, path: str | Path, split: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """One sample per image of ``instances_<split>2017.json``; crowd boxes (``iscrowd``) are left out,
    as COCO counts them as regions to ignore, not objects to find. Labels are category names."""
    root = Path(path)
    ann_path, folder = coco_files(root, split or "train")
    data = _read_json(ann_path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserError(f"{ann_path}: not a COCO instances file (no 'images' list)")
    categories = {c.get("id"): c.get("name") for c in data.get("categories", []) if isinstance(c, dict)}
    by_image: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
    for i, ann in enumerate(data.get("annotations", []), 1):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        by_image.setdefault(image_id, []).append((i, ann))

    def rows() -> Iterator[tuple[str, dict[str, Any]]]:
        for i, img in enumerate(data["images"], 1):
            yield f"{ann_path}:image {i}", img

    def convert(img: dict[str, Any]) -> list[dict[str, Any]]:
        if not isinstance(img, dict):
            raise BadRow("an image entry must be a JSON object")
        boxes, labels = [], []
        for i, ann in by_image.get(img["id"], []):
            if ann.get("iscrowd"):
                continue
            name = categories.get(ann.get("category_id"))
            if not name:
                raise BadRow(f"annotation {i}: category_id {ann.get('category_id')} is not in 'categories'")
            boxes.append(xywh_box(ann["bbox"], f"annotation {i} bbox"))
            labels.append(name)
        sample = {"id": str(img["id"]), "query": {}, "solution": {"boxes": boxes, "labels": labels},
                  "image_size": _numbers([img["width"], img["height"]], 2, "image width/height")}
        return [_finish(task, sample, folder / str(img["file_name"]))]

    return _collect(task, rows(), convert, limit)


# -- dispatch ------------------------------------------------------------------------------------------
_QWEN_REFCOCO = re.compile(r"^(refcoco[+g]?)_(\w+)\.jsonl$", re.IGNORECASE)


def _bench(name: str | None, split: str) -> str | None:
    return f"{name} {split}" if name else None


def load_samples(task: Task, path: str | Path, split: str = "val", limit: int | None = None) -> Loaded:
    """Samples of ``task`` from ``path`` in whichever known format is there; else the task's own ``load``."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"--data {root} does not exist")
    name = task.name
    if name == "grounding" and root.is_dir():
        bench = _bench(refcoco_name(root), split)
        if _refs_file(root) is not None:
            return Loaded(load_refer_json(task, root, split, limit), "refer-json", bench)
        if _split_files(root, [split], "parquet"):
            return Loaded(load_refcoco_parquet(task, root, split, limit), "lmms-lab-parquet", bench)
        qwen = sorted(f for f in root.glob(f"*_{split}.jsonl") if _QWEN_REFCOCO.match(f.name))
        if qwen:
            return Loaded(load_qwen_refcoco_jsonl(task, qwen[0], limit), "qwen-vl-jsonl",
                          _bench(refcoco_name(qwen[0]), split))
    match = _QWEN_REFCOCO.match(root.name)
    if name == "grounding" and root.is_file() and match:
        return Loaded(load_qwen_refcoco_jsonl(task, root, limit), "qwen-vl-jsonl",
                      _bench(refcoco_name(root), match.group(2)))
    pixmo_split = "validation" if split == "val" else split
    if name == "counting" and root.is_dir() and _split_files(root, [pixmo_split], "parquet"):
        return Loaded(load_pixmo_count(task, root, split, limit), "pixmo-count-parquet", f"PixMo-Count {split}")
    if name == "detection" and root.is_dir():
        return Loaded(load_coco(task, root, split, limit), "coco-2017", f"COCO {split.removesuffix('2017')}2017")
    if name == "ocr":
        bench = "PageOCR" if "page" in str(root).lower() else None
        return Loaded(load_page_ocr(task, root, split, limit), "page-ocr-jsonl", bench)
    try:
        samples = task.load(str(root), split)
    except NotImplementedError as exc:
        raise UserError(f"--data: {exc}") from exc
    except (ValueError, OSError) as exc:  # task loaders name the file:line at fault
        raise UserError(f"--data: {exc}".replace("\n", " ")) from exc
    for sample in samples:
        sample["task"] = name
    return Loaded(samples[:limit] if limit is not None else samples, "task-loader")
