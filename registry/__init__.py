"""Plugin registry: hook specs and the one manager that loads task and reward plugins."""

from .hookspecs import hookimpl, hookspec
from .manager import PluginError, Registry, get_registry, reset_registry

__all__ = ["PluginError", "Registry", "get_registry", "hookimpl", "hookspec", "reset_registry"]
