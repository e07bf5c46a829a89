"""`perception-r1 merge-lora RUN_DIR OUT`: a LoRA run's adapter merged into its base, as a full model directory."""

from __future__ import annotations

from pathlib import Path

import click

from perception_r1.errors import UserError


@click.command("merge-lora")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
def command(run_dir: str, out: str) -> None:
    """Merge the latest adapter of a `run --lora-rank` run into its base model; OUT loads with --model OUT."""
    run, target = Path(run_dir), Path(out)
    if not (run / "config.yaml").is_file():
        raise UserError(f"{run}: no config.yaml there (not a run directory)")
    if target.exists() and any(target.iterdir()):
        raise UserError(f"{target} is not empty: merge into a new directory")
    click.echo(f"wrote {merge_run(run, target)}")


def merge_run(run_dir: Path, out: Path) -> Path:
    """The base model of a LoRA run with its latest adapter merged in, saved as a full model directory."""
    from perception_r1.model.lora import ADAPTER_FILE, apply_lora, load_adapter
    from perception_r1.model.policy import Policy
    from perception_r1.model.processor import save_model_dir
    from perception_r1.train import checkpoint
    from perception_r1.train.config import resolve

    config = resolve(run_dir / "config.yaml", {})
    if not config.get("lora_rank"):
        raise UserError(f"{run_dir}: not a LoRA run (lora_rank is not set in its config.yaml)")
    latest = checkpoint.latest(run_dir / "checkpoints")
    if latest is None or not (latest / ADAPTER_FILE).is_file():
        raise UserError(f"{run_dir}: no checkpoint with an adapter yet")
    policy = Policy.load(config["model"], coords=config.get("coords"))
    wrapped = apply_lora(policy, config["lora_rank"], config.get("lora_alpha"), bool(config.get("lora_vision")))
    try:
        load_adapter(wrapped, latest)
    except ValueError as exc:
        raise UserError(f"merge-lora: {exc}") from exc
    merged = wrapped.merge_and_unload()
    return save_model_dir(merged, policy.processor, out)
