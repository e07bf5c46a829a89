"""Offline scoring: rewards and metrics for completions already written to a JSONL file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from perception_r1.contract import COORD_SPACES, RewardError, Task, describe_exception, task_rewards
from perception_r1.data import limits
from perception_r1.data.io import read_jsonl
from perception_r1.errors import UserError

REQUIRED = ("completion", "image_size", "solution")


def task_metrics(task: Task, records: list[dict[str, Any]]) -> dict[str, float]:
    """``task.evaluate``; a task that raises is one line naming it (and the first record's file row or id)."""
    try:
        return task.evaluate(records)
    except UserError:
        raise
    except (Exception, SystemExit) as exc:
        raise UserError(f"task '{task.name}' evaluate raised {describe_exception(exc)} ({len(records)} records)") from exc


def _check_record(row: dict[str, Any], task: Task, coords: str | None) -> None:
    """UserError (without the place: the caller adds ``file:line``) when the record cannot be scored."""
    missing = [key for key in REQUIRED if key not in row]
    if missing:
        raise UserError(f"missing key(s) {', '.join(missing)} (a record needs {', '.join(REQUIRED)})")
    if not isinstance(row["completion"], str):
        raise UserError("'completion' must be a string")
    if problem := limits.size_problem(row["image_size"]):
        raise UserError(problem)
    if problem := limits.solution_problem(task, row["solution"]):
        raise UserError(problem)
    if coords is not None:
        row["coords"] = coords
    space = row.get("coords", task.coord_space)
    if space not in COORD_SPACES:
        raise UserError(f"unknown coords {str(space)[:40]!r} (one of {', '.join(COORD_SPACES)})")
    if space == "none" and task.coord_space != "none":  # a task without coordinates ignores any space given
        raise UserError(f"coords '{space}' cannot be used by task '{task.name}' (it answers in '{task.coord_space}')")
    if space == "resized" and (problem := limits.size_problem(row.get("resized_size"), "resized_size")):
        raise UserError(f"coords 'resized' needs {problem}")


def _place(path: str | Path, line: int | str) -> str:
    """``file:line``; a place already named (``file.parquet:row 3``) stays as it is."""
    return line if isinstance(line, str) else f"{path}:{line}"


def read_records(path: str | Path, task: Task, coords: str | None = None,
                 rows: Iterable[tuple[int | str, dict[str, Any]]] | None = None) -> list[tuple[int | str, dict[str, Any]]]:
    """(line, record) for every line of ``path`` (or every given ``rows``: another trainer's predictions), all
    validated before anything is scored; the first bad one is a UserError ``file:line: reason``."""
    records = []
    for lineno, row in read_jsonl(path) if rows is None else rows:
        try:
            _check_record(row, task, coords)
        except UserError as exc:
            raise UserError(f"{_place(path, lineno)}: {exc}") from exc
        row.setdefault("id", str(lineno))
        records.append((lineno, row))
    if not records:
        raise UserError(f"{path}: no records")
    return records


def score_file(path: str | Path, task: Task, coords: str | None = None,
               rows: Iterable[tuple[int | str, dict[str, Any]]] | None = None,
               ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """:func:`score_records` of a file's records (or of ``rows`` read from it); a reward or evaluator failure
    names ``file:line`` / the file."""
    lines = read_records(path, task, coords, rows)
    scored = []
    for lineno, record in lines:
        try:
            scored += score_records(task, [record], metrics=False)[0]
        except RewardError as exc:
            raise RewardError(f"{_place(path, lineno)}: {exc}") from exc
    try:
        return scored, task_metrics(task, [record for _, record in lines])
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from exc


def score_records(task: Task, records: list[dict[str, Any]],
                  metrics: bool = True) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Each record gets ``reward`` (total) and ``rewards`` (components); returns them and the task's metrics."""
    results = task_rewards(task, [r["completion"] for r in records], records)
    scored = [{**r, "reward": res.total, "rewards": res.components} for r, res in zip(records, results, strict=True)]
    return scored, task_metrics(task, records) if metrics else {}
