"""Which engine a run trains with (DDP, FSDP, DeepSpeed ZeRO, one process), and what differs under each.

The engine is read from accelerate's state, never guessed from the command line, so what a run reports
is what ran. accelerate (1.16) applies FSDP only on accelerator devices: on CPU its state stays
``MULTI_CPU`` and an FSDP launch configuration would silently train as DDP. torch's FSDP runs on CPU with
gloo, so :func:`make_accelerator` switches accelerate's state to FSDP there itself; DeepSpeed asked for on
CPU is refused with one line (accelerate does not drive it there either).

Generation under sharded parameters gathers them once per rollout (:func:`gathered_for_generation`), not
once per token: faster, and no collective runs inside ``generate``, so ranks that stop after different
numbers of tokens (or the main process evaluating alone) never wait for each other.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from perception_r1.errors import UserError


@dataclass(frozen=True)
class Engine:
    kind: str  # "single process", "DDP", "FSDP1", "FSDP2", "DeepSpeed ZeRO-<stage>"
    processes: int

    def __str__(self) -> str:
        return f"{self.kind}, {self.processes} process{'es' if self.processes != 1 else ''}"

    @property
    def fsdp(self) -> bool:
        return self.kind.startswith("FSDP")

    @property
    def deepspeed(self) -> bool:
        return self.kind.startswith("DeepSpeed")


def engine_from(distributed_type: str, processes: int, fsdp_version: int | None = None,
                zero_stage: int | None = None) -> Engine:
    """The engine accelerate's state describes (``distributed_type``: the name of its ``DistributedType``)."""
    if distributed_type == "DEEPSPEED":
        return Engine(f"DeepSpeed ZeRO-{zero_stage if zero_stage is not None else '?'}", processes)
    if distributed_type == "FSDP":
        return Engine(f"FSDP{fsdp_version or 1}", processes)
    return Engine("DDP" if processes > 1 else "single process", processes)


#: engines whose checkpoints (weights and optimizer state alike) are the same files: each resumes the other's
REPLICATED = ("single process", "DDP")


def resumable(recorded: str | None, current: Engine) -> bool:
    """Whether a run that ``config.yaml`` says ran on ``recorded`` (``str(Engine)``; None: written before runs
    recorded it) may go on under ``current``: the same engine, or one replicated engine for another."""
    kind = recorded.split(",")[0] if recorded else None
    return kind is None or kind == current.kind or (kind in REPLICATED and current.kind in REPLICATED)


def engine_of(accelerator: Any) -> Engine:
    state = accelerator.state
    kind = str(getattr(accelerator.distributed_type, "name", accelerator.distributed_type))
    fsdp = getattr(state, "fsdp_plugin", None) if kind == "FSDP" else None
    deepspeed = getattr(state, "deepspeed_plugin", None) if kind == "DEEPSPEED" else None
    return engine_from(kind, accelerator.num_processes, getattr(fsdp, "fsdp_version", None),
                       getattr(deepspeed, "zero_stage", None))


#: the policy's calls into the model besides ``forward`` (``Policy.image_features``): FSDP2 gathers and
#: reshards around them too once registered, as it does around ``forward``
FORWARD_METHODS = ("get_image_features",)


def prepare_model(accelerator: Any, model: torch.nn.Module) -> None:
    """After ``accelerator.prepare``: what the engine needs beyond it (FSDP2: the extra forward methods)."""
    if engine_of(accelerator).kind != "FSDP2":
        return
    from torch.distributed.fsdp import register_fsdp_forward_method

    for name in FORWARD_METHODS:
        if hasattr(model, name):
            register_fsdp_forward_method(model, name)
    # every unit drops its gathered weights after forward (FSDP2 keeps the root's, accelerate the embeddings'):
    # the parameters are then the same objects before and after a backward, which accelerate's clip_grad_norm_
    # compares to find the model (else it gives no norm)
    model.set_reshard_after_forward(True)  # type: ignore[operator]


def _env_true(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def make_accelerator(mixed_precision: str | None) -> Any:
    """An ``Accelerator`` for this process, with FSDP applied on CPU too when the launch asked for it."""
    from accelerate import Accelerator

    cpu = not torch.cuda.is_available()
    if cpu and _env_true("ACCELERATE_USE_DEEPSPEED"):
        raise UserError("DeepSpeed was asked for on CPU, where accelerate does not run it (it would train as DDP): "
                        "use configs/accelerate/fsdp.yaml or ddp.yaml on CPU, DeepSpeed on GPUs")
    if _env_true("ACCELERATE_USE_FSDP") and os.environ.get("FSDP_VERSION", "1") != "2":
        raise UserError("FSDP version 1 is not supported (the trainer calls the model's vision tower outside forward, "
                        "which FSDP1 does not gather): set fsdp_version: 2 in the accelerate config")
    accelerator = Accelerator(cpu=cpu, mixed_precision=mixed_precision)
    if cpu and _env_true("ACCELERATE_USE_FSDP") and accelerator.num_processes > 1:
        _fsdp_on_cpu(accelerator)
    return accelerator


def _fsdp_on_cpu(accelerator: Any) -> None:
    """What accelerate does for FSDP on GPUs (``AcceleratorState``: distributed type and plugin from the
    ``FSDP_*`` environment its launcher sets), done here for gloo on CPU."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()  # reads FSDP_VERSION, FSDP_AUTO_WRAP_POLICY, ... from the env
    if accelerator.state.mixed_precision != "no":
        plugin.set_mixed_precision(accelerator.state.mixed_precision)
    # both singletons: accelerate copies PartialState's fields into AcceleratorState whenever one is made
    PartialState().distributed_type = accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin


@contextlib.contextmanager
def gathered_for_generation(accelerator: Any, model: torch.nn.Module) -> Iterator[None]:
    """Every rank's parameters whole for the duration (one gather), sharded again after.

    All processes must enter together (the gather is a collective); inside, ``model`` runs forwards without
    any collective, on any subset of the processes. DDP, ZeRO-1/2 and one process hold whole parameters
    already: nothing happens. (FSDP1 is refused by :func:`make_accelerator`: its ``summon_full_params`` allows
    no forward inside.)
    """
    engine = engine_of(accelerator)
    if engine.kind == "FSDP2":
        with _fsdp2_unsharded(model):
            yield
    elif engine.kind == "DeepSpeed ZeRO-3":
        yield from _zero3_gathered(model)
    else:
        yield


@contextlib.contextmanager
def _fsdp2_unsharded(model: torch.nn.Module) -> Iterator[None]:
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    states = [unit._get_fsdp_state() for unit in units]
    if states:  # the root's first-forward set-up, done now: it would put the shards back into the modules
        states[0]._lazy_init()
    # each unit's own reshard-after-forward setting, restored exactly after (FSDP2 treats the root specially)
    saved = [(s._auto_reshard_after_forward, [g.post_forward_mesh_info for g in s._fsdp_param_groups]) for s in states]
    for unit in units:  # keep what is gathered: forwards then find every unit whole and gather nothing
        unit.set_reshard_after_forward(False, recurse=False)
    try:
        for unit in units:
            unit.unshard()  # the one all-gather per unit, every rank at once
        yield
    finally:
        for unit, state, (auto, infos) in zip(units, states, saved, strict=True):
            unit.reshard()
            state._auto_reshard_after_forward = auto
            for group, info in zip(state._fsdp_param_groups, infos, strict=True):
                group.post_forward_mesh_info = info


def _zero3_gathered(model: torch.nn.Module) -> Iterator[None]:
    """ZeRO-3: gather every parameter once and lift DeepSpeed's per-module fetch hooks meanwhile, as TRL's
    ``unwrap_model_for_generation`` does (``remove_hooks`` / ``add_hooks``); without it each token fetches each
    layer again. Not run here: accelerate does not drive DeepSpeed on CPU (README, "Multi-GPU")."""
    import deepspeed

    offload = getattr(getattr(model, "optimizer", None), "parameter_offload", None)  # model: the DeepSpeedEngine
    with deepspeed.zero.GatheredParameters(list(model.parameters())):
        if offload is not None:
            for param in offload.module.parameters(recurse=True):
                param.ds_active_sub_modules.clear()
            for hook in offload.forward_hooks + offload.backward_hooks:
                hook.remove()
            offload.forward_hooks, offload.backward_hooks = [], []
        try:
            yield
        finally:
            if offload is not None:
                offload._register_deepspeed_module(offload.module)
