"""Fuzz every installed task's parser and reward (and every custom reward) with hostile completions.

Per task, ``--n`` generated completions (default 100,000) of seven kinds, in equal shares except the 10 MB
strings (one in 2,000): random unicode; grammar soup (the answer grammar's tokens in random order: brackets,
keys, box tokens, fences, numbers); near-misses of the task's rendered truths (cut, doubled, a character
dropped, swapped or made a digit); rendered truths with huge and non-finite numbers spliced in (400-digit
integers, 1e400, NaN, Infinity, -0, 1e308); thousands of boxes (a truth's items repeated 1,000-5,000 times);
catastrophic-backtracking patterns (long runs of ``(``, ``[``, ``1,``, box tokens, spaces between digits); and
10 MB strings. Each is scored against one of a few synthetic samples. Printed per task: calls, exceptions
(``parse`` raising anything but ParseError, or ``reward`` raising), max and p99 ms per reward call, rewards
outside ``reward_range`` and NaN.

    python benchmarks/fuzz.py                 # 100,000 per task: every task and plugin installed
    python benchmarks/fuzz.py --n 2000        # a small share (tests/test_fuzz.py runs one)
    python benchmarks/fuzz.py --tasks ocr,detection
    python benchmarks/fuzz.py --smoke         # 60 per task and reward (no 10 MB string): checks the script runs

Done when (issue 15): 0 exceptions, 0 NaN, 0 out of range, max < 500 ms per call for every task.

A second table runs one hostile file or path per class through the command line (issue 23: truth lists and
lines past their caps, ``/dev/zero``, a path that is not UTF-8 or has a part over 255 bytes, a file inside
``--dir``, NaN as a setting, ``$`` in a reward name): each should end in one error line, exit 2 and no
traceback, in about a second.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perception_r1 import ParseError
from perception_r1.testing import _near_misses

HUGE = ["9" * 400, "-" + "9" * 400, "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1e308", "-0", "1e-400",
        "9" * 5000, "0x1F", "1_000", "١٢٣"]
SOUP = ['[', ']', '{', '}', '(', ')', ',', ':', '"', '"bbox_2d"', '"label"', '"count"', '"points"', '"polygon"',
        '"text"', "<|box_start|>", "<|box_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "```json\n",
        "```", "\n", " ", "null", "true", "-", ".", "e", "1", "0", "12", "999", "3.5", "-7", "1e9"]
BACKTRACK = ["(", "[", "{", "1,", "(1,", "1 ", "<|box_start|>", "((1,2),", '{"a":', "```", "9", ". ", "-1.",
             "\\", '"', "1.1.", "(1,2)(3,4)", "[1,2,3,4],"]
TEN_MB = 10 * 1024 * 1024
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class Stats:
    name: str
    reward_range: tuple[float, float] = (-math.inf, math.inf)
    calls: int = 0
    exceptions: int = 0
    out_of_range: int = 0
    nan: int = 0
    times: list[float] = field(default_factory=list)
    first_problem: str = ""

    def problem(self, what: str, text: str) -> None:
        if not self.first_problem:
            self.first_problem = f"{what} on {text[:60]!r} ({len(text)} chars)"

    def timed(self, call: Callable[[], Any], what: str, text: str) -> tuple[bool, Any]:
        """``(True, call())`` with its time recorded, or ``(False, None)`` counting the exception it raised."""
        start = time.perf_counter()
        try:
            return True, call()
        except Exception as exc:
            self.exceptions += 1
            self.problem(f"{what} raised {type(exc).__name__}: {exc}", text)
            return False, None
        finally:
            self.times.append(time.perf_counter() - start)

    def row(self) -> list[str]:
        ordered = sorted(self.times)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0
        return [self.name, f"{self.calls:,}", str(self.exceptions), f"{max(ordered, default=0) * 1e3:.1f}",
                f"{p99 * 1e3:.2f}", str(self.out_of_range), str(self.nan)]


def _unicode(rng: random.Random) -> str:
    n = rng.choice([0, 1, 5, 40, 300, 3000])
    pools = [(0x20, 0x7E), (0x80, 0x2FFF), (0x4E00, 0x9FFF), (0xD800, 0xDFFF), (0x1F300, 0x1FAFF), (0, 0x10FFFF)]
    lo, hi = rng.choice(pools)
    return "".join(chr(rng.randint(lo, hi)) for _ in range(n))


def _soup(rng: random.Random) -> str:
    return "".join(rng.choice(SOUP) for _ in range(rng.choice([3, 10, 40, 200])))


def _splice_numbers(truth: str, rng: random.Random) -> str:
    numbers = list(_NUMBER.finditer(truth))
    if not numbers:
        return f"{truth} {rng.choice(HUGE)}"
    pick = numbers[rng.randrange(len(numbers))]
    return truth[: pick.start()] + rng.choice(HUGE) + truth[pick.end():]


def _many(truth: str, rng: random.Random) -> str:
    times = rng.choice([1000, 2000, 5000])
    body = truth.strip()
    if body.startswith("[") and body.endswith("]") and len(body) > 2:
        return "[" + ",".join([body[1:-1]] * times) + "]"
    return "\n".join([body] * times)


def _backtrack(rng: random.Random) -> str:
    unit = rng.choice(BACKTRACK)
    return unit * rng.choice([1000, 10_000, 50_000]) + rng.choice(["", "!", ")", "]", "x"])


def _ten_mb(rng: random.Random, truths: list[str]) -> str:
    unit = rng.choice([*truths, "9", "(1,2),", '{"a":[', " ", "é"]) or "x"
    return (unit * (TEN_MB // len(unit) + 1))[:TEN_MB]


def completions(truths: list[str], n: int, seed: int) -> Iterator[str]:
    """``n`` hostile completions built around ``truths`` (the task's rendered perfect answers)."""
    rng = random.Random(seed)
    kinds: list[Callable[[], str]] = [
        lambda: _unicode(rng),
        lambda: _soup(rng),
        lambda: rng.choice(_near_misses(rng.choice(truths), rng, n=4)),
        lambda: _splice_numbers(rng.choice(truths), rng),
        lambda: _many(rng.choice(truths), rng),
        lambda: _backtrack(rng),
    ]
    for i in range(n):
        yield _ten_mb(rng, truths) if i % 2000 == 1999 else kinds[i % len(kinds)]()


def fuzz_task(task: Any, n: int, seed: int = 0, n_samples: int = 8) -> Stats:
    rng = random.Random(seed)
    samples = [task.synthetic(rng) for _ in range(n_samples)]
    for i, sample in enumerate(samples):
        sample.setdefault("id", f"fuzz-{i}")
    truths = [task.render(s) for s in samples]
    lo, hi = task.reward_range
    stats = Stats(task.name, (lo, hi))
    for i, text in enumerate(completions(truths, n, seed)):
        sample = samples[i % len(samples)]
        stats.calls += 1
        try:
            task.parse(text)
        except ParseError:
            pass
        except Exception as exc:
            stats.exceptions += 1
            stats.problem(f"parse raised {type(exc).__name__}: {exc}", text)
        ok, result = stats.timed(lambda: task.reward(text, sample), "reward", text)  # noqa: B023 (called now)
        if not ok:
            continue
        total = result.total
        if isinstance(total, float) and math.isnan(total):
            stats.nan += 1
            stats.problem("NaN reward", text)
        elif not (isinstance(total, int | float) and lo <= total <= hi):
            stats.out_of_range += 1
            stats.problem(f"reward {total!r} outside [{lo}, {hi}]", text)
    return stats


def _one(values: Any) -> Any:
    """The single value a custom reward returned for one completion (a wrong count raises, and is counted)."""
    (value,) = values
    return value


def fuzz_reward(name: str, fn: Callable, tasks: list[Any], n: int, seed: int = 0) -> Stats:
    """A custom reward: finite (or None) on every completion, for samples of every task."""
    rng = random.Random(seed)
    samples = [task.synthetic(rng) | {"task": task.name} for task in tasks]
    truths = [task.render(s) for task, s in zip(tasks, samples, strict=True)]
    stats = Stats(f"reward:{name}")
    for i, text in enumerate(completions(truths, n, seed)):
        stats.calls += 1
        ok, value = stats.timed(lambda: _one(fn([text], [samples[i % len(samples)]])), "reward", text)  # noqa: B023
        if not ok:
            continue
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
            stats.nan += 1
            stats.problem(f"returned {value!r}", text)
    return stats


HEADER = ["task", "calls", "exceptions", "max ms", "p99 ms", "out of range", "NaN"]


# -- hostile files and paths (issue 23): each class through the command line, as a user meets it ----------
def file_cases(root: Path) -> list[tuple[str, list[str]]]:
    """(class, command line) per class of hostile file or path, its files written under ``root``."""
    from perception_r1.data.io import MAX_LINE_BYTES
    from perception_r1.data.limits import MAX_OBJECTS

    n = MAX_OBJECTS * 20  # the 100k truth boxes
    boxes = {"boxes": [[1, 2, 3, 4]] * n, "labels": ["person"] * n}
    (root / "boxes.jsonl").write_text(json.dumps({"completion": "[]", "image_size": [64, 64], "solution": boxes}) + "\n")
    (root / "long.jsonl").write_text('{"completion": "' + "x" * (MAX_LINE_BYTES + 1) + '"}\n')
    (root / "afile").write_text("x")
    run = root / "run"
    run.mkdir(exist_ok=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward": 1.0, "rewards/$x^{$": 0.5}) + "\n")
    return [
        ("truth objects past the cap", ["score", "--task", "detection", str(root / "boxes.jsonl")]),
        ("a line past the cap", ["score", "--task", "ocr", str(root / "long.jsonl")]),
        ("an endless file", ["score", "--task", "ocr", "/dev/zero"]),
        ("a path that is not UTF-8", ["report", str(root / "\udcff")]),
        ("a path part over 255 bytes", ["report", str(root / ("a" * 300))]),
        ("a file inside --dir", ["new-plugin", "--dir", str(root / "afile" / "sub"), "shapes"]),
        ("NaN as a setting", ["sft", "--task", "ocr", "--lr", "nan"]),
        ("$ in a reward name (report: exit 0)", ["report", str(run)]),
    ]


def fuzz_files(root: Path) -> list[list[str]]:
    """Rows of (class, exit code, error lines, tracebacks, seconds): every case should end in one line and
    exit 2 (the report of ``$`` names in exit 0), in about a second."""
    import contextlib
    import io

    from perception_r1.cli import main

    rows = []
    for name, argv in file_cases(root):
        err = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except BaseException as exc:  # noqa: BLE001 - a traceback is what this counts
                code, _ = 1, err.write(f"Traceback: {type(exc).__name__}\n")
        lines = err.getvalue().splitlines()
        rows.append([name, str(code), str(sum(line.startswith("perception-r1: error:") for line in lines)),
                     str(sum("Traceback" in line for line in lines)), f"{time.perf_counter() - start:.2f}"])
    return rows


FILE_HEADER = ["hostile file or path", "exit", "error lines", "tracebacks", "s"]


def run(n: int, task_names: list[str] | None = None, seed: int = 0, rewards: bool = True) -> list[Stats]:
    from perception_r1.registry import get_registry

    registry = get_registry()
    names = task_names or sorted(registry.tasks)
    results = [fuzz_task(registry.tasks[name], n, seed) for name in names]
    if rewards and task_names is None:
        tasks = [registry.tasks[name] for name in names]
        results += [fuzz_reward(name, fn, tasks, n, seed) for name, fn in sorted(registry.rewards.items())]
    return results


def main() -> None:
    from _common import machine, parse_args, table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="completions per task (default 100,000)")
    parser.add_argument("--tasks", help="comma-separated task names (default: every installed task and reward)")
    parser.add_argument("--seed", type=int, default=0)
    args = parse_args(parser, {"n": 60})
    print(machine())
    start = time.perf_counter()
    results = run(args.n, args.tasks.split(",") if args.tasks else None, args.seed)
    print(table(HEADER, [s.row() for s in results]))
    print(f"{time.perf_counter() - start:.0f} s in all")
    for s in results:
        if s.first_problem:
            print(f"{s.name}: first problem: {s.first_problem}")
    with tempfile.TemporaryDirectory() as root:
        print(table(FILE_HEADER, fuzz_files(Path(root))))


if __name__ == "__main__":
    main()
