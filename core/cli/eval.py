"""`perception-r1 eval`: a model on a task's held-out data, the paper's numbers beside when it is a paper set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from perception_r1.contract import MODEL_COORD_SPACES, Task
from perception_r1.display import metrics_table, print_table

#: what `eval --out` writes; a directory already holding any of them is refused
EVAL_FILES = ("predictions.jsonl", "metrics.json", "report.html")


def check_eval_out(out: str | None) -> None:
    """``--out`` must not hold what `eval` writes: nothing that exists is overwritten."""
    from perception_r1.data import io
    from perception_r1.errors import UserError

    if not out:
        return
    if clash := [f for f in EVAL_FILES if (Path(out) / f).exists()]:
        raise UserError(f"--out {out} already holds {', '.join(clash)}: give a new directory (nothing is overwritten)")
    io.make_out_dir(out)


def paper_columns(metrics: dict[str, float], paper: dict[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
    """Table columns: this model's metrics, and the paper's base / Perception-R1 numbers where it has them."""
    columns: dict[str, dict[str, float]] = {"this model": metrics}
    if paper:
        columns["paper base"] = {k: v[0] for k, v in paper.items()}
        columns["paper Perception-R1"] = {k: v[1] for k, v in paper.items()}
    return columns


def write_eval_dir(
    out_dir: str | Path, task: Task, model: str | None, source: str, benchmark: str | None,
    metrics: dict[str, float], records: list[dict[str, Any]], data_dir: str | None = None,
) -> None:
    """predictions.jsonl (re-scorable by `perception-r1 score`), metrics.json and report.html in ``out_dir``."""
    from perception_r1.data import io
    from perception_r1.evaluate import paper_results
    from perception_r1.evaluate.report import write_report

    out = Path(out_dir)
    paper = paper_results.lookup(task, benchmark)
    summary: dict[str, Any] = {
        "task": task.name, "model": model or "embedded tiny model", "data": source, "benchmark": benchmark,
        "samples": len(records), "metrics": metrics, "data_dir": data_dir,  # the report embeds images from there
        "paper": {k: {"base": b, "perception_r1": r} for k, (b, r) in paper.items()},
    }
    io.write_jsonl(out / "predictions.jsonl", records)
    io.atomic_write_text(out / "metrics.json", json.dumps(summary, indent=2))
    write_report(out)


def state_coords(task: Task, records: list[dict[str, Any]], space: str, origin: str) -> None:
    """On stderr: the space answers were read in, and a warning when most of them miss their image in it."""
    from perception_r1.evaluate.evaluation import coords_warning

    if task.coord_space == "none":
        return
    click.echo(f"answers read as {space} coordinates ({origin})", err=True)
    if warning := coords_warning(task, records, space):
        click.echo(f"perception-r1: {warning}", err=True)


@click.command("eval")
@click.option("--task", "task_name", required=True, help="Task to evaluate.")
@click.option("--model", type=click.Path(), help="Model directory (default: the embedded tiny model).")
@click.option("--coords", type=click.Choice(MODEL_COORD_SPACES),
              help="Coordinate space the model answers in (default: its family's; for fine-tuned checkpoints).")
@click.option("--data", type=click.Path(), help="Local data set (default: the task's synthetic held-out split).")
@click.option("--split", default="val", show_default=True, help="Split of --data (val, test, testA, ...).")
@click.option("--limit", type=click.IntRange(min=1), help="At most N samples (synthetic default: 64; data: all).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1),
              help="Answer budget (default: 160 for the tiny model, whose longest answers fit; 768 for a real model,"
                   " as the paper's grounding/counting; 2048 for its detection).")
@click.option("--benchmark", help="Name of the paper benchmark the data is (e.g. 'RefCOCO val'); guessed from --data.")
@click.option("--out", type=click.Path(file_okay=False), help="Write predictions.jsonl, metrics.json and report.html here.")
@click.option("--threads", type=click.IntRange(min=1), help="torch CPU threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@click.option("--shuffle-images", is_flag=True,
              help="Control: score each sample with another sample's image (same samples otherwise). A model that "
                   "looks at the image scores worse; one that answers from the prompt alone scores the same.")
def command(task_name: str, model: str | None, coords: str | None, data: str | None, split: str, limit: int | None, batch_size: int,
            max_new_tokens: int | None, benchmark: str | None, out: str | None, threads: int | None, as_json: bool,
            shuffle_images: bool) -> None:
    """Greedy answers of a model on held-out samples, scored by the task's evaluator.

    The predictions JSONL re-scores to the same metrics with `perception-r1 score`.
    """
    import torch

    from perception_r1.data.loaders import load_samples
    from perception_r1.data.synthetic import synthetic_samples
    from perception_r1.display import progress
    from perception_r1.errors import UserError
    from perception_r1.evaluate import paper_results
    from perception_r1.evaluate.evaluation import evaluate_policy
    from perception_r1.model.policy import Policy
    from perception_r1.registry import get_registry
    from perception_r1.train.config import model_defaults, use_threads

    check_eval_out(out)
    use_threads(threads)
    task = get_registry().task(task_name)
    if data:
        loaded = load_samples(task, data, split, limit)
        samples, benchmark = loaded.samples, benchmark or loaded.benchmark
        source = f"{data} ({split}, {loaded.format})"
    else:
        if benchmark:
            raise UserError("--benchmark names the paper data set --data holds; without --data the data is synthetic")
        samples = synthetic_samples(task, "val", limit or 64, seed=0)
        source = "synthetic val (seed 0)"
    if not samples:
        raise UserError(f"{source}: no samples")
    if shuffle_images:
        from perception_r1.data.control import shuffle_images as shuffled

        if len(samples) < 2:
            raise UserError("--shuffle-images needs at least 2 samples")
        samples, source = shuffled(samples), f"{source}, images shuffled"
    policy = Policy.load(model, coords=coords)
    size_defaults = model_defaults(policy.num_parameters)
    use_threads(threads, policy.num_parameters)
    with progress() as bar, torch.no_grad():
        tid = bar.add_task(f"eval {task_name}", total=len(samples), status="")
        if max_new_tokens is None:  # the same defaults as `run`, so eval and training agree
            max_new_tokens = size_defaults["max_new_tokens"]
        metrics, records = evaluate_policy(policy, task, samples, batch_size, max_new_tokens,
                                           on_batch=lambda n: bar.advance(tid, n))
    paper = paper_results.lookup(task, benchmark)
    state_coords(task, records, policy.coord_space, "--coords" if coords else "the model family's")
    if out:
        write_eval_dir(out, task, model, source, benchmark, metrics, records, data_dir=data)
    if as_json:
        click.echo(json.dumps(metrics))
        return
    title = f"{task_name} on {source}: {len(records)} samples" + (f" = {benchmark}" if benchmark else "")
    print_table(metrics_table(paper_columns(metrics, paper), title=title))
    if out:
        click.echo(f"wrote {out}/predictions.jsonl, metrics.json, report.html")
