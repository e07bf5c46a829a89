"""`perception-r1 perplexity`: the paper's perceptual perplexity of a data set, to predict whether RL helps."""

from __future__ import annotations

import json
import math

import click

from perception_r1.evaluate.paper_results import perplexities
from perception_r1.evaluate.perplexity import format_big, perplexity


@click.command("perplexity")
@click.option("--task", "task_name", required=True, help="Task whose samples to measure.")
@click.option("--data", type=click.Path(), help="Local data set (default: the task's synthetic train split).")
@click.option("--split", default="train", show_default=True, help="Split of --data to read.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N samples (synthetic default: 256).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic samples.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def command(task_name: str, data: str | None, split: str, limit: int | None, seed: int, as_json: bool) -> None:
    """Mean number of prediction-to-ground-truth matchings per sample: 1 for single-answer tasks
    (grounding, OCR), n! for n objects (counting, detection). RL gains most over SFT where it is high."""
    from perception_r1.data.loaders import load_samples
    from perception_r1.data.synthetic import SPLITS, synthetic_samples
    from perception_r1.errors import UserError
    from perception_r1.registry import get_registry

    registry = get_registry()
    task = registry.task(task_name)
    if data:
        samples = load_samples(task, data, split, limit).samples
        source = f"{data} ({split})"
    else:
        if split not in SPLITS:
            raise UserError(f"--split {split}: synthetic data has splits {' and '.join(SPLITS)}")
        samples = synthetic_samples(task, split, limit or 256, seed=seed)
        source = f"synthetic {split} (seed {seed})"
    if not samples:
        raise UserError(f"{source}: no samples")
    result = {"task": task_name, "data": source, **perplexity(task.objects(s["solution"]) for s in samples)}
    if as_json:
        click.echo(json.dumps(result))
        return
    kind = (f"multi-object (mean {result['mean_objects']:.2f}, max {result['max_objects']} objects per sample)"
            if result["multi_object"] else "single answer per sample")
    click.echo(f"{task_name} on {source}: {result['samples']} samples, {kind}")
    click.echo(f"perceptual perplexity: {format_big(result['log10_mean'])} (log10 {result['log10_mean']:.3f})")
    paper = ", ".join(f"{k} {format_big(math.log10(v))}" for k, v in perplexities(registry.tasks.values()).items())
    if paper:
        click.echo(f"paper: {paper}. RL gained most over SFT where this is high.")
