"""`perception-r1 score`: rewards and metrics for a JSONL of completions, no model needed."""

from __future__ import annotations

import json

import click

from perception_r1.data.io import write_jsonl
from perception_r1.display import metrics_table, print_table
from perception_r1.evaluate.scoring import load_records, score_records
from perception_r1.registry import get_registry


@click.command("score")
@click.option("--task", "task_name", required=True, help="Task whose reward and evaluator to use.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--coords", type=click.Choice(["pixels", "norm1000", "norm1", "resized"]),
              help="Space the completions' coordinates are in (default: each record's 'coords', else the task's).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the records back with 'reward' and 'rewards'.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
def command(task_name: str, file: str, coords: str | None, out: str | None, as_json: bool) -> None:
    """Score FILE (JSONL: completion, image_size [w,h], solution in original-image pixels).

    Prints the task's metrics; with --out, writes every record with its reward and reward components.
    """
    task = get_registry().task(task_name)
    records = load_records(file, task, coords)
    scored, metrics = score_records(task, records)
    if out:
        write_jsonl(out, scored)
    summary = {**metrics, "mean_reward": sum(r["reward"] for r in scored) / len(scored), "records": len(scored)}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        print_table(metrics_table({task_name: summary}, title=f"{file}"))
