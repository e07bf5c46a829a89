"""Offline scoring: rewards and metrics for completions already written to a JSONL file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema

from perception_r1.contract import COORD_SPACES, Task
from perception_r1.data.io import read_jsonl
from perception_r1.errors import UserError

REQUIRED = ("completion", "image_size", "solution")


def load_records(path: str | Path, task: Task, coords: str | None = None) -> list[dict[str, Any]]:
    """Read and validate every line before anything is scored; the first bad line is a UserError."""
    records = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        missing = [key for key in REQUIRED if key not in row]
        if missing:
            raise UserError(f"{where}: missing key(s) {', '.join(missing)} (a record needs {', '.join(REQUIRED)})")
        if not isinstance(row["completion"], str):
            raise UserError(f"{where}: 'completion' must be a string")
        size = row["image_size"]
        if not (
            isinstance(size, list)
            and len(size) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise UserError(f"{where}: 'image_size' must be [width, height] in pixels, got {size!r}")
        try:
            task.validate_solution(row["solution"])
        except jsonschema.ValidationError as exc:
            at = "/".join(str(p) for p in exc.absolute_path)
            raise UserError(f"{where}: solution breaks the '{task.name}' schema{' at ' + at if at else ''}: {exc.message}") from exc
        if coords is not None:
            row["coords"] = coords
        if row.get("coords", task.coord_space) not in COORD_SPACES:
            raise UserError(f"{where}: unknown coords '{row['coords']}' (one of {', '.join(COORD_SPACES)})")
        if row.get("coords") == "resized" and "resized_size" not in row:
            raise UserError(f"{where}: coords 'resized' needs 'resized_size' [w, h] of the image the model saw")
        row.setdefault("id", str(lineno))
        records.append(row)
    if not records:
        raise UserError(f"{path}: no records")
    return records


def score_records(task: Task, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Each record gets ``reward`` (total) and ``rewards`` (components); returns them and the task's metrics."""
    scored = []
    for record in records:
        result = task.reward(record["completion"], record)
        scored.append({**record, "reward": result.total, "rewards": result.components})
    return scored, task.evaluate(records)
