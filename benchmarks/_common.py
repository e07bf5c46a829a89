"""Helpers shared by the benchmark scripts: timing, machine description, plain-text tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


def machine() -> str:
    """One line naming the CPU, the cores this process may use and the torch version."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import torch

        torch_version = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        torch_version = "no torch"
    return f"{model}, nproc {len(os.sched_getaffinity(0))}, Python {platform.python_version()}, {torch_version}"


def best_of(fn: Callable[[], object], repeats: int = 3, min_seconds: float = 0.2) -> float:
    """Seconds per call of ``fn``: the fastest of ``repeats`` rounds, each looping for >= ``min_seconds``.

    The minimum, not the mean: other engineers share the 2 cores, and their load only ever adds time.
    """
    fn()  # warm-up: imports, caches, lazy initialisation
    rounds = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        rounds.append(elapsed / calls)
    return min(rounds)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (pastes straight into benchmarks/README.md)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def run_child(script: str, label: str, args: Sequence[str]) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter (so each side's peak RSS is its own) and read the JSON object
    it prints last; a failed child stops the benchmark with the end of its stderr."""
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def trl_grpo_config(args: Any, steps: int, checkpointing: bool, prefix: str):
    """TRL's GRPOConfig with the settings our trainer runs in the benchmarks (paper GRPO, fixed-length
    answers, CPU, float32), so both sides compute the same thing."""
    import tempfile

    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix=prefix), report_to="none", use_cpu=True, bf16=False,
        per_device_train_batch_size=args.prompts * args.group, num_generations=args.group,
        max_completion_length=args.tokens, generation_kwargs={"min_new_tokens": args.tokens},
        temperature=1.0, top_k=0, top_p=1.0, beta=0.04, epsilon=0.2, loss_type="grpo", learning_rate=1e-4,
        max_grad_norm=1.0, num_iterations=1, max_steps=steps, logging_steps=1, save_strategy="no",
        gradient_checkpointing=checkpointing, seed=0, dataloader_num_workers=0, disable_tqdm=True,
    )
