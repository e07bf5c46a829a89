"""Checkpoints: safetensors for weights and optimizer tensors, JSON for the rest, written atomically.

Layout: ``checkpoints/step-N/{model.safetensors, optimizer.safetensors, state.json}``. A checkpoint is
written into a temporary directory and renamed into place, so a kill mid-write never leaves a corrupt
``step-N``; ``latest`` picks the highest complete step.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from perception_r1.errors import UserError
from perception_r1.train.rundir import CHECKPOINT_STATE as STATE
from perception_r1.train.rundir import checkpoint_dirs
from perception_r1.train.sharded_state import peft_names


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON-able structure."""
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        entry = {}
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().contiguous().cpu()
                entry[key] = {"tensor": f"{pid}.{key}"}
            else:
                entry[key] = value
        per_param[str(pid)] = entry
    return tensors, {"state": per_param, "param_groups": state["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state = {}
    for pid, entry in meta["state"].items():
        state[int(pid) if pid.isdigit() else pid] = {  # numbers, or parameter names (sharded engines)
            key: tensors[value["tensor"]] if isinstance(value, dict) and "tensor" in value else value
            for key, value in entry.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}


def save(directory: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, extra: dict,
         adapter: Any = None, weights: dict[str, torch.Tensor] | None = None,
         optimizer_state: dict[str, Any] | None = None, rng_states: list[torch.Tensor] | None = None) -> Path:
    """``adapter`` (a ``PeftModel``): the checkpoint holds the LoRA adapter only, not the frozen base weights.

    ``weights`` / ``optimizer_state``: the whole state when ``model`` / ``optimizer`` hold shards of it
    (:mod:`perception_r1.train.sharded_state`); default: their own ``state_dict()``. ``rng_states``: every
    process's torch RNG state, by rank (each samples its own rollouts); default: this process's."""
    directory = Path(directory)
    final = directory / f"step-{step}"
    tmp = directory / f".tmp-step-{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write(tmp, step, model, optimizer, extra, adapter, weights, optimizer_state, rng_states)
    except BaseException:  # disk full, Ctrl-C: no .tmp-step-* is left beside the checkpoints
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _write(tmp: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, extra: dict,
           adapter: Any, weights: dict[str, torch.Tensor] | None, optimizer_state: dict[str, Any] | None,
           rng_states: list[torch.Tensor] | None) -> None:
    """Every file of a checkpoint into ``tmp``, durable (fsynced) before the caller publishes it."""
    if adapter is not None:
        from perception_r1.model.lora import save_adapter

        save_adapter(adapter, tmp, state_dict=None if weights is None else peft_names(weights))
    else:
        tensors = {k: v.detach().contiguous().cpu() for k, v in (model.state_dict() if weights is None else weights).items()}
        save_file(_dedupe_shared(tensors), tmp / "model.safetensors")
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict() if optimizer_state is None else optimizer_state)
    save_file(opt_tensors, tmp / "optimizer.safetensors")
    rngs = rng_states or [torch.get_rng_state()]
    save_file({"torch_rng": rngs[0], **{f"torch_rng.{r}": t for r, t in enumerate(rngs) if r}}, tmp / "rng.safetensors")
    state = {"step": step, "optimizer": opt_meta, "python_rng": _py_rng_to_json(random.getstate()), **extra}
    (tmp / STATE).write_text(json.dumps(state))
    for path in tmp.iterdir():  # make the files durable before the rename publishes them
        with path.open("rb") as handle:
            os.fsync(handle.fileno())


def _dedupe_shared(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # tied weights (embeddings / lm_head) share storage; safetensors refuses shared tensors
    seen: dict[int, str] = {}
    out = {}
    for key, value in weights.items():
        ptr = value.data_ptr()
        out[key] = value.clone() if ptr in seen else value
        seen.setdefault(ptr, key)
    return out


def _py_rng_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def latest(directory: Path) -> Path | None:
    found = checkpoint_dirs(Path(directory))
    return found[max(found)] if found else None


def read_state(path: Path) -> dict[str, Any]:
    """``path/state.json``, checked before anything is restored: a JSON object whose ``step`` is the integer
    of the directory's name and whose ``optimizer`` has the shape :func:`save` writes; else a UserError
    naming the file (a hand-edited or foreign checkpoint is refused, never half restored)."""
    from perception_r1.data.io import read_json_object

    file = path / STATE
    state = read_json_object(file)  # not JSON, not an object: one line naming the file
    step, optimizer = state.get("step"), state.get("optimizer")
    if type(step) is not int or f"step-{step}" != path.name:
        raise UserError(f"{file}: 'step' must be the integer of its directory's name, got {str(step)[:40]!r} "
                        "(not a checkpoint of this run?)")
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
            and isinstance(optimizer.get("param_groups"), list)):
        raise UserError(f"{file}: 'optimizer' must be an object with 'state' and 'param_groups' (not written by this run?)")
    return state


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, adapter: Any = None,
         weights_into: Callable[[dict], None] | None = None,
         optimizer_into: Callable[[dict], None] | None = None, rank: int = 0) -> dict[str, Any]:
    """Restore weights (or the LoRA ``adapter``'s), optimizer and RNG state in place; returns the saved state.

    ``weights_into`` / ``optimizer_into``: how a sharded model or optimizer takes the whole saved state
    (:mod:`perception_r1.train.sharded_state`); default: ``load_state_dict`` / peft's adapter loading."""
    path = Path(path)
    state = read_state(path)
    if weights_into is not None:
        from perception_r1.model.lora import ADAPTER_FILE

        weights_into(_read_safetensors(path / (ADAPTER_FILE if adapter is not None else "model.safetensors")))
    elif adapter is not None:
        from perception_r1.model.lora import load_adapter

        load_adapter(adapter, path)
    else:
        weights = _read_safetensors(path / "model.safetensors")
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or missing:
            bad = list(unexpected or missing)[:3]
            raise ValueError(f"checkpoint {path} does not match the model (e.g. {', '.join(bad)})")
    if optimizer is not None:
        saved = _unflatten_optimizer(_read_safetensors(path / "optimizer.safetensors"), state["optimizer"])
        (optimizer_into or optimizer.load_state_dict)(saved)
    rngs = _read_safetensors(path / "rng.safetensors")
    torch.set_rng_state(rngs.get(f"torch_rng.{rank}", rngs["torch_rng"]))  # this process's own, when saved
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    return state


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file; anything else (a pickle, a truncated file) is refused, never unpickled."""
    try:
        return load_file(path)
    except Exception as exc:  # safetensors raises its own error types for foreign or corrupt files
        raise ValueError(f"{path} is not a valid safetensors file ({type(exc).__name__}); refusing to load it") from exc
