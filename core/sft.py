"""Supervised fine-tuning: (prompt, image) -> the task's ideal answer, loss on the answer tokens only.

Used to teach the embedded tiny model the answer formats before RL, and available as
`perception-r1 sft` for any policy. Tasks are mixed within every batch; each step draws fresh
synthetic samples (a seeded stream per step), so the model never sees one sample twice.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import click
import torch

from perception_r1.contract import ParseError, Task
from perception_r1.errors import UserError


def sft_batch(policy, tasks: Sequence[Task], batch_size: int, step: int, seed: int) -> tuple[list, list[Task]]:
    """``batch_size`` prepared samples of mixed tasks for ``step``: a pure function of (seed, step)."""
    from perception_r1.data import synthetic_samples

    rng = random.Random(seed * 1_000_003 + step)
    chosen = [tasks[(step * batch_size + i) % len(tasks)] for i in range(batch_size)]
    rng.shuffle(chosen)
    samples = []
    for task in dict.fromkeys(chosen):
        count = sum(t is task for t in chosen)
        fresh = synthetic_samples(task, "train", count, seed=seed * 100_003 + step)
        samples += [(task, s) for s in fresh]
    by_task = {t.name: [s for tt, s in samples if tt is t] for t in tasks}
    ordered = [by_task[t.name].pop() for t in chosen]
    return [policy.prepare(s, t) for s, t in zip(ordered, chosen, strict=True)], chosen


def answer_loss(policy, samples: Sequence[dict[str, Any]], tasks: Sequence[Task]) -> torch.Tensor:
    """Mean negative log-likelihood of the rendered answers (+ <|im_end|>), over answer tokens."""
    prompts = [t.prompt(s) for s, t in zip(samples, tasks, strict=True)]
    answers = [t.render(s) for s, t in zip(samples, tasks, strict=True)]
    images = [s["image"] for s in samples]
    rollout = policy.teacher_forced(prompts, images, answers)
    logprobs = policy.token_logprobs(rollout)  # (B, T)
    mask = rollout.completion_mask  # (B, T)
    return -(logprobs * mask).sum() / mask.sum()


def sft(
    policy,
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
    warmup = max(1, steps // 20) if warmup is None else warmup

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    losses: list[float] = []
    for step in range(steps):
        samples, chosen = sft_batch(policy, tasks, batch_size, step, seed)
        loss = answer_loss(policy, samples, chosen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if log is not None:
            log(step + 1, losses[-1])
    model.eval()
    return losses


def format_report(
    policy, tasks: Sequence[Task], n: int = 64, batch_size: int = 16, max_new_tokens: int = 160
) -> dict[str, dict[str, float]]:
    """Per task, on ``n`` held-out synthetic samples: fraction of greedy answers that parse + the task's metrics."""
    from perception_r1.data import synthetic_samples
    from perception_r1.evaluation import evaluate_policy

    report = {}
    for task in tasks:
        samples = [policy.prepare(s, task) for s in synthetic_samples(task, "heldout", n)]
        metrics, records = evaluate_policy(policy, task, samples, batch_size=batch_size, max_new_tokens=max_new_tokens)
        parsed = 0
        for r in records:
            try:
                task.parse(r["completion"])
                parsed += 1
            except ParseError:
                pass
        report[task.name] = {"parse_rate": parsed / len(records), **metrics}
    return report


def _resolve_tasks(spec: str) -> list[Task]:
    from perception_r1.registry import get_registry

    registry = get_registry()
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if names == ["all"]:
        names = sorted(registry.tasks)
    unknown = [n for n in names if n not in registry.tasks]
    if unknown or not names:
        raise UserError(f"unknown task '{','.join(unknown)}' (installed: {', '.join(sorted(registry.tasks)) or 'none'})")
    return [registry.tasks[n] for n in names]


@click.command("sft")
@click.option("--task", "task_spec", required=True, help="Task(s) to fine-tune on, mixed: a,b,c (or 'all').")
@click.option("--model", type=click.Path(), help="Local model directory (default: the embedded tiny model).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory to save the fine-tuned model.")
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--log-every", type=click.IntRange(min=1), default=10, show_default=True, help="Print the loss every N steps.")
@click.option("--eval-samples", type=click.IntRange(min=0), default=0, show_default=True,
              help="After training: greedy parse rate and task metrics on N held-out samples per task.")
@click.option("--save-dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
def command(task_spec, model, out, steps, batch_size, lr, seed, log_every, eval_samples, save_dtype, threads) -> None:
    """Supervised fine-tuning on the tasks' rendered answers (synthetic data), saved to --out."""
    from perception_r1.display import console, metrics_table, print_table
    from perception_r1.policy import Policy

    if threads:
        torch.set_num_threads(threads)
    tasks = _resolve_tasks(task_spec)
    policy = Policy.load(model)
    click.echo(f"sft {policy.name} on {', '.join(t.name for t in tasks)}: {steps} steps x {batch_size}, lr {lr:g}")
    start = time.perf_counter()
    window: list[float] = []

    def log(step: int, loss: float) -> None:
        window.append(loss)
        if step % log_every == 0 or step == steps:
            mean = sum(window) / len(window)
            window.clear()
            click.echo(f"step {step:>5}/{steps}  loss {mean:.4f}  {time.perf_counter() - start:7.1f}s")

    sft(policy, tasks, steps, batch_size=batch_size, lr=lr, seed=seed, log=log)
    saved = policy.save(out, dtype=getattr(torch, save_dtype))
    click.echo(f"saved {saved}")
    if eval_samples:
        with console.status("evaluating"):
            report = format_report(policy, tasks, n=eval_samples)
        print_table(metrics_table(report, title=f"greedy, {eval_samples} held-out samples per task"))
