"""`perception-r1 save-model RUN OUT`: a run's trained policy as a model directory (`--model OUT` loads it).

RUN is a run directory (its latest checkpoint) or one checkpoint, ``RUN/checkpoints/step-N``. A full-weight
run's weights replace its base model's; a LoRA run's adapter is merged into its base. `merge-lora` is the old
name of the same command.
"""

from __future__ import annotations

from pathlib import Path

import click

from perception_r1.errors import UserError


def _run_and_step(source: Path) -> tuple[Path, int | None]:
    """(run directory, step) of a run directory (latest: None) or of one of its ``checkpoints/step-N``."""
    if (source / "config.yaml").is_file():
        return source, None
    step = source.name.removeprefix("step-")
    run = source.parent.parent
    if source.name.startswith("step-") and step.isdigit() and (run / "config.yaml").is_file():
        return run, int(step)
    raise UserError(f"{source}: neither a run directory (config.yaml) nor one of its checkpoints/step-N")


def save_run_model(source: Path, out: Path) -> Path:
    """The policy a run trained, at its latest checkpoint or the ``step-N`` given, saved as a model directory."""
    from perception_r1.model.lora import ADAPTER_FILE, apply_lora, load_adapter
    from perception_r1.model.policy import Policy
    from perception_r1.model.processor import save_model_dir
    from perception_r1.train import checkpoint, rundir
    from perception_r1.train.config import resolve

    run, step = _run_and_step(source)
    config = resolve(run / "config.yaml", {})
    found = rundir.checkpoint_dirs(run / "checkpoints")
    if not found or (step is not None and step not in found):
        raise UserError(f"{source}: no complete checkpoint {'yet' if step is None else f'at step {step}'}")
    chosen = found[max(found) if step is None else step]
    policy = Policy.load(config["model"], coords=config.get("coords"))
    try:
        if config.get("lora_rank"):
            if not (chosen / ADAPTER_FILE).is_file():
                raise UserError(f"{chosen}: a LoRA run's checkpoint without its adapter")
            wrapped = apply_lora(policy, config["lora_rank"], config.get("lora_alpha"), bool(config.get("lora_vision")))
            load_adapter(wrapped, chosen)
            model = wrapped.merge_and_unload()
        else:
            checkpoint.load(chosen, policy.model, None)
            model = policy.model
    except (ValueError, OSError, KeyError) as exc:
        raise UserError(f"{chosen}: {exc}") from exc
    return save_model_dir(model, policy.processor, out)


def _save(source: str, out: str) -> None:
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        raise UserError(f"{target} is not empty: save into a new directory")
    click.echo(f"wrote {save_run_model(Path(source), target)}  (load it with --model {target})")


@click.command("save-model")
@click.argument("source", metavar="RUN", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
def command(source: str, out: str) -> None:
    """Write the policy RUN trained (a run directory: its latest checkpoint; or RUN/checkpoints/step-N) to OUT,
    a model directory that `--model OUT` loads in eval, run and sft. Full-weight and LoRA runs alike."""
    _save(source, out)


@click.command("merge-lora", hidden=True)
@click.argument("source", metavar="RUN", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
def merge_lora(source: str, out: str) -> None:
    """The old name of `save-model` (it merged LoRA runs only)."""
    _save(source, out)
