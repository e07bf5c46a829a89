"""`perception-r1 score`: rewards and metrics for a JSONL of completions, no model needed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from perception_r1.contract import MODEL_COORD_SPACES
from perception_r1.data.io import write_jsonl
from perception_r1.display import metrics_table, print_table
from perception_r1.errors import UserError
from perception_r1.evaluate.scoring import score_file
from perception_r1.integrations.predictions import FORMATS, read_predictions
from perception_r1.registry import get_registry


def check_out_file(out: str, source: str, force: bool) -> None:
    """--out may not be the input (even by another name), nor replace a file unless ``force``."""
    target, src = Path(out), Path(source)
    try:
        exists = target.exists()
    except OSError as exc:  # e.g. a name longer than the OS allows
        raise UserError(f"--out {out[:80]}...: unusable name ({exc.strerror})") from exc
    if exists and src.exists() and os.path.samefile(target, src):
        raise UserError(f"--out {out} is the input file {source}: write the scored records to a new file")
    if target.is_dir():
        raise UserError(f"--out {out} is a directory")
    if exists and not force:
        raise UserError(f"--out {out} exists: give a new file name, or --force to replace it")


@click.command("score")
@click.option("--task", "task_name", required=True, help="Task whose reward and evaluator to use.")
@click.argument("file", type=click.Path())
@click.option("--coords", type=click.Choice(MODEL_COORD_SPACES),
              help="Space the completions' coordinates are in (default: each record's 'coords', else the task's).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the records back with 'reward' and 'rewards'.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@click.option("--force", is_flag=True, help="Let --out replace an existing file (never FILE itself).")
@click.option("--from", "source", type=click.Choice((*FORMATS, "pr1")), default="records", show_default=True,
              help="What wrote FILE: our records, TRL's completions parquet (a file or its folder), verl's "
                   "generations dump (rows of data exported by `perception-r1 export` carry their ground truth); "
                   "pr1: the paper's official eval scripts (rec_results.json, counting_scores_*.json, "
                   "<set>_results_*.json, COCO results), with --data the annotations they answered.")
@click.option("--data", type=click.Path(), help="--from pr1: the annotation file (or COCO folder) FILE answers, "
                                                "read as `eval --data` reads it.")
@click.option("--split", default="val", show_default=True, help="--from pr1: split of --data (COCO: val).")
def command(task_name: str, file: str, coords: str | None, out: str | None, as_json: bool, force: bool,
            source: str, data: str | None, split: str) -> None:
    """Score FILE (JSONL: completion, image_size [w,h], solution in original-image pixels; or a line with
    completion and the ground_truth string `perception-r1 export` wrote; or another trainer's log, see --from).

    Prints the task's metrics; with --out, writes every record with its reward and reward components
    (atomically; never onto FILE; an existing file only with --force).
    """
    if out:
        check_out_file(out, file, force)
    task = get_registry().task(task_name)
    if (source == "pr1") != bool(data):
        raise UserError("--from pr1 needs --data, the annotations the predictions answer (and --data is for pr1 only)")
    if source == "pr1" and data:
        from perception_r1.data.loaders import load_samples
        from perception_r1.integrations.pr1 import pr1_records

        if not Path(file).exists():
            raise UserError(f"{file} does not exist")
        samples = load_samples(task, data, split).samples
        rows = pr1_records(file, task, samples, data, split, coords)
    else:
        rows = read_predictions(file, source)
    scored, metrics = score_file(file, task, coords, rows)
    if out:
        write_jsonl(out, scored)
    summary = {**metrics, "mean_reward": sum(r["reward"] for r in scored) / len(scored), "records": len(scored)}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        print_table(metrics_table({task_name: summary}, title=f"{file}"))
