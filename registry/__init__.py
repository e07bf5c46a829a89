"""Plugin registry: hook specs and the one manager that loads task and reward plugins.

The layer above the contract: it imports ``perception_r1.contract`` and nothing else of ``perception_r1``.
"""

from .hookspecs import RewardFn, RewardRegister, TaskRegister, hookimpl, hookspec
from .info import PluginError, PluginInfo, PluginWarning
from .manager import Registry, get_registry, load_registry, reset_registry

__all__ = [
    "PluginError",
    "PluginInfo",
    "PluginWarning",
    "Registry",
    "RewardFn",
    "RewardRegister",
    "TaskRegister",
    "get_registry",
    "hookimpl",
    "hookspec",
    "load_registry",
    "reset_registry",
]
