"""A run's plan: the configuration resolved once, before any heavy import, then frozen.

``run`` builds it right after reading the flags: tasks, prompt templates, rewards, the task's small-model
settings and the model-size defaults are all settled here (the model's size is read from its safetensors
headers, not by loading it), so every configuration mistake is one line in well under a second, and the
Trainer reads a configuration nobody edits.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from perception_r1.contract import Task
from perception_r1.model.families import count_parameters
from perception_r1.registry import Registry
from perception_r1.train.config import DEFAULTS, apply_task_defaults, fill_model_defaults, resolve_tasks
from perception_r1.train.rewards import WeightedReward, build_rewards


@dataclass(frozen=True)
class RunPlan:
    config: Mapping[str, Any]  # read-only: every key resolved (``learning_rate`` and the rest are never null)
    tasks: tuple[Task, ...]
    rewards: tuple[WeightedReward, ...]
    num_params: int  # what the size-dependent defaults were chosen for
    by_size: tuple[str, ...]  # keys filled from the model's size
    from_task: tuple[str, ...]  # keys taken from the task's small-model settings (tiny_run_defaults)


def plan_run(config: Mapping[str, Any], registry: Registry, given: Set[str] | None = None,
             resume: bool = False) -> RunPlan:
    """``config`` (from :func:`perception_r1.train.config.resolve`) completed and frozen.

    ``given``: the keys the user set; the others may take the task's small-model settings. None (a library
    caller) counts every key that differs from the defaults as set; a resumed run keeps its own config whole.
    """
    resolved = dict(config)
    tasks = resolve_tasks(registry, resolved["task"], resolved["prompt_templates"])
    rewards = build_rewards(registry, tasks, resolved["rewards"])
    # a missing embedded model is rebuilt as a fresh tiny one by Policy.load: small by construction
    num_params = count_parameters(resolved["model"]) or 0
    if given is None:
        given = {k for k, v in resolved.items() if v != DEFAULTS.get(k)}
    applied = apply_task_defaults(resolved, tasks, set(resolved) if resume else set(given), num_params)
    own = dict(getattr(tasks[0], "tiny_run_defaults", {}) or {}) if applied else {}
    from_task = [k for k in applied if k in own]  # the rest: the small-model settings for any task
    by_size = [k for k in applied if k not in own] + fill_model_defaults(resolved, num_params)
    return RunPlan(MappingProxyType(resolved), tuple(tasks), tuple(rewards), num_params, tuple(by_size),
                   tuple(from_task))
