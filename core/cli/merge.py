"""`perception-r1 save-model RUN OUT`: a run's trained policy as a model directory (`--model OUT` loads it).

RUN is a run directory (its latest checkpoint) or one checkpoint, ``RUN/checkpoints/step-N``
(:mod:`perception_r1.train.trained` loads it; `eval --model RUN` evaluates it without writing one).
`merge-lora` is the old name of the same command.
"""

from __future__ import annotations

from pathlib import Path

import click

from perception_r1.errors import UserError


def save_run_model(source: Path, out: Path) -> Path:
    """The policy a run trained, at its latest checkpoint or the ``step-N`` given, saved as a model directory."""
    from perception_r1.model.processor import save_model_dir
    from perception_r1.train.trained import trained_policy

    policy = trained_policy(source)
    return save_model_dir(policy.model, policy.processor, out)


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
