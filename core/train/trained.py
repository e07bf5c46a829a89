"""The policy a run trained, loaded from its run directory or one of its ``checkpoints/step-N``.

`save-model` writes it as a model directory; `eval --model RUN` evaluates it in place. A full-weight run's
checkpoint replaces its base model's weights; a LoRA run's adapter is merged into its base.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from perception_r1.errors import UserError

if TYPE_CHECKING:
    from perception_r1.model.policy import Policy


def run_and_step(source: Path) -> tuple[Path, int | None]:
    """(run directory, step) of a run directory (latest: None) or of one of its ``checkpoints/step-N``."""
    if (source / "config.yaml").is_file():
        return source, None
    step = source.name.removeprefix("step-")
    run = source.parent.parent
    if source.name.startswith("step-") and step.isdigit() and (run / "config.yaml").is_file():
        return run, int(step)
    raise UserError(f"{source}: neither a run directory (config.yaml) nor one of its checkpoints/step-N")


def is_run(path: str | Path) -> bool:
    """Whether ``path`` names a run directory or one of its checkpoints (rather than a model directory)."""
    try:
        run_and_step(Path(path))
    except UserError:
        return False
    return True


def trained_policy(source: Path, coords: str | None = None) -> Policy:
    """The policy at the run's latest checkpoint or the ``step-N`` given, named after that checkpoint.
    ``coords``: the space its answers are read in (default: the run's own setting, else the family's)."""
    from perception_r1.model.lora import ADAPTER_FILE, apply_lora, load_adapter
    from perception_r1.model.policy import Policy
    from perception_r1.train import checkpoint, rundir
    from perception_r1.train.config import resolve

    run, step = run_and_step(source)
    config = resolve(run / "config.yaml", {})
    found = rundir.checkpoint_dirs(run / "checkpoints")
    if not found or (step is not None and step not in found):
        raise UserError(f"{source}: no complete checkpoint {'yet' if step is None else f'at step {step}'}")
    chosen = found[max(found) if step is None else step]
    policy = Policy.load(config["model"], coords=coords or config.get("coords"))
    try:
        if config.get("lora_rank"):
            if not (chosen / ADAPTER_FILE).is_file():
                raise UserError(f"{chosen}: a LoRA run's checkpoint without its adapter")
            wrapped = apply_lora(policy, config["lora_rank"], config.get("lora_alpha"), bool(config.get("lora_vision")))
            load_adapter(wrapped, chosen)
            policy.model = wrapped.merge_and_unload()
            policy.peft = None
        else:
            checkpoint.load(chosen, policy.model, None)
    except (ValueError, OSError, KeyError) as exc:
        raise UserError(f"{chosen}: {exc}") from exc
    policy.name = f"{run.name} ({chosen.name})"
    return policy
