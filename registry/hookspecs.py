"""The whole plugin contract: two register-callback hooks.

A plugin is any module that implements one or both hooks with ``@hookimpl`` and is named
in the ``perception_r1`` entry-point group of its distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import pluggy

from perception_r1.contract import Task

PROJECT = "perception_r1"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: ``fn(completions: list[str], samples: list[dict], **kw) -> list[float | None]``, the shape TRL uses;
#: ``None`` means "not applicable to this sample".
RewardFn = Callable[..., list[float | None]]


class TaskRegister(Protocol):
    def __call__(self, task: Task) -> None:
        """Register one task: a :class:`perception_r1.Task` (checked against the contract at once)."""


class RewardRegister(Protocol):
    def __call__(self, name: str, fn: RewardFn) -> None:
        """Register one reward under ``name`` (shared namespace with the task names)."""


@hookspec
def register_tasks(register: TaskRegister) -> None:
    """Call ``register(task)`` once for every :class:`perception_r1.Task` the plugin provides."""


@hookspec
def register_rewards(register: RewardRegister) -> None:
    """Call ``register(name, fn)`` once for every extra reward (see :data:`RewardFn`)."""
