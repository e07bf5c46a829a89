"""`perception-r1 eval`: a model on a task's held-out data, the paper's numbers beside when it is a paper set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from perception_r1.contract import MODEL_COORD_SPACES, Task
from perception_r1.display import metrics_table, print_table

if TYPE_CHECKING:
    from perception_r1.model.policy import Policy


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
    headroom: dict[str, Any] | None = None,
) -> None:
    """metrics.json and report.html in ``out_dir``, whose predictions.jsonl (re-scorable by `perception-r1
    score`) already holds ``records``: `eval` appends them batch by batch."""
    from perception_r1.data import io
    from perception_r1.evaluate import paper_results
    from perception_r1.evaluate.eval_dir import METRICS
    from perception_r1.evaluate.report import write_report

    out = Path(out_dir)
    paper = paper_results.lookup(task, benchmark)
    summary: dict[str, Any] = {
        "task": task.name, "model": model or "embedded tiny model", "data": source, "benchmark": benchmark,
        "samples": len(records), "metrics": metrics, "data_dir": data_dir,  # `report DIR --data <it>` embeds its images again
        "paper": {k: {"base": b, "perception_r1": r} for k, (b, r) in paper.items()},
    }
    if headroom:
        summary["headroom"] = headroom
    io.atomic_write_text(out / METRICS, json.dumps(summary, indent=2))
    write_report(out, [data_dir] if data_dir else [])  # the gallery may read the evaluated data's images


def state_coords(task: Task, records: list[dict[str, Any]], space: str, origin: str) -> None:
    """On stderr: the space answers were read in, and a warning when most of them miss their image in it."""
    from perception_r1.evaluate.evaluation import coords_warning

    if task.coord_space == "none":
        return
    click.echo(f"answers read as {space} coordinates ({origin})", err=True)
    if warning := coords_warning(task, records, space):
        click.echo(f"perception-r1: {warning}", err=True)


def eval_samples(task: Task, data: str | None, split: str, limit: int | None, benchmark: str | None,
                 shuffle_images: bool) -> tuple[list[dict[str, Any]], str, str | None]:
    """(samples, a description of their source, the paper benchmark they are) for `eval`'s options."""
    from perception_r1.data.loaders import load_samples
    from perception_r1.data.synthetic import synthetic_samples
    from perception_r1.errors import UserError

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
    return samples, source, benchmark


def load_policy(model: str | None, coords: str | None) -> Policy:
    """A model directory, the embedded default (None), or the policy a run trained (a run directory: its latest
    checkpoint; or RUN/checkpoints/step-N)."""
    from perception_r1.model.policy import Policy
    from perception_r1.train.trained import is_run, trained_policy

    if model and is_run(model):
        return trained_policy(Path(model), coords)
    return Policy.load(model, coords=coords)


def run_temperature(task: Task, num_params: int) -> float:
    """The temperature `run --task TASK` samples at with this model (the task's small-model setting, if any)."""
    from perception_r1.train.config import DEFAULTS, apply_task_defaults

    config = {**DEFAULTS, "task": task.name}
    apply_task_defaults(config, [task], set(), num_params)
    return float(config["temperature"])


def print_headroom(task: Task, greedy: dict[str, float], headroom: dict[str, Any]) -> None:
    """The RL headroom table: greedy reward beside the K sampled answers' mean and best, and the flat share."""
    shown = {"greedy_mean_reward": greedy.get("mean_reward", float("nan")),
             **{k: v for k, v in headroom.items() if k not in ("k", "temperature")}}
    print_table(metrics_table({task.name: shown},
                              title=f"RL headroom: {headroom['k']} samples at temperature {headroom['temperature']:g}"))
    click.echo("all_equal_share: prompts whose answers all score the same, which give GRPO no signal")


@click.command("eval")
@click.option("--task", "task_name", required=True, help="Task to evaluate.")
@click.option("--model", type=click.Path(),
              help="Model directory, or a run directory (its latest checkpoint) or RUN/checkpoints/step-N "
                   "(default: the embedded tiny model).")
@click.option("--coords", type=click.Choice(MODEL_COORD_SPACES),
              help="Coordinate space the model answers in (default: its family's; for fine-tuned checkpoints).")
@click.option("--data", type=click.Path(), help="Local data set (default: the task's synthetic held-out split).")
@click.option("--split", default="val", show_default=True, help="Split of --data (val, test, testA, ...).")
@click.option("--limit", type=click.IntRange(min=1, max=10_000_000),
              help="At most N samples (synthetic default: 64; data: all).")
@click.option("--batch-size", type=click.IntRange(min=1, max=4096), default=16, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1, max=32768),
              help="Answer budget (default: 160 for the tiny model, whose longest answers fit; 768 for a real model,"
                   " as the paper's grounding/counting; 2048 for its detection).")
@click.option("--benchmark", help="Name of the paper benchmark the data is (e.g. 'RefCOCO val'); guessed from --data.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Write predictions.jsonl (batch by batch), metrics.json and report.html here; the same command "
                   "again continues a killed evaluation.")
@click.option("--samples", "k", type=click.IntRange(min=2, max=64),
              help="RL headroom: also sample K answers per prompt at the run's temperature and report their mean "
                   "and best-of-K reward and the share of prompts whose K answers all score the same.")
@click.option("--temperature", type=click.FloatRange(min=0.01, max=10.0),
              help="Temperature of --samples (default: the one `run --task` uses with this model).")
@click.option("--threads", type=click.IntRange(min=1), help="torch CPU threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
@click.option("--shuffle-images", is_flag=True,
              help="Control: score each sample with another sample's image (same samples otherwise). A model that "
                   "looks at the image scores worse; one that answers from the prompt alone scores the same.")
def command(task_name: str, model: str | None, coords: str | None, data: str | None, split: str, limit: int | None,
            batch_size: int, max_new_tokens: int | None, benchmark: str | None, out: str | None, k: int | None,
            temperature: float | None, threads: int | None, as_json: bool, shuffle_images: bool) -> None:
    """Greedy answers of a model on held-out samples, scored by the task's evaluator.

    The predictions JSONL re-scores to the same metrics with `perception-r1 score`.
    """
    import contextlib

    from perception_r1.evaluate import eval_dir
    from perception_r1.registry import get_registry
    from perception_r1.train import rundir
    from perception_r1.train.config import use_threads

    out_dir = Path(out) if out else None
    if out_dir:
        eval_dir.check_out(out_dir)
    use_threads(threads)
    task = get_registry().task(task_name)
    with rundir.locked(out_dir) if out_dir else contextlib.nullcontext():
        samples, source, benchmark = eval_samples(task, data, split, limit, benchmark, shuffle_images)
        settings = {
            "task": task.name, "model": str(Path(model).resolve()) if model else None, "coords": coords,
            "data": str(Path(data).resolve()) if data else None, "split": split, "limit": limit,
            "batch_size": batch_size, "max_new_tokens": max_new_tokens, "shuffle_images": shuffle_images,
            "samples": len(samples), "sample_ids": eval_dir.samples_digest(samples),
        }
        done = eval_dir.open_out(out_dir, settings) if out_dir else []
        metrics, records, headroom = evaluate(task, samples, done, model, coords, batch_size, max_new_tokens,
                                              out_dir, k, temperature, threads)
        if out_dir:
            write_eval_dir(out_dir, task, model, source, benchmark, metrics, records, data_dir=data, headroom=headroom)
    show(task, metrics, records, source, benchmark, headroom, out, as_json)


def evaluate(task: Task, samples: list[dict[str, Any]], done: list[dict[str, Any]], model: str | None,
             coords: str | None, batch_size: int, max_new_tokens: int | None, out_dir: Path | None, k: int | None,
             temperature: float | None, threads: int | None):
    """Greedy answers for the samples past ``done`` (appended to ``out_dir`` batch by batch), then the metrics
    over all, and the headroom of K samples when asked: (metrics, records, headroom or None)."""
    import torch

    from perception_r1.display import progress
    from perception_r1.evaluate import eval_dir
    from perception_r1.evaluate.evaluation import answer_batches, records_metrics
    from perception_r1.evaluate.headroom import headroom_of, sampled_rewards
    from perception_r1.train.config import model_defaults, use_threads

    policy = load_policy(model, coords)
    use_threads(threads, policy.num_parameters)
    if max_new_tokens is None:  # the same defaults as `run`, so eval and training agree
        max_new_tokens = model_defaults(policy.num_parameters)["max_new_tokens"]
    records = list(done)
    if done:
        click.echo(f"continuing {out_dir}: {len(done)} of {len(samples)} samples already answered", err=True)
    headroom = None
    with progress() as bar, torch.no_grad():
        tid = bar.add_task(f"eval {task.name}", total=len(samples), completed=len(done), status="")
        for batch in answer_batches(policy, task, samples[len(done):], batch_size, max_new_tokens):
            if out_dir:
                eval_dir.append(out_dir, batch)
            records += batch
            bar.advance(tid, len(batch))
        if k:
            temperature = temperature or run_temperature(task, policy.num_parameters)
            tid = bar.add_task(f"sample {k} per prompt", total=len(samples), status="")
            groups = sampled_rewards(policy, task, samples, k, temperature, batch_size, max_new_tokens,
                                     on_batch=lambda n: bar.advance(tid, n))
            headroom = {**headroom_of(groups), "k": k, "temperature": temperature}
    state_coords(task, records, policy.coord_space, "--coords" if coords else "the model family's")
    return records_metrics(task, records), records, headroom


def show(task: Task, metrics: dict[str, float], records: list[dict[str, Any]], source: str, benchmark: str | None,
         headroom: dict[str, Any] | None, out: str | None, as_json: bool) -> None:
    """The metrics table (the paper's numbers beside for a paper benchmark), or one JSON object."""
    from perception_r1.evaluate import paper_results

    if as_json:
        click.echo(json.dumps({**metrics, **({"headroom": headroom} if headroom else {})}))
        return
    paper = paper_results.lookup(task, benchmark)
    title = f"{task.name} on {source}: {len(records)} samples" + (f" = {benchmark}" if benchmark else "")
    print_table(metrics_table(paper_columns(metrics, paper), title=title))
    if headroom:
        print_headroom(task, metrics, headroom)
    if out:
        click.echo(f"wrote {out}/predictions.jsonl, metrics.json, report.html")
