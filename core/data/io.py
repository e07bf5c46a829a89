"""File helpers: JSONL with line-numbered errors, and atomic writes so a crash never leaves half a file."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from perception_r1.errors import UserError


def make_out_dir(out: str | Path) -> None:
    """Create the ``--out`` directory now, so a parent that is a file or not writable fails in the first second,
    before any model runs."""
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create it ({exc.strerror})") from exc


#: a JSONL record is a completion, a ground truth and a few keys: a line longer than this is not one
MAX_LINE_BYTES = 4_000_000


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line, in order; a bad line is a UserError naming file:line."""
    path = Path(path)
    try:
        handle = path.open("rb")  # decoded per line, so a bad byte is reported with its line number
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        lineno = 0
        while raw := handle.readline(MAX_LINE_BYTES + 1):  # bounded: a 10 GB line or /dev/zero is never held whole
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                raise UserError(f"{path}:{lineno}: line longer than {MAX_LINE_BYTES:,} bytes (the cap of a JSONL "
                                "record: images are not stored in it, ground truths are capped)")
            if not raw.strip():
                continue
            yield lineno, _object(raw, f"{path}:{lineno}")


def reject_non_finite(name: str) -> float:
    """``json.loads(parse_constant=...)``: NaN, Infinity and -Infinity are not numbers a file or an answer gives."""
    raise ValueError(f"non-finite number {name}")


def _object(raw: bytes, where: str, allow_nan: bool = False) -> dict[str, Any]:
    """One JSON object from ``raw``; every way it can fail is a UserError naming ``where``: bad syntax or
    bytes, NaN / Infinity (unless ``allow_nan``), an integer past Python's digit limit, deep nesting."""
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=None if allow_nan else reject_non_finite)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not valid JSON ({exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: not UTF-8 text") from exc
    except ValueError as exc:  # NaN, Infinity, a 5000-digit integer
        raise UserError(f"{where}: {str(exc).split(';')[0][:120]}") from exc
    except RecursionError as exc:
        raise UserError(f"{where}: JSON nested too deeply") from exc
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A whole-file JSON object (``eval.json``, ``metrics.json``: a NaN metric may be in them); anything else is
    a UserError naming the file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    return _object(raw, f"{path}:1", allow_nan=True)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(obj: Any) -> str:
    """Compact JSON; NaN/inf become null so every line stays standard JSON."""
    return json.dumps(_finite(obj), ensure_ascii=False, default=_json_default)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temp file in the same directory, fsync, then rename over the target. Only a regular file
    (or a link) is ever replaced: a device, FIFO or socket at ``path`` is refused (`--out /dev/null --force`
    would replace the system's /dev/null)."""
    path = Path(path)
    if path.exists() and not (path.is_symlink() or path.is_file()):
        raise UserError(f"{path} is not a regular file: it is never replaced")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.", suffix=".tmp")
    except OSError as exc:  # the parent is a file, not writable, or the name is too long
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    atomic_write_text(path, "".join(dumps(row) + "\n" for row in rows))


def append_jsonl(path: str | Path, row: Any) -> None:
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(dumps(row) + "\n")


#: a run config is a few dozen keys: a file larger than this is not one (read before parsing)
MAX_CONFIG_BYTES = 1_000_000


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases (``*name``): a 322-byte file of chained aliases expands to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a run config",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` without aliases (bounded memory whatever the text)."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
