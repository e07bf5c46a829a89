"""Reading a task's local JSONL data: one sample per line, a bad row named by ``file:line``.

Grounding and counting read their JSONL layouts with these, so neither imports the other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
from PIL import Image

from perception_r1 import Task
from perception_r1.tasks.answers import numbers


def load_jsonl(
    task: Task, path: str, split: str | None, to_sample: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Samples of ``task`` from ``<path>/<split>.jsonl`` (or ``path`` itself when it is a file).

    Each row is turned into a sample by ``to_sample`` (which raises KeyError / ValueError on a bad
    row); ``image`` paths are relative to the file's folder; a missing ``image_size`` is read from
    the image header. Any bad row is a ValueError naming ``file:line``.
    """
    file = Path(path)
    if file.is_dir():
        file = file / f"{split or 'train'}.jsonl"
    if not file.is_file():
        raise FileNotFoundError(f"task '{task.name}': no data file {file} (expected <data>/<split>.jsonl)")
    samples = []
    with file.open(encoding="utf-8") as lines:
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{file}:{lineno}"
            try:
                row = json.loads(line)
                sample = to_sample(row)
                task.validate_solution(sample["solution"])
                image = file.parent / str(row["image"])
                if "image_size" not in sample:
                    with Image.open(image) as im:  # reads the header only
                        sample["image_size"] = list(im.size)
            except (KeyError, TypeError, ValueError, OSError, jsonschema.ValidationError) as exc:
                message = exc.message if isinstance(exc, jsonschema.ValidationError) else f"{type(exc).__name__}: {exc}"
                raise ValueError(f"{where}: bad '{task.name}' row ({message})") from exc
            sample.update(image=str(image), image_path=str(image))
            sample.setdefault("id", str(row.get("id", f"{file.stem}-{lineno}")))
            samples.append(sample)
    return samples


def row_sample(query: dict[str, Any], solution: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A sample of a JSONL row's query and solution, with the row's optional ``image_size`` checked."""
    sample = {"query": query, "solution": solution}
    if "image_size" in row:
        sample["image_size"] = list(numbers(row["image_size"], 2, "image_size"))
    return sample
