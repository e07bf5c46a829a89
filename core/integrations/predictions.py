"""What a foreign trainer wrote, as records ``perception-r1 score`` reads (completion + the sample's keys).

* ``trl``: the ``completions/completions_*.parquet`` files ``GRPOTrainer(log_completions=True)`` writes (a file or
  its folder): ``completion`` (chat messages) and the ``ground_truth`` column our reward functions log beside it;
* ``verl``: the JSONL of ``trainer.validation_data_dir`` / ``rollout_data_dir`` (verl's ``_dump_generations``):
  ``output`` and ``gts`` (the exported ground truth);
* ``records``: our own JSONL; a line may give ``completion`` (or EasyR1's ``response``) with the exported
  ``ground_truth`` string instead of the sample's keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from perception_r1.data.io import read_jsonl
from perception_r1.errors import UserError
from perception_r1.integrations.common import completion_text, sample_from_ground_truth

FORMATS = ("records", "trl", "verl")
#: (completion key, ground-truth key) of each format's rows
KEYS = {"records": ("completion", "ground_truth"), "trl": ("completion", "ground_truth"), "verl": ("output", "gts")}


def to_record(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    """One row as a score record: its completion as text and the sample its ground truth describes."""
    completion_key, truth_key = KEYS[fmt]
    if fmt == "records" and completion_key not in row and "response" in row:
        completion_key = "response"
    if fmt == "records" and truth_key not in row:
        return row  # already a record with the sample's keys
    missing = [key for key in (completion_key, truth_key) if row.get(key) is None]
    if missing:
        raise UserError(f"no {' or '.join(missing)} (a {fmt} row needs {completion_key} and {truth_key})")
    return {**sample_from_ground_truth(row[truth_key]), "completion": completion_text(row[completion_key])}


def _trl_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    files = sorted(path.glob("completions_*.parquet")) if path.is_dir() else [path]
    if not files:
        raise UserError(f"{path}: no completions_*.parquet (run GRPOTrainer with log_completions=True)")
    rows = []
    for file in files:
        try:
            table = pq.read_table(file).to_pylist()
        except Exception as exc:  # pyarrow raises its own error types for a file that is not parquet
            raise UserError(f"{file}: not a parquet file ({type(exc).__name__})") from exc
        rows += [(f"{file}:row {i}", row) for i, row in enumerate(table, start=1)]
    return rows


def read_predictions(path: str | Path, fmt: str = "records") -> Iterator[tuple[int | str, dict[str, Any]]]:
    """(place, record) for every prediction in ``path``, read lazily (the first bad row is the one reported,
    naming its place)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown predictions format '{fmt}' (one of {', '.join(FORMATS)})")
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    return _records(path, fmt)


def _records(path: Path, fmt: str) -> Iterator[tuple[int | str, dict[str, Any]]]:
    rows = _trl_rows(path) if fmt == "trl" else read_jsonl(path)
    for place, row in rows:
        try:
            yield place, to_record(row, fmt)
        except UserError as exc:
            where = place if isinstance(place, str) else f"{path}:{place}"
            raise UserError(f"{where}: {exc}") from exc
