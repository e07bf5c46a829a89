"""`perception-r1 export`: a task's data and a ready reward file for TRL, verl or EasyR1."""

from __future__ import annotations

from pathlib import Path

import click

from perception_r1.contract import MODEL_COORD_SPACES, Task
from perception_r1.data.io import atomic_write_text, make_out_dir
from perception_r1.errors import UserError
from perception_r1.integrations import easyr1, trl, verl
from perception_r1.integrations.common import answer_space, task_samples
from perception_r1.registry import get_registry
from perception_r1.train.rewards import parse_reward_flags

FORMATS = ("trl", "verl", "easyr1")
#: where each format's data goes inside --out ({split}: the split exported)
DATA_NAME = {"trl": "{split}", "verl": "{split}.parquet", "easyr1": "{split}.jsonl"}

_HEADER = '"""Reward of perception-r1 task {task!r} for {trainer} (written by `perception-r1 export`)."""\n\n'
REWARD_FILES = {
    "trl": _HEADER + """from perception_r1.integrations.trl import reward_funcs

# GRPOTrainer(reward_funcs=REWARD_FUNCS, ...): one function per reward component, each already weighted
REWARD_FUNCS = reward_funcs({task!r}, coords={coords!r}, rewards={rewards!r})
""",
    "verl": _HEADER + """from perception_r1.integrations import verl

REWARDS = {rewards!r}  # added to the task's own reward as `perception-r1 run --reward NAME:W` adds them


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    kwargs.setdefault("rewards", REWARDS)
    return verl.compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)
""",
    "easyr1": _HEADER + """from perception_r1.integrations import easyr1

REWARD_NAME = "perception_r1"
REWARD_TYPE = "batch"  # EasyR1 calls compute_score with the whole batch of reward inputs
REWARDS = {rewards!r}  # added to the task's own reward as `perception-r1 run --reward NAME:W` adds them


def compute_score(reward_inputs, **kwargs):
    kwargs.setdefault("rewards", REWARDS)
    return easyr1.compute_score(reward_inputs, **kwargs)
""",
}


def write_data(fmt: str, task: Task, samples: list[dict], out: Path, split: str, coords: str | None,
               model_family: str | None) -> tuple[Path, str]:
    """The samples in ``fmt``'s layout under ``out``; returns the data path and the space they answer in."""
    target = out / DATA_NAME[fmt].format(split=split)
    if target.exists():
        raise UserError(f"--out {out}: {target.name} exists (export into a new directory, or remove it)")
    space = answer_space(task, coords, model_family).coord_space
    if fmt == "trl":
        trl.save(trl.dataset(task, samples, coords, model_family), target)
    elif fmt == "verl":
        verl.write_parquet(verl.rows(task, samples, coords, model_family, split=split), target)
    else:
        easyr1.write(easyr1.rows(task, out, samples, coords, model_family, split=split), target)
    return target, space


def config_lines(fmt: str, data: Path, reward: Path, out: Path, space: str) -> list[str]:
    """What the user adds to the trainer's own configuration."""
    if fmt == "trl":
        return [f"train_dataset = datasets.load_from_disk({str(data)!r})",
                f"reward_funcs = runpy.run_path({str(reward)!r})['REWARD_FUNCS']",
                "GRPOTrainer(model=MODEL, args=GRPOConfig(...), train_dataset=train_dataset, reward_funcs=reward_funcs)"]
    if fmt == "verl":
        return [f"data.train_files={data} data.image_key=images",
                f"custom_reward_function.path={reward} custom_reward_function.name=compute_score"]
    pixels = (f" data.min_pixels={easyr1.MIN_PIXELS} data.max_pixels={easyr1.MAX_PIXELS}"
              if space == "resized" else "")
    return [f"data.train_files={data} data.image_dir={out} data.format_prompt=null{pixels}",
            f"worker.reward.reward_function={reward}:compute_score"]


@click.command("export")
@click.option("--task", "task_name", required=True, help="Installed task (built-in or plugin) to export.")
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS), help="The trainer's data layout.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory to write into.")
@click.option("--data", type=click.Path(), help="Real data read by the task's loader (default: synthetic samples).")
@click.option("--split", help="Split to export (synthetic: train or val; default train).")
@click.option("--limit", type=click.IntRange(min=1), help="At most N samples (synthetic default: 256).")
@click.option("--coords", type=click.Choice(MODEL_COORD_SPACES),
              help="Space the model answers boxes in (default: the model family's, else the task's own).")
@click.option("--model-family", help="Model type (qwen2_vl, qwen2_5_vl, qwen3_vl, ...) or model directory: "
                                     "its coordinate space, and for Qwen2.5-VL its processor's resize rule.")
@click.option("--reward", "reward_flags", multiple=True, metavar="NAME:WEIGHT",
              help="Add a reward to the task's own, as `run --reward` does (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic samples.")
def command(task_name: str, fmt: str, out: str, data: str | None, split: str | None, limit: int | None,
            coords: str | None, model_family: str | None, reward_flags: tuple[str, ...], seed: int) -> None:
    """Write TASK's data in a trainer's layout (images included) and a reward file that trainer loads, then
    print the lines to add to its configuration."""
    task = get_registry().task(task_name)
    parse_reward_flags(reward_flags)  # a bad flag fails before anything is written
    answer_space(task, coords, model_family)
    split = split or "train"
    samples = task_samples(task, data, split, limit, seed)
    root = Path(out)
    make_out_dir(root)
    target, space = write_data(fmt, task, samples, root, split, coords, model_family)
    reward = root / "reward.py"
    atomic_write_text(reward, REWARD_FILES[fmt].format(task=task.name, trainer=fmt, coords=space,
                                                       rewards=list(reward_flags)))
    click.echo(f"wrote {len(samples)} samples of {task.name} ({split}, coords {space}) to {target}, reward {reward}")
    click.echo(f"add to your {fmt} configuration:")
    for line in config_lines(fmt, target.resolve(), reward.resolve(), root.resolve(), space):
        click.echo(f"  {line}")
