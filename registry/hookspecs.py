"""The whole plugin contract: two register-callback hooks.

A plugin is any module that implements one or both hooks with ``@hookimpl`` and is named
in the ``perception_r1`` entry-point group of its distribution.
"""

from collections.abc import Callable

import pluggy

PROJECT = "perception_r1"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_tasks(register: Callable) -> None:
    """Call ``register(task)`` once for every :class:`perception_r1.Task` the plugin provides."""


@hookspec
def register_rewards(register: Callable) -> None:
    """Call ``register(name, fn)`` once for every extra reward.

    ``fn(completions: list[str], samples: list[dict], **kw) -> list[float | None]``, the shape TRL uses;
    ``None`` means "not applicable to this sample".
    """
