"""Predictions the paper's official evaluation scripts (PR1's ``eval/evaluate_*.py``) wrote, as score records.

`perception-r1 score --from pr1 FILE --data ANNOTATIONS` scores them the paper's way with the task's reward and
evaluator. The official files hold the model's text but not the samples, so the annotation file (or COCO
folder) the predictions were made on is loaded by the task as `eval --data` loads it, and each prediction is
paired with its row. What each script writes (checked against the PR1 repository, 2026-12):

* grounding, ``rec_results.json``: ``{"details": [{"question", "model_output", ...}]}``, in annotation order
  (``--sample_num N`` keeps the first N rows);
* counting, ``counting_scores_*.json``: ``{"<eval set>": {"results": [{"question", "model_output", ...}]}}``,
  one entry per annotation file (``pixmo_count_val540``, ``pixmo_count_test540``), in its order;
* OCR, ``<set>_results_*.json``: the annotation rows themselves with the model's ``output`` added;
* detection, ``temp_results_*.json``: COCO results ``[{"image_id", "category_id", "bbox": [x, y, w, h],
  "score"}]``, any detector's too; paired with the images of the COCO instances file by ``image_id``.

Coordinates: the official grounding and counting scripts read ``<|box_start|>`` answers in 0-1000 (Qwen2-VL),
so that is the default space here (``--coords`` to change); detection results are original-image pixels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from perception_r1.contract import Task
from perception_r1.data import io
from perception_r1.display import console
from perception_r1.errors import UserError
from perception_r1.evaluate.evaluation import RECORD_KEYS

#: the space the official grounding / counting scripts read box answers in
PR1_COORDS = "norm1000"
#: what is read of an official file at most (the COCO val results of a detector are ~50 MB)
MAX_BYTES = 512_000_000


def _read(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UserError(f"{path}: larger than {MAX_BYTES:,} bytes: not an official predictions file")
        return json.loads(path.read_bytes(), parse_constant=io.reject_non_finite)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{path}: not valid JSON ({str(exc)[:120]})") from exc


def _texts(path: Path, data: Any, annotations: Path) -> list[tuple[str, str | None]]:
    """(model output, its question or None) in annotation order, from any of the three text layouts."""
    def rows_of(items: Any, key: str, where: str) -> list[tuple[str, str | None]]:
        if not isinstance(items, list) or not all(isinstance(r, dict) and isinstance(r.get(key), str) for r in items):
            raise UserError(f"{path}: {where} must be a list of objects with a text '{key}'")
        return [(r[key], r.get("question") if isinstance(r.get("question"), str) else None) for r in items]

    if isinstance(data, dict) and "details" in data:  # grounding
        return rows_of(data["details"], "model_output", "'details'")
    if isinstance(data, list):  # OCR: the annotation rows with 'output'
        return rows_of(data, "output", "the list")
    sets = {k: v for k, v in data.items() if isinstance(v, dict) and "results" in v} if isinstance(data, dict) else {}
    if not sets:
        raise UserError(f"{path}: not an official predictions file (no 'details', no '<set>': {{'results'}}, not a "
                        "list of rows with 'output' or of COCO results)")
    stem = annotations.stem  # pixmo_count_val540.jsonl, or a longer name that starts with the set's
    chosen = [k for k in sets if stem == k or stem.startswith(k + "_")] or (list(sets) if len(sets) == 1 else [])
    if not chosen:
        raise UserError(f"{path} holds the sets {', '.join(sets)}: name the annotation file of one of them "
                        f"with --data (its name, e.g. {next(iter(sets))}.jsonl, picks the set)")
    return rows_of(sets[chosen[0]]["results"], "model_output", f"'{chosen[0]}.results'")


def _is_coco_results(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and all(isinstance(r, dict) and "image_id" in r for r in data[:5])


def _coco_answers(path: Path, results: list[Any], data_path: Path, split: str) -> dict[str, str]:
    """image id -> an answer in the detection format (pixels), its boxes in the results' order."""
    from perception_r1.tasks.coco import coco_files

    instances = io.read_json_object(coco_files(data_path, split)[0])  # the folder the detection loader read
    names = {c.get("id"): c.get("name") for c in instances.get("categories", []) if isinstance(c, dict)}
    answers: dict[str, list[dict[str, Any]]] = {}
    for i, result in enumerate(results, 1):
        try:
            x, y, w, h = (float(v) for v in result["bbox"])
            name = names[result["category_id"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}: result {i}: needs 'bbox' [x, y, w, h] and a 'category_id' of the "
                            f"annotations' categories ({type(exc).__name__})") from exc
        answers.setdefault(str(result["image_id"]), []).append({"bbox_2d": [x, y, x + w, y + h], "label": name})
    return {image: json.dumps(objects) for image, objects in answers.items()}


def pr1_records(path: str | Path, task: Task, samples: Sequence[dict[str, Any]], data: str | Path, split: str,
                coords: str | None = None) -> Iterator[tuple[int | str, dict[str, Any]]]:
    """(place, record) for each official prediction of ``path``, paired with ``samples`` (the annotations)."""
    path, data_path = Path(path), Path(data)
    content = _read(path)

    def record(sample: dict[str, Any], completion: str, space: str) -> dict[str, Any]:
        return {**{k: sample[k] for k in RECORD_KEYS if k in sample}, "task": task.name, "completion": completion,
                "coords": space}

    if _is_coco_results(content):
        answers = _coco_answers(path, content, data_path, split)
        for sample in samples:  # an image without any result was answered with no objects
            yield f"image {sample['id']}", record(sample, answers.get(str(sample["id"]), "[]"), coords or "pixels")
        return
    texts = _texts(path, content, data_path)
    if len(texts) > len(samples):
        raise UserError(f"{path}: {len(texts)} predictions for the {len(samples)} rows of {data_path}: "
                        "not the annotation file they were made on")
    if len(texts) < len(samples):
        console.print(f"note: {path} holds {len(texts)} predictions: scoring the first {len(texts)} of the "
                      f"{len(samples)} rows of {data_path} (the official --sample_num)", markup=False)
    for i, ((text, question), sample) in enumerate(zip(texts, samples, strict=False), 1):
        if question is not None and question not in task.prompt(sample):
            raise UserError(f"{path}: prediction {i} asks about '{question[:80]}', but row {i} of {data_path} is "
                            "another question: not the annotation file the predictions were made on")
        yield f"prediction {i}", record(sample, text, coords or (PR1_COORDS if task.coord_space != "none" else "none"))
