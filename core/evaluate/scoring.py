"""Offline scoring: rewards and metrics for completions already written to a JSONL file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jsonschema

from perception_r1.contract import COORD_SPACES, RewardResult, Task
from perception_r1.data.io import read_jsonl
from perception_r1.errors import UserError

REQUIRED = ("completion", "image_size", "solution")


class RewardError(UserError):
    """A reward (a task's own or a custom one) raised, or returned something that is not a finite number in range."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


def task_reward(task: Task, completion: str, sample: Any) -> RewardResult:
    """``task.reward`` where a task bug (it raised, or gave a non-finite or out-of-range total) is one line
    naming the task and the sample, never a traceback that ends a training run."""
    where = f"task '{task.name}' reward on sample {str(sample.get('id', '?'))[:100]!r}"
    try:
        result = task.reward(completion, sample)
        total = float(result.total)
    except Exception as exc:
        raise RewardError(f"{where} raised {_one_line(exc)}") from exc
    lo, hi = task.reward_range
    if not (math.isfinite(total) and lo - 1e-6 <= total <= hi + 1e-6):
        raise RewardError(f"{where} returned {total!r}, outside its reward_range [{lo:g}, {hi:g}]")
    return result


def task_metrics(task: Task, records: list[dict[str, Any]]) -> dict[str, float]:
    """``task.evaluate``; a task that raises is one line naming it (and the first record's file row or id)."""
    try:
        return task.evaluate(records)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"task '{task.name}' evaluate raised {_one_line(exc)} ({len(records)} records)") from exc


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
        result = task_reward(task, record["completion"], record)
        scored.append({**record, "reward": result.total, "rewards": result.components})
    return scored, task_metrics(task, records)
