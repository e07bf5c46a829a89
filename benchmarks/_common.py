"""Helpers shared by the benchmark scripts: timing, machine description, plain-text tables, smoke mode."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SMOKE_HELP = ("tiny sizes and one round, so every side of every comparison runs in seconds (CI runs it: "
              "tests/test_benchmarks_smoke.py); its numbers mean nothing")


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


def alternating(sides: dict[str, Callable[[], Any]], rounds: int) -> dict[str, tuple[float, Any]]:
    """{name: (fastest seconds, result)}, the sides run in turn each round so load from other users of the
    shared cores hits both alike; the fastest round counts, as load only ever adds time."""
    best: dict[str, tuple[float, Any]] = {}
    for _ in range(rounds):
        for name, fn in sides.items():
            start = time.perf_counter()
            out = fn()
            seconds = time.perf_counter() - start
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, out)
    return best


def pycocotools_stats(dataset: dict[str, Any], detections: list[dict[str, Any]]) -> Any:
    """The 12 COCO stats (an array, 0-1 scale) of ``detections`` against the ground-truth ``dataset`` dict, as a
    user writes it with plain pycocotools: in-memory ``COCO``, ``loadRes``, evaluate / accumulate / summarize."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # COCO and COCOeval print progress
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


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


# -- smoke mode ------------------------------------------------------------------------------------
def parse_args(parser: argparse.ArgumentParser, smoke: dict[str, Any],
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser``'s arguments plus ``--smoke``, which makes ``smoke`` the defaults (flags given still win)."""
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    if parser.parse_known_args(argv)[0].smoke:
        parser.set_defaults(**smoke)
        print("smoke run: tiny sizes, one round; the numbers below only show that every side runs")
    return parser.parse_args(argv)


def installed(module: str, skipped: str) -> bool:
    """Whether ``module`` can be imported; when not, one line says which side of the benchmark is skipped."""
    if importlib.util.find_spec(module) is not None:
        return True
    print(f"skipped {skipped}: {module} is not installed (benchmarks/README.md lists the extra packages)")
    return False


def smoke_model(out: Path) -> Path:
    """A tiny-Qwen2-VL of 2 layers of width 64 (random init), built in seconds: the model of smoke runs."""
    from perception_r1.model.tiny import TinyConfig, build_tiny

    return build_tiny(out, cfg=TinyConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                          num_attention_heads=2, num_key_value_heads=1, vision_embed_dim=32,
                                          vision_heads=2))
