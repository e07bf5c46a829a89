"""The RL settings under which GRPO improved the embedded base (issue 13), shared by the built-in tasks.

A task's ``tiny_run_defaults`` apply to single-task runs of a small model only; real models keep the
paper's settings. Temperature 0.7, not the paper's 1.0: at 1.0 the sampled answers of the tiny base score
far below the greedy ones the metric reads, and RL made its greedy answers worse on every task.
"""

from __future__ import annotations

from typing import Any


def settings(steps: int, max_new_tokens: int, learning_rate: float = 2e-5) -> dict[str, Any]:
    """Run-config keys for a task's ``tiny_run_defaults``: 8 prompts x G=8, 256 held-out samples."""
    return {
        "steps": steps, "prompts_per_step": 8, "max_new_tokens": max_new_tokens, "learning_rate": learning_rate,
        "temperature": 0.7, "scale_rewards": False, "eval_samples": 256, "eval_batch_size": 32,
    }
