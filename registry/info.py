"""What the manager knows about each plugin, its errors, and the allow-list env var."""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

ENV_ALLOW = "PERCEPTION_R1_PLUGINS"
BUILTIN_DIST = "perception-r1"


class PluginError(Exception):
    """A plugin could not be loaded or broke the contract. The message is one line naming the plugin."""


class PluginWarning(UserWarning):
    """Something about the plugins a user should know, that does not stop the program (one line)."""


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    builtin: bool
    tasks: list[str] = field(default_factory=list)
    rewards: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dist_name(ep: md.EntryPoint) -> str:
    return ep.dist.name if ep.dist else "?"


def installed_entry_points(group: str) -> list[md.EntryPoint]:
    """The group's entry points, built-ins first: a third party that reuses a built-in name is the one blamed."""
    return sorted(md.entry_points(group=group), key=lambda ep: (dist_name(ep) != BUILTIN_DIST, ep.name))


def allow_list_from_env() -> set[str] | None:
    """``PERCEPTION_R1_PLUGINS=a,b`` -> {a, b}; set but empty -> set() (built-ins only); unset -> None."""
    raw = os.environ.get(ENV_ALLOW)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


@dataclass
class AllowList:
    """The third-party plugins to load, by entry-point or distribution name; ``None``: all of them."""

    names: set[str] | None = None
    hidden: list[str] = field(default_factory=list)  # "name (distribution)" of the plugins it left out

    def admits(self, ep: md.EntryPoint) -> bool:
        """Built-ins always; a third party when named. Records what it leaves out in ``hidden``."""
        dist = dist_name(ep)
        if dist == BUILTIN_DIST or self.names is None or ep.name in self.names or dist in self.names:
            return True
        self.hidden.append(f"{ep.name} ({dist})")
        return False

    def __str__(self) -> str:
        return f'{ENV_ALLOW}="{",".join(sorted(self.names or ()))}"'

    def unmatched(self, entry_points: Iterable[md.EntryPoint]) -> str | None:
        """One line about names that match no installed plugin (entry point or distribution)."""
        pairs = sorted({(ep.name, dist_name(ep)) for ep in entry_points})
        missing = sorted((self.names or set()) - {n for pair in pairs for n in pair})
        if not missing:
            return None
        known = ", ".join(f"{ep} ({dist})" for ep, dist in pairs if dist != BUILTIN_DIST) or "none"
        return f"{self}: {', '.join(missing)} matches no installed plugin (third-party plugins: {known})"

    def hint(self) -> str:
        """The tail of an 'unknown task/reward' message: says the filter is set, and what it hides."""
        if self.names is None:
            return ""
        if not self.hidden:
            return f"; {self} is set"
        return f"; {self} is set and hides the plugins {', '.join(self.hidden)}: add one to load it"


def check_foreign_module(module: object, ep: Any, dist: str) -> None:
    """PluginError when a third-party entry point names one of perception-r1's own modules or a
    standard-library module instead of a plugin."""
    name = str(getattr(module, "__name__", ""))
    if dist == BUILTIN_DIST:
        return
    if name == "perception_r1" or name.startswith("perception_r1."):
        problem = f"names perception-r1's own module '{name}', not a plugin"
    elif name.split(".")[0] in sys.stdlib_module_names or name.split(".")[0] in sys.builtin_module_names:
        problem = f"names the standard-library module '{name}', not a plugin"
    else:
        return
    raise PluginError(f"plugin '{ep.name}' ({dist}): its entry point {ep.value!r} {problem} (exclude it with {ENV_ALLOW}=...)")
