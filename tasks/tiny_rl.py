"""The RL settings under which GRPO improved the embedded base (issue 13), shared by the built-in tasks.

A task's ``tiny_run_defaults`` apply to single-task runs of a small model only; real models keep the
paper's settings. Temperature 0.7, not the paper's 1.0: at 1.0 the sampled answers of the tiny base score
far below the greedy ones the metric reads, and RL made its greedy answers worse on every task.
"""

from __future__ import annotations

from typing import Any


def settings(steps: int, max_new_tokens: int, learning_rate: float = 2e-5, prompts_per_step: int = 8,
             scale_rewards: bool = False) -> dict[str, Any]:
    """Run-config keys for a task's ``tiny_run_defaults``: G=8, 256 held-out samples.

    ``prompts_per_step``: more prompts per update average out the sampling noise that otherwise flips the
    greedy answers of unrelated samples (OCR). ``scale_rewards``: dividing advantages by the group's reward
    spread, as the paper's GRPO does, lifts grounding's small IoU**2 differences above the KL term."""
    return {
        "steps": steps, "prompts_per_step": prompts_per_step, "max_new_tokens": max_new_tokens,
        "learning_rate": learning_rate, "temperature": 0.7, "scale_rewards": scale_rewards, "eval_samples": 256,
        "eval_batch_size": 32,
    }
