"""`perception-r1 sft`: supervised fine-tuning on the tasks' rendered answers (synthetic data)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import click

from perception_r1.contract import task_names
from perception_r1.errors import UserError


def _resolve_tasks(spec: str) -> list:
    from perception_r1.registry import get_registry

    registry = get_registry()
    names = sorted(registry.tasks) if spec.strip() == "all" else task_names(spec)
    return [registry.task(n) for n in names]  # an unknown name: one line, naming the plugin filter if set


def _finite(value: float, flag: str) -> float:
    """NaN passes every range (``nan > 10`` is false): refused here, named."""
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number", param_hint=flag)
    return value


@click.command("sft")
@click.option("--task", "task_spec", required=True, help="Task(s) to fine-tune on, mixed: a,b,c (or 'all').")
@click.option("--model", type=click.Path(), help="Local model directory (default: the embedded tiny model).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Directory to save the fine-tuned model (default: runs/sft-<tasks>-<time>, printed).")
@click.option("--steps", type=click.IntRange(min=1, max=10_000_000), default=200, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1, max=4096), default=16, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True, max=10), default=1e-3, show_default=True,
              callback=lambda ctx, param, value: _finite(value, "--lr"))
@click.option("--seed", type=click.IntRange(min=0, max=2**32 - 1), default=0, show_default=True)
@click.option("--log-every", type=click.IntRange(min=1), default=10, show_default=True, help="Print the loss every N steps.")
@click.option("--eval-samples", type=click.IntRange(min=0, max=1_000_000), default=0, show_default=True,
              help="After training: greedy parse rate and task metrics on N held-out samples per task.")
@click.option("--save-dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True)
@click.option("--threads", type=click.IntRange(min=1, max=1024), help="CPU threads for torch.")
def command(task_spec, model, out, steps, batch_size, lr, seed, log_every, eval_samples, save_dtype, threads) -> None:
    """Supervised fine-tuning on the tasks' rendered answers (synthetic data), saved to --out."""
    from perception_r1.train.config import use_threads

    use_threads(threads)
    tasks = _resolve_tasks(task_spec)
    if out is None:
        out = f"runs/sft-{'+'.join(t.name for t in tasks)}-{time.strftime('%Y%m%d-%H%M%S')}"
    if model and Path(out).resolve() == Path(model).resolve():
        raise UserError(f"--out {out} is the --model directory: the input weights are never overwritten")
    from perception_r1.train import rundir

    # one writer, as `run`: a second `sft --out S` while one writes S is refused in one line (exit 2)
    with rundir.locked(Path(out)):
        if any(p.name != rundir.LOCK for p in Path(out).iterdir()):
            raise UserError(f"--out {out} is not empty: give a new directory")
        _train_and_save(tasks, model, Path(out), steps, batch_size, lr, seed, log_every, eval_samples,
                        save_dtype, threads, task_spec)


def _train_and_save(tasks, model, out: Path, steps, batch_size, lr, seed, log_every, eval_samples, save_dtype,
                    threads, task_spec) -> None:
    import torch

    from perception_r1.display import console, metrics_table, print_table
    from perception_r1.model.policy import Policy
    from perception_r1.train.config import use_threads
    from perception_r1.train.sft import format_report, sft

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
    saved = save_beside_lock(policy, out, getattr(torch, save_dtype))
    click.echo(f"saved {saved}  (train it with GRPO: perception-r1 run --task {task_spec} --model {saved})")
    if eval_samples:
        with console.status("evaluating"):
            report = format_report(policy, tasks, n=eval_samples)
        print_table(metrics_table(report, title=f"greedy, {eval_samples} held-out samples per task"))


def save_beside_lock(policy, out: Path, dtype) -> Path:
    """Save ``policy`` into ``out``, which holds only this process's lock: the model is written whole into a
    hidden directory inside ``out`` and its files moved up, ``config.json`` last (a directory without it is
    no model), so a failure (disk full) or a kill leaves no half model that loads."""
    import shutil

    from perception_r1.train import rundir

    staging = out / f".tmp-model-{os.getpid()}"
    try:
        policy.save(staging, dtype=dtype)
        for path in sorted(staging.iterdir(), key=lambda p: p.name == "config.json"):
            os.replace(path, out / path.name)
    except BaseException:
        for path in [*out.iterdir()]:
            if path.name != rundir.LOCK:  # everything but the lock is this process's (the directory was empty)
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
