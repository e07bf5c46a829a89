"""The main command on an idle and on a busy machine: torch thread settings side by side.

Runs `perception-r1 run --task ocr` (shortened with --steps/--eval-samples) in subprocesses, once per thread
setting, first alone and then beside a pure-Python process that keeps one core busy (as another user's job
would). Prints wall seconds and each setting's ratio to the default on the same machine state.

    python benchmarks/threads.py [--steps 15] [--eval-samples 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

from _common import machine, table

SETTINGS = {  # name -> (extra CLI args, extra environment)
    "default": ([], {}),
    "--threads 1": (["--threads", "1"], {}),
    "--threads 2": (["--threads", "2"], {}),
}


@contextmanager
def busy_core(active: bool):
    """A process spinning on one core for as long as the block runs (nothing when ``active`` is False)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if active else None
    try:
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def run_once(args: argparse.Namespace, extra: list[str], env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["perception-r1", "run", "--task", "ocr", "--steps", str(args.steps),
               "--eval-samples", str(args.eval_samples), "--out", f"{tmp}/run", *extra]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "PERCEPTION_R1_PLUGINS": "", **env})
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--eval-samples", type=int, default=16)
    args = parser.parse_args()
    print(machine())
    rows = []
    for state in ("idle", "one core busy"):
        with busy_core(state != "idle"):
            seconds = {name: run_once(args, extra, env) for name, (extra, env) in SETTINGS.items()}
        for name, s in seconds.items():
            rows.append([state, name, f"{s:.1f}", f"{seconds['default'] / s:.2f}x"])
    print(table(["machine", "setting", "seconds", "speed vs default"], rows))


if __name__ == "__main__":
    main()
