"""Whole (gathered) weights and optimizer state of a model that an engine may have sharded, and back.

A checkpoint holds one full state whatever the engine (the same files as a one-process run, so
``save-model`` and ``--model`` read it as they are); this module gathers it from the shards before a save
and shards it again at resume. Gathers are collectives: every process calls these, the main one writes.
FSDP (1 and 2) goes through torch's ``torch.distributed.checkpoint.state_dict`` (accelerate 1.16's
``get_state_dict`` returns FSDP2's shards as they are); DeepSpeed through accelerate's ``get_state_dict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from perception_r1.train.engine import engine_of

PEFT_PREFIX = "base_model.model."  # how a PeftModel names the model it wraps
ADAPTER_NAME = "default"


def _options(cpu_offload: bool = False, strict: bool = True) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=cpu_offload, strict=strict)


def full_weights(accelerator: Any, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight whole, on CPU, keyed as the unwrapped model names them (complete on the main process)."""
    engine = engine_of(accelerator)
    if engine.fsdp:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return dict(get_model_state_dict(model, options=_options(cpu_offload=True)))  # type: ignore[arg-type]
    if engine.deepspeed:
        return accelerator.get_state_dict(model)  # ZeRO-3 gathers the 16-bit weights (zero3_save_16bit_model)
    return accelerator.unwrap_model(model).state_dict()


def full_optimizer_state(accelerator: Any, model: torch.nn.Module, optimizer: Any) -> dict[str, Any]:
    """The optimizer's state as one process would hold it; under FSDP keyed by parameter name, not number."""
    if engine_of(accelerator).fsdp:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, _torch_optimizer(optimizer), options=_options(cpu_offload=True))
    return optimizer.state_dict()


def peft_names(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's weights under the names its ``PeftModel`` gives them (for peft's ``save_pretrained``)."""
    return {PEFT_PREFIX + key: value for key, value in weights.items()}


def adapter_to_model(saved: dict[str, torch.Tensor], model_keys: list[str]) -> dict[str, torch.Tensor]:
    """A saved LoRA adapter (peft's names: prefixed, the adapter's name dropped) under the model's own names;
    a missing or extra key is a ValueError naming one."""
    wanted = {(PEFT_PREFIX + key).replace(f".{ADAPTER_NAME}", ""): key for key in model_keys if "lora_" in key}
    missing, extra = set(wanted) - set(saved), set(saved) - set(wanted)
    if missing or extra:
        raise ValueError(f"the adapter does not match the model (e.g. {sorted(missing or extra)[0]})")
    return {wanted[name]: value for name, value in saved.items()}


def weights_loader(accelerator: Any, model: torch.nn.Module, adapter: bool) -> Callable[[dict], None] | None:
    """How to put a checkpoint's whole weights (or adapter) into a sharded ``model``; None: the plain way."""
    if not engine_of(accelerator).fsdp:
        return None
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    def load(weights: dict[str, torch.Tensor]) -> None:
        if adapter:
            weights = adapter_to_model(weights, list(model.state_dict()))
        result = set_model_state_dict(model, dict(weights), options=_options(strict=not adapter))
        if result.unexpected_keys:
            raise ValueError(f"the checkpoint does not match the model (e.g. {result.unexpected_keys[0]})")

    return load


def optimizer_loader(accelerator: Any, model: torch.nn.Module, optimizer: Any) -> Callable[[dict], None] | None:
    if not engine_of(accelerator).fsdp:
        return None
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    return lambda state: set_optimizer_state_dict(model, _torch_optimizer(optimizer), state, options=_options())


def _torch_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer holds torch's
