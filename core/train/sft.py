"""Supervised fine-tuning: (prompt, image) -> the task's ideal answer, loss on the answer tokens only.

Used to teach the embedded tiny model the answer formats before RL, and available as
`perception-r1 sft` for any policy. Tasks are mixed within every batch; each step draws fresh
synthetic samples (a seeded stream per step), so the model never sees one sample twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from perception_r1.contract import ParseError, Task
from perception_r1.data.prepare import prepare_sample
from perception_r1.errors import UserError
from perception_r1.train.optim import fit, warmup_cosine

if TYPE_CHECKING:
    from perception_r1.model.policy import Policy


def sft_batch(policy: Policy, tasks: Sequence[Task], batch_size: int, step: int, seed: int) -> tuple[list, list[Task]]:
    """``batch_size`` prepared samples of mixed tasks for ``step``: a pure function of (seed, step)."""
    from perception_r1.data.batches import draw_for, round_robin
    from perception_r1.data.synthetic import synthetic_samples

    chosen = round_robin(tasks, batch_size, step)
    random.Random(seed * 1_000_003 + step).shuffle(chosen)
    fresh = draw_for(chosen, lambda task, n: synthetic_samples(task, "train", n, seed=seed * 100_003 + step))
    return [prepare_sample(s, policy, t) for s, t in zip(fresh, chosen, strict=True)], chosen


def answer_loss(policy: Policy, samples: Sequence[dict[str, Any]], tasks: Sequence[Task]) -> torch.Tensor:
    """Mean negative log-likelihood of the rendered answers (+ <|im_end|>), over answer tokens."""
    prompts = [t.prompt(s) for s, t in zip(samples, tasks, strict=True)]
    answers = [t.render(s) for s, t in zip(samples, tasks, strict=True)]
    images = [s["image"] for s in samples]
    rollout = policy.teacher_forced(prompts, images, answers)
    logprobs = policy.token_logprobs(rollout)  # (B, T)
    mask = rollout.completion_mask  # (B, T)
    return -(logprobs * mask).sum() / mask.sum()


def sft(
    policy: Policy,
    tasks: Sequence[Task],
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    warmup: int | None = None,
    log: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Fine-tune ``policy`` in place for ``steps`` AdamW steps (linear warmup, cosine decay); returns losses."""
    if not tasks:
        raise UserError("sft needs at least one task")
    torch.manual_seed(seed)
    model = policy.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    scheduler = warmup_cosine(optimizer, steps, max(1, steps // 20) if warmup is None else warmup)

    def loss_at(step: int) -> torch.Tensor:
        return answer_loss(policy, *sft_batch(policy, tasks, batch_size, step, seed))

    losses = fit(loss_at, optimizer, params, steps, scheduler=scheduler, clip=1.0, log=log)
    model.eval()
    return losses


def format_report(
    policy: Policy, tasks: Sequence[Task], n: int = 64, batch_size: int = 16, max_new_tokens: int = 160
) -> dict[str, dict[str, float]]:
    """Per task, on ``n`` held-out synthetic samples: fraction of greedy answers that parse + the task's metrics."""
    from perception_r1.data.synthetic import synthetic_samples
    from perception_r1.evaluate.evaluation import evaluate_policy

    report = {}
    for task in tasks:
        metrics, records = evaluate_policy(policy, task, synthetic_samples(task, "val", n), batch_size=batch_size, max_new_tokens=max_new_tokens)
        parsed = 0
        for r in records:
            try:
                task.parse(r["completion"])
                parsed += 1
            except ParseError:
                pass
        report[task.name] = {"parse_rate": parsed / len(records), **metrics}
    return report
