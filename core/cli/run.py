"""`perception-r1 run`: GRPO training of a policy on one or more tasks, evaluated before and after."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from perception_r1.contract import MODEL_COORD_SPACES
from perception_r1.errors import UserError


@click.command("run")
@click.option("--task", help="Task to train (several: a,b). Default: the installed task marked as default (`perception-r1 tasks`).")
@click.option("--model", type=click.Path(), help="Local model directory (default: the embedded tiny model).")
@click.option("--coords", type=click.Choice(MODEL_COORD_SPACES),
              help="Coordinate space the model answers in (default: its family's; for fine-tuned checkpoints).")
@click.option("--lora-rank", type=click.IntRange(min=1),
              help="Train LoRA adapters of this rank (peft) instead of all weights; vision tower frozen unless "
                   "--set lora_vision=true.")
@click.option("--data", type=click.Path(), help="Local data for the task's loader (default: synthetic data).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML or JSON run config.")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default: runs/<task>-<time>).")
@click.option("--steps", type=click.IntRange(min=1), help="GRPO steps.")
@click.option("--seed", type=click.IntRange(min=0), help="Random seed.")
@click.option("--reward", "reward_flags", multiple=True, metavar="NAME:WEIGHT",
              help="A reward and its weight; repeat to combine (default: the task's own reward).")
@click.option("--eval-samples", type=click.IntRange(min=0), help="Held-out samples evaluated before and after.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Learning rate (default: by the model's size, 1e-6 from 100M parameters as the paper, 1e-4 below).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Any run-config key (see `--config`), e.g. --set group_size=4; repeatable; wins over --config.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Continue the run in this directory from its latest checkpoint.")
@click.option("--dry-run", is_flag=True, help="Print the resolved run's estimated peak memory and stop (loads nothing).")
def command(task, model, coords, lora_rank, data, config_file, out, steps, seed, reward_flags, eval_samples, lr, settings, threads,
            resume_dir, dry_run) -> None:
    """Train with GRPO and rule-based rewards; evaluate on a held-out split before and after.

    With no options: the embedded tiny Qwen2-VL-architecture model on the default task's synthetic data, with the
    task's settings for it (a few minutes on a CPU).
    """
    from perception_r1.registry import get_registry
    from perception_r1.train import config as cfg
    from perception_r1.train import rundir
    from perception_r1.train.launch import relaunch_if_needed
    from perception_r1.train.plan import plan_run
    from perception_r1.train.rewards import parse_reward_flags

    flags = {
        "learning_rate": lr,
        "task": task, "model": model, "coords": coords, "lora_rank": lora_rank, "data": data, "steps": steps, "seed": seed,
        "eval_samples": eval_samples, "threads": threads,
        "rewards": parse_reward_flags(reward_flags) if reward_flags else None,
    }
    # --set KEY=VALUE for any key; a named flag, when given, wins over --set of the same key
    overrides = {**cfg.parse_set(settings), **{k: v for k, v in flags.items() if v is not None}}
    main = os.environ.get("RANK", "0") == "0"
    if resume_dir:
        run_dir = Path(resume_dir)
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"--resume {run_dir}: no config.yaml there (not a run directory)")
        if config_file or any(v is not None for k, v in overrides.items() if k != "steps"):
            raise UserError("--resume takes the run's own config; only --steps may be changed")
        config = cfg.resolve(run_dir / "config.yaml", {"steps": steps})
        held = max(rundir.checkpoint_dirs(run_dir / "checkpoints"), default=0)
        if config["steps"] < held:  # config.yaml would say fewer steps than the model beside it has taken
            raise UserError(f"--resume {run_dir}: --steps {config['steps']} is below the step its latest checkpoint "
                            f"holds ({held}); give --steps {held} or more")
    else:
        from_file = cfg.read_config_file(config_file) if config_file else None  # once: it may be a pipe
        config = cfg.resolve(config_file, overrides, from_file=from_file)
        given = cfg.explicit_keys(from_file, overrides)
        for key in ("model", "data"):  # absolute in config.yaml: `--config RUN/config.yaml` works from anywhere
            if config[key] and Path(config[key]).exists():  # (a cached hub data set's name stays a name)
                config[key] = str(Path(config[key]).absolute())
        run_dir = Path(out or config["out"] or f"runs/{config['task'].replace(',', '+')}-{time.strftime('%Y%m%d-%H%M%S')}")
        if main:  # other ranks start when the main process has claimed the directory
            rundir.check_new(run_dir)
    config["out"] = str(run_dir)
    # the whole configuration is settled here, before torch is imported or workers are started: every
    # mistake (task, prompt template, reward, a task's settings) is one line, and the Trainer edits nothing
    plan = plan_run(config, get_registry(), given=None if resume_dir else given, resume=bool(resume_dir))
    if dry_run:
        _print_dry_run(plan)
        return
    relaunch_if_needed((click.get_current_context().find_object(dict) or {}).get("argv", sys.argv[1:]))
    from perception_r1.train.trainer import Trainer

    with rundir.locked(run_dir, main_process=main):  # one writer per directory (run.lock)
        Trainer(plan, run_dir, resume=bool(resume_dir)).run()


def _print_dry_run(plan) -> None:
    import json

    from perception_r1.model.families import DEFAULT_MODEL
    from perception_r1.train.memory_plan import dry_run_lines, text_shape

    model_dir = Path(plan.config["model"] or DEFAULT_MODEL)
    try:
        shape = text_shape(json.loads((model_dir / "config.json").read_text()))
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"--dry-run: {model_dir / 'config.json'}: cannot read the model's sizes ({exc})") from exc
    cpu = os.environ.get("CUDA_VISIBLE_DEVICES") == "" or not _has_gpu()
    click.echo("\n".join(dry_run_lines(plan.config, shape, plan.num_params, cpu)))


def _has_gpu() -> bool:
    import shutil

    return shutil.which("nvidia-smi") is not None  # torch is not imported for a dry run
