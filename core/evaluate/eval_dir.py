"""An `eval --out` directory: predictions saved batch by batch, so a killed evaluation continues where it stopped.

``eval_settings.json`` (written first) holds what decides the answers: task, model, data, split, limit,
batch size, answer budget, coordinate space, control, and a digest of the samples' ids. ``predictions.jsonl``
grows by whole batches; ``metrics.json`` and ``report.html`` are written once every sample has its answer.
Running the same `eval --out DIR` again continues an unfinished directory: the complete batches it holds are
kept (a torn last line is dropped) and generation starts at the next one, so the result equals an
uninterrupted evaluation's. A finished directory, one of other settings, or one holding other files is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from perception_r1.data import io
from perception_r1.errors import UserError

PREDICTIONS, METRICS, REPORT, SETTINGS = "predictions.jsonl", "metrics.json", "report.html", "eval_settings.json"
#: what `eval --out` writes; a directory holding anything else (but the lock) is not an evaluation's
EVAL_FILES = (PREDICTIONS, METRICS, REPORT, SETTINGS)
LOCK = "run.lock"


def samples_digest(samples: Sequence[Mapping[str, Any]]) -> str:
    """A digest of the samples' ids in order: a changed data file or limit does not continue an old evaluation."""
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(str(sample.get("id")).encode("utf-8", "backslashreplace") + b"\0")
    return digest.hexdigest()[:16]


def check_out(out: Path) -> None:
    """Fail in the first second, before anything loads: a finished evaluation or foreign files in ``out``."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory")
    if (out / METRICS).exists():
        raise UserError(f"--out {out} already holds a finished evaluation ({METRICS}): give a new directory "
                        "(nothing is overwritten)")
    if out.is_dir() and (foreign := sorted(p.name for p in out.iterdir() if p.name not in (*EVAL_FILES, LOCK))):
        raise UserError(f"--out {out} holds files an evaluation does not write ({', '.join(foreign[:3])}): "
                        "give a new directory")


def _kept_records(path: Path, batch_size: int) -> list[dict[str, Any]]:
    """The records of the complete batches in ``path`` (a torn last line, the kill's, is dropped)."""
    lines = [raw for raw in path.read_bytes().split(b"\n") if raw.strip()]
    records = []
    for lineno, raw in enumerate(lines, start=1):
        try:
            records.append(json.loads(raw.decode("utf-8")))
        except (ValueError, UnicodeDecodeError) as exc:
            if lineno == len(lines):
                break
            raise UserError(f"{path}:{lineno}: not a prediction this evaluation wrote ({type(exc).__name__})") from exc
    return records[: len(records) // batch_size * batch_size]


def open_out(out: Path, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Start or continue the evaluation ``settings`` describe in ``out`` (already checked and locked); returns
    the records an earlier, killed run of the same evaluation saved (rewritten without their torn end)."""
    check_out(out)
    settings_path, predictions = out / SETTINGS, out / PREDICTIONS
    if not settings_path.exists():
        if predictions.exists():
            raise UserError(f"--out {out} holds {PREDICTIONS} without {SETTINGS}: give a new directory")
        io.atomic_write_text(settings_path, json.dumps(dict(settings), indent=2))
        return []
    saved = io.read_json_object(settings_path)
    if changed := [k for k in sorted(set(saved) | set(settings)) if saved.get(k) != settings.get(k)]:
        key = changed[0]
        raise UserError(f"--out {out} holds an unfinished evaluation with other settings ({key}: "
                        f"{saved.get(key)!r} there, {settings.get(key)!r} now): give the same settings to continue "
                        "it, or a new directory")
    records = _kept_records(predictions, int(settings["batch_size"])) if predictions.exists() else []
    io.write_jsonl(predictions, records)
    return records


def append(out: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """One batch's records, appended as they come, in one write (a kill tears at most the batch's end)."""
    with (out / PREDICTIONS).open("a", encoding="utf-8") as handle:
        handle.write("".join(io.dumps(record) + "\n" for record in records))
