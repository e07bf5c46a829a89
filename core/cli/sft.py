"""`perception-r1 sft`: supervised fine-tuning on the tasks' rendered answers (synthetic data)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from perception_r1.contract import task_names
from perception_r1.data import io
from perception_r1.errors import UserError


def _resolve_tasks(spec: str) -> list:
    from perception_r1.registry import get_registry

    registry = get_registry()
    names = sorted(registry.tasks) if spec.strip() == "all" else task_names(spec)
    return [registry.task(n) for n in names]  # an unknown name: one line, naming the plugin filter if set


@click.command("sft")
@click.option("--task", "task_spec", required=True, help="Task(s) to fine-tune on, mixed: a,b,c (or 'all').")
@click.option("--model", type=click.Path(), help="Local model directory (default: the embedded tiny model).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Directory to save the fine-tuned model (default: runs/sft-<tasks>-<time>, printed).")
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
    import torch

    from perception_r1.display import console, metrics_table, print_table
    from perception_r1.model.policy import Policy
    from perception_r1.train.config import use_threads
    from perception_r1.train.sft import format_report, sft

    use_threads(threads)
    tasks = _resolve_tasks(task_spec)
    if out is None:
        out = f"runs/sft-{'+'.join(t.name for t in tasks)}-{time.strftime('%Y%m%d-%H%M%S')}"
    if model and Path(out).resolve() == Path(model).resolve():
        raise UserError(f"--out {out} is the --model directory: the input weights are never overwritten")
    io.make_out_dir(out)
    if any(Path(out).iterdir()):
        raise UserError(f"--out {out} is not empty: give a new directory")
    policy = Policy.load(model)
    use_threads(threads, policy.num_parameters)  # a small model: one thread, as `run` (benchmarks/threads.py)
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
    click.echo(f"saved {saved}  (train it with GRPO: perception-r1 run --task {task_spec} --model {saved})")
    if eval_samples:
        with console.status("evaluating"):
            report = format_report(policy, tasks, n=eval_samples)
        print_table(metrics_table(report, title=f"greedy, {eval_samples} held-out samples per task"))
