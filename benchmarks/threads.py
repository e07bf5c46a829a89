"""The main command on an idle and on a busy machine: torch thread settings side by side.

Runs `perception-r1 run --task ocr` (shortened with --steps/--eval-samples) in subprocesses, once per thread
setting, first alone and then beside a pure-Python process that keeps one core busy (as another user's job
would). Prints wall seconds and each setting's ratio to the default on the same machine state.

    python benchmarks/threads.py [--steps 15] [--eval-samples 16] [--set KEY=VALUE ...]
    python benchmarks/threads.py --smoke    # idle only, 1 step of 2 x 2 completions of 4 tokens, no evaluation
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

from _common import machine, parse_args, table

SETTINGS = {  # name -> (extra CLI args, extra environment)
    "default": ([], {}),
    "--threads 1": (["--threads", "1"], {}),
    "--threads 2": (["--threads", "2"], {}),
}
STATES = {"idle": "idle", "busy": "one core busy"}
SMOKE = {"steps": 1, "eval_samples": 0, "set": ["prompts_per_step=2", "group_size=2", "max_new_tokens=4"],
         "states": "idle"}  # busy, the runs on 2 shared cores take minutes


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
        settings = [arg for pair in args.set for arg in ("--set", pair)]
        cmd = [sys.executable, "-m", "perception_r1.cli", "run", "--task", "ocr", "--steps", str(args.steps),
               "--eval-samples", str(args.eval_samples), "--out", f"{tmp}/run", *settings, *extra]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, "PERCEPTION_R1_PLUGINS": "", **env})
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--eval-samples", type=int, default=16)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed on to `run`")
    parser.add_argument("--states", default=",".join(STATES), help="comma list of: idle, busy")
    args = parse_args(parser, SMOKE)
    print(machine())
    rows = []
    for state in args.states.split(","):
        with busy_core(state == "busy"):
            seconds = {name: run_once(args, extra, env) for name, (extra, env) in SETTINGS.items()}
        for name, s in seconds.items():
            rows.append([STATES[state], name, f"{s:.1f}", f"{seconds['default'] / s:.2f}x"])
    print(table(["machine", "setting", "seconds", "speed vs default"], rows))


if __name__ == "__main__":
    main()
