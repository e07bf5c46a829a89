"""LoRA through ``peft``: adapters injected in place into the policy's own model.

``policy.model`` stays the transformers model (the fast paths reach into it unchanged) with LoRA layers in
its projections; the ``PeftModel`` around it is kept beside it for what only peft knows: switching the
adapter off (the GRPO reference is the same weights with the adapter off, no second copy), saving the
adapter alone, and merging it into a full model directory. Only ``peft`` is needed (``pip install
'perception-r1[lora]'``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from perception_r1.errors import UserError

if TYPE_CHECKING:
    from perception_r1.model.policy import Policy

ADAPTER_FILE = "adapter_model.safetensors"


def _peft():
    try:
        import peft
    except ImportError as exc:
        raise UserError("LoRA needs peft: pip install 'perception-r1[lora]' (or pip install peft)") from exc
    return peft


def target_modules(model: torch.nn.Module, names: tuple[str, ...], prefixes: tuple[str, ...], vision: bool) -> list[str]:
    """Full names of the linear layers LoRA adapts: the family's projections in the language model, and with
    ``vision`` every linear layer of the vision tower and projector too (frozen otherwise)."""
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.split(".")[-1] == "lm_head":
            continue
        in_vision = any(part in prefixes for part in name.split("."))
        if (vision and in_vision) or (not in_vision and name.split(".")[-1] in names):
            found.append(name)
    return found


def apply_lora(policy: Policy, rank: int, alpha: float | None = None, vision: bool = False) -> Any:
    """Inject LoRA adapters of ``rank`` into ``policy.model`` in place; freezes everything else.

    Sets ``policy.peft`` (the ``PeftModel``) and returns it. ``alpha`` defaults to ``2 * rank``.
    """
    peft = _peft()
    family = policy.family
    targets = target_modules(policy.model, family.lora_targets, family.vision_prefixes, vision)
    if not targets:
        raise UserError(f"LoRA: no linear layer named {', '.join(family.lora_targets)} in the model")
    config = peft.LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=0.0, target_modules=targets,
                             bias="none")
    wrapped = peft.get_peft_model(policy.model, config)
    policy.model = wrapped.get_base_model()  # the same object, adapters inside
    policy.peft = wrapped
    return wrapped


def adapter_off(policy: Policy) -> contextlib.AbstractContextManager[None]:
    """Context in which ``policy.model`` computes with its adapters switched off: the reference policy."""
    wrapped = policy.peft
    return wrapped.disable_adapter() if wrapped is not None else contextlib.nullcontext()


def save_adapter(wrapped: Any, directory: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """The adapter alone, as peft writes it (``adapter_config.json`` + ``adapter_model.safetensors``);
    ``state_dict``: the wrapped model's whole weights when its own are shards (peft picks the adapter's)."""
    wrapped.save_pretrained(directory, safe_serialization=True, state_dict=state_dict)


def load_adapter(wrapped: Any, directory: Path) -> None:
    """Load a saved adapter into ``wrapped`` in place; a mismatch is a ValueError naming a key."""
    from safetensors.torch import load_file

    peft = _peft()
    try:
        weights = load_file(directory / ADAPTER_FILE)
    except Exception as exc:  # safetensors' own errors for foreign or corrupt files
        raise ValueError(f"{directory / ADAPTER_FILE} is not a valid safetensors file ({type(exc).__name__})") from exc
    result = peft.set_peft_model_state_dict(wrapped, weights)
    expected = {k for k in wrapped.state_dict() if "lora_" in k}
    loaded = {k for k in expected if k not in set(result.missing_keys)}
    if result.unexpected_keys or loaded != expected:
        bad = list(result.unexpected_keys or expected - loaded)[:3]
        raise ValueError(f"adapter {directory} does not match the model (e.g. {', '.join(bad)})")
