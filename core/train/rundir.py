"""A run directory has one writer, holds only its own run's files, and resumes from whatever a kill left.

- A new run goes only into a directory that does not exist or is empty: a directory holding anything else
  (another run, a foreign ``eval.json`` or ``metrics.jsonl``) is refused, never reused or appended to.
- ``run.lock`` is held with an exclusive ``flock`` by the process writing the directory (its PID and host are
  written in it for messages). A second ``run`` (or ``--resume``) into a locked directory is refused with one
  line; the kernel frees the lock of a process that died, so its file is taken over, with a note.
- ``--resume`` repairs what a kill can leave: a torn last line of ``metrics.jsonl`` / ``completions.jsonl``
  is dropped (a bad line before the last is an error naming ``file:line``), and ``checkpoints/.tmp-step-*``
  directories of interrupted checkpoint writes are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from perception_r1.data import io
from perception_r1.display import console
from perception_r1.errors import UserError

LOCK = "run.lock"
LOGS = ("metrics.jsonl", "completions.jsonl")


def check_new(run_dir: Path) -> None:
    """UserError unless ``run_dir`` can take a new run: it does not exist, or it is an empty directory."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file, not a directory")
    if holder := _held_by_another(run_dir / LOCK):
        raise UserError(f"--out {run_dir} is being written by process {holder[0]} on {holder[1]}: give another --out")
    if (run_dir / "config.yaml").exists():
        raise UserError(f"--out {run_dir} already holds a run (--resume {run_dir} continues it; --out NEW starts another)")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        found = sorted(p.name for p in run_dir.iterdir())[:3]
        raise UserError(f"--out {run_dir} is not empty (holds {', '.join(found)}): a run starts in a new or empty directory")


def _holder(lock: Path) -> tuple[int, str] | None:
    """(pid, host) written in ``lock``; None when it is unreadable."""
    try:
        data = json.loads(lock.read_text(encoding="utf-8"))
        return int(data["pid"]), str(data["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _lock_fd(lock: Path, create: bool = True) -> int | None:
    """An open descriptor of ``lock`` holding its exclusive ``flock``, or None while another process holds it.

    The kernel drops a flock when its holder dies, so a lock left by a killed run is free, with no guessing
    from a PID; and the lock is taken in one step, so two racers cannot both hold it (the old create-then-write
    let a racer read the empty file as stale and unlink it)."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except OSError as exc:
            if not create:  # no lock file there (or no directory): nobody holds it
                return None
            raise UserError(f"cannot create {lock}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed the file as we locked it: lock the path's new file
        if not create:
            return None


def _held_by_another(lock: Path) -> tuple[int, str] | None:
    """The (pid, host) of a live process holding ``lock``; None when the lock is free."""
    fd = _lock_fd(lock, create=False)
    if fd is not None:
        os.close(fd)
        return None
    return (_holder(lock) or (0, "?")) if lock.exists() else None  # (0, "?"): its holder is writing its name


#: lock file -> the descriptor that holds it (a flock lives as long as its descriptor)
_HELD: dict[Path, int] = {}


def acquire(run_dir: Path) -> Path:
    """Take ``run_dir/run.lock`` for this process (a lock whose holder died is free); UserError when held."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {run_dir}: cannot create it ({exc.strerror})") from exc
    lock = run_dir / LOCK
    fd = _lock_fd(lock)
    if fd is None:
        pid, host = _holder(lock) or (0, "?")
        raise UserError(f"{run_dir} is being written by process {pid} on {host} ({lock}); wait for it to end "
                        "or give another directory")
    if (old := _holder(lock)) and old[0] != os.getpid():
        console.print(f"note: {lock} was left by process {old[0]}, which is gone; taking it over", markup=False)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
    _HELD[lock] = fd
    return lock


def release(lock: Path) -> None:
    """Give ``lock`` up (removed first, then unlocked: a racer that opened it meanwhile retries on the path)."""
    fd = _HELD.pop(lock, None)
    if fd is not None:
        lock.unlink(missing_ok=True)
        os.close(fd)


@contextlib.contextmanager
def locked(run_dir: Path, main_process: bool = True) -> Iterator[None]:
    """Hold the run directory's lock (main process only) for the duration of the block. A directory the
    block created and left empty (a run that failed before writing anything) is removed again."""
    existed = run_dir.exists()
    lock = acquire(run_dir) if main_process else None
    try:
        yield
    finally:
        if lock is not None:
            release(lock)
            if not existed and not any(run_dir.iterdir()):
                run_dir.rmdir()


def repair_logs(run_dir: Path, step: int) -> None:
    """Keep the log lines of steps up to ``step`` (later ones run again); drop a torn last line. Every log is
    checked before any is rewritten: a refused resume leaves them all as they were."""
    kept = {path: _kept_lines(path, step) for path in (run_dir / name for name in LOGS) if path.exists()}
    for path, keep in kept.items():
        io.atomic_write_text(path, "".join(line + "\n" for line in keep))


def _kept_lines(path: Path, step: int) -> list[str]:
    """The lines of the log ``path`` of steps up to ``step``; UserError at a bad line before the last."""
    lines = path.read_bytes().split(b"\n")
    keep = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
            row_step = row["step"]
        except (ValueError, KeyError, TypeError) as exc:
            if lineno >= len(lines) - 1:  # the last line, cut by a kill: those steps run again
                continue
            raise UserError(f"{path}:{lineno}: not a log line of this run ({type(exc).__name__})") from exc
        if isinstance(row_step, int) and row_step <= step:
            keep.append(raw.decode("utf-8"))
    return keep


def remove_partial_checkpoints(checkpoints: Path) -> list[str]:
    """Remove ``.tmp-step-*`` directories (checkpoint writes a kill interrupted); returns their names."""
    removed = []
    if checkpoints.is_dir():
        for tmp in checkpoints.glob(".tmp-step-*"):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp.name)
    return removed


#: a checkpoint's own file (its weights and optimizer state sit beside it); written last, so it marks a whole one
CHECKPOINT_STATE = "state.json"


def checkpoint_dirs(directory: Path) -> dict[int, Path]:
    """step -> ``step-N`` directory of every complete checkpoint in ``directory`` (other names are not ours)."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in directory.iterdir():
        step = path.name.removeprefix("step-")
        if path.name.startswith("step-") and step.isdigit() and len(step) < 12 and (path / CHECKPOINT_STATE).is_file():
            found[int(step)] = path
    return found
