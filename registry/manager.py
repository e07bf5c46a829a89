"""The plugin manager: the only place that finds and loads task and reward plugins.

Built-in tasks are entry points of this package's own distribution, loaded exactly like a
third party's. ``PERCEPTION_R1_PLUGINS=a,b`` limits third-party plugins to those entry-point
(or distribution) names; set but empty, only the built-ins load.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs

ENV_ALLOW = "PERCEPTION_R1_PLUGINS"
BUILTIN_DIST = "perception-r1"

RewardFn = Callable[..., list]


class PluginError(Exception):
    """A plugin could not be loaded or broke the contract. The message is one line naming the plugin."""


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    builtin: bool
    tasks: list[str] = field(default_factory=list)
    rewards: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "tasks": self.tasks,
            "rewards": self.rewards,
        }


class Registry:
    """Tasks and rewards registered by plugins, each traced back to the plugin that gave it."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.tasks: dict[str, Any] = {}
        self.rewards: dict[str, RewardFn] = {}
        self._owner: dict[str, str] = {}

    # -- loading -------------------------------------------------------------------------------
    def load_entry_points(self, allow: set[str] | None = None) -> None:
        def builtin_first(ep: md.EntryPoint) -> tuple[bool, str]:
            # built-ins load first, so a third party that reuses a built-in name is the one blamed
            return (not (ep.dist and ep.dist.name == BUILTIN_DIST), ep.name)

        for ep in sorted(md.entry_points(group=hookspecs.PROJECT), key=builtin_first):
            dist = ep.dist.name if ep.dist else "?"
            builtin = dist == BUILTIN_DIST
            if not builtin and allow is not None and ep.name not in allow and dist not in allow:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # any import failure of foreign code becomes one line
                raise PluginError(
                    f"plugin '{ep.name}' ({dist}) failed to import: {type(exc).__name__}: {exc}"
                    f" (exclude it with {ENV_ALLOW}=...)"
                ) from exc
            version = ep.dist.version if ep.dist else "?"
            self.add_plugin(module, name=ep.name, distribution=dist, version=version, builtin=builtin)

    def add_plugin(
        self,
        plugin: ModuleType | object,
        name: str,
        distribution: str = "<in-process>",
        version: str = "0",
        builtin: bool = False,
    ) -> PluginInfo:
        """Register one plugin object and run its hooks now, attributing what it registers to it."""
        if name in self.plugins:
            raise PluginError(f"plugin '{name}' is registered twice")
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin '{name}' ({distribution}): {exc}".replace("\n", " ")) from exc
        info = PluginInfo(name, distribution, version, builtin)
        self.plugins[name] = info
        for impl in self.pm.hook.register_tasks.get_hookimpls():
            if impl.plugin_name == name:
                self._call(impl, info, "register_tasks", lambda task: self._add_task(info, task))
        for impl in self.pm.hook.register_rewards.get_hookimpls():
            if impl.plugin_name == name:
                self._call(impl, info, "register_rewards", lambda n, fn: self._add_reward(info, n, fn))
        return info

    def _call(self, impl, info: PluginInfo, hook: str, register: Callable) -> None:
        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin '{info.name}' raised in {hook}: {type(exc).__name__}: {exc}") from exc

    def _add_task(self, info: PluginInfo, task: Any) -> None:
        from perception_r1.contract import contract_problems  # late: contract imports nothing of ours

        problems = contract_problems(task)
        if problems:
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
    def task(self, name: str) -> Any:
        if name not in self.tasks:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise PluginError(f"unknown task '{name}' (installed tasks: {known})")
        return self.tasks[name]

    def reward(self, name: str) -> RewardFn:
        """A batch reward function by name: a registered reward, or a task's own reward."""
        if name in self.rewards:
            return self.rewards[name]
        if name in self.tasks:
            return self.tasks[name].batch_reward
        known = ", ".join(sorted([*self.rewards, *self.tasks])) or "none"
        raise PluginError(f"unknown reward '{name}' (known rewards: {known})")


def allow_list_from_env() -> set[str] | None:
    raw = os.environ.get(ENV_ALLOW)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        registry = Registry()
        registry.load_entry_points(allow_list_from_env())
        _REGISTRY = registry
    return _REGISTRY


def reset_registry() -> None:
    """Forget loaded plugins (tests; after installing a plugin in a running process)."""
    global _REGISTRY
    _REGISTRY = None
