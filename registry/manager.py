"""The plugin manager: the only place that finds and loads task and reward plugins.

Built-in tasks are entry points of this package's own distribution, loaded exactly like a
third party's. ``PERCEPTION_R1_PLUGINS=a,b`` limits third-party plugins to those entry-point
(or distribution) names; set but empty, only the built-ins load; a name that matches no
installed plugin gives a :class:`info.PluginWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pluggy

from perception_r1.contract import Task, contract_problems

from . import hookspecs, info
from .hookspecs import RewardFn
from .info import PluginError, PluginInfo


class Registry:
    """Tasks and rewards registered by plugins, each traced back to the plugin that gave it."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.tasks: dict[str, Task] = {}
        self.rewards: dict[str, RewardFn] = {}
        self._owner: dict[str, str] = {}
        self.allow = info.AllowList()  # the allow-list the entry points were loaded with, and what it hid

    # -- loading -------------------------------------------------------------------------------
    def load_entry_points(self, allow: set[str] | None = None) -> None:
        entry_points = info.installed_entry_points(hookspecs.PROJECT)
        self.allow = info.AllowList(allow)
        if line := self.allow.unmatched(entry_points):
            warnings.warn(info.PluginWarning(line), stacklevel=2)
        for ep in filter(self.allow.admits, entry_points):
            dist = info.dist_name(ep)
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:  # any import failure of foreign code (sys.exit too) is one line
                raise PluginError(f"plugin '{ep.name}' ({dist}) failed to import: {type(exc).__name__}: {exc}"
                                  f" (exclude it with {info.ENV_ALLOW}=...)".replace("\n", " ")) from exc
            info.check_foreign_module(module, ep, dist)
            self.add_plugin(module, ep.name, dist, ep.dist.version if ep.dist else "?", dist == info.BUILTIN_DIST)

    def add_plugin(
        self, plugin: object, name: str, distribution: str = "<in-process>", version: str = "0", builtin: bool = False
    ) -> PluginInfo:
        """Register one plugin object and run its hooks now, attributing what it registers to it."""
        if name in self.plugins or self.pm.get_name(plugin) is not None:
            raise PluginError(f"plugin '{name}' ({distribution}) is registered twice (or is another plugin's module)")
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin '{name}' ({distribution}): {exc}".replace("\n", " ")) from exc
        info = self.plugins[name] = PluginInfo(name, distribution, version, builtin)
        self._call(plugin, info, "register_tasks", lambda task: self._add_task(info, task))
        self._call(plugin, info, "register_rewards", lambda n, fn: self._add_reward(info, n, fn))
        return info

    def _call(self, plugin: object, info: PluginInfo, hook: str, register: Callable[..., None]) -> None:
        """Call ``hook`` through pluggy on this one plugin (all others left out): what it registers is its own."""
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        try:
            self.pm.subset_hook_caller(hook, remove_plugins=others)(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin '{info.name}' raised in {hook}: {type(exc).__name__}: {exc}") from exc

    def _add_task(self, info: PluginInfo, task: Task) -> None:
        if problems := contract_problems(task):
            raise PluginError(f"plugin '{info.name}' registered a task that breaks the contract: {problems[0]}")
        self._claim(info, task.name, "task")
        self.tasks[task.name] = task
        info.tasks.append(task.name)

    def _add_reward(self, info: PluginInfo, name: Any, fn: Any) -> None:
        if not isinstance(name, str) or not name or not callable(fn):
            raise PluginError(f"plugin '{info.name}' registered a reward without a name or a callable: {name!r}")
        self._claim(info, name, "reward")
        self.rewards[name] = fn
        info.rewards.append(name)

    def _claim(self, info: PluginInfo, name: str, kind: str) -> None:
        # Task rewards are addressed by the task's name, so tasks and rewards share one namespace.
        if name in self._owner:
            raise PluginError(
                f"plugin '{info.name}' registers {kind} '{name}', already registered by plugin '{self._owner[name]}'"
            )
        self._owner[name] = info.name

    # -- lookup --------------------------------------------------------------------------------
    def task(self, name: str) -> Task:
        if name not in self.tasks:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise PluginError(f"unknown task '{name}' (installed tasks: {known}){self.allow.hint()}")
        return self.tasks[name]

    def default_task(self) -> str:
        """`run`'s task when none is named: one marked ``is_default`` (built-ins first), else the first by name."""
        builtin = {name: self.plugins[owner].builtin for name, owner in self._owner.items()}
        ranked = sorted(self.tasks, key=lambda n: (not self.tasks[n].is_default, not builtin[n], n))
        if not ranked:
            raise PluginError(f"no task is installed{self.allow.hint()}")
        return ranked[0]

    def reward(self, name: str) -> RewardFn:
        """A registered (custom) reward by name. A task's own reward is reached through the task
        (``perception_r1.contract.task_rewards``), which guards it."""
        if name in self.rewards:
            return self.rewards[name]
        known = ", ".join(sorted(self.rewards)) or "none"
        raise PluginError(f"unknown reward '{name}' (known rewards: {known}){self.allow.hint()}")


def load_registry() -> Registry:
    """A new registry holding every installed plugin that ``PERCEPTION_R1_PLUGINS`` admits."""
    registry = Registry()
    registry.load_entry_points(info.allow_list_from_env())
    return registry


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use. For the command line; library code is given one."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load_registry()
    return _REGISTRY


def reset_registry() -> None:
    """Forget loaded plugins (tests; after installing a plugin in a running process)."""
    global _REGISTRY
    _REGISTRY = None
