"""Plugin registry: hook specs and the one manager that loads task and reward plugins.

The bottom layer: it imports nothing else of ``perception_r1``.
"""

from .hookspecs import RewardFn, RewardRegister, TaskRegister, hookimpl, hookspec
from .info import PluginError, PluginInfo, PluginWarning
from .manager import Registry, get_registry, load_registry, reset_registry
from .validation import COORD_SPACES, contract_problems

__all__ = [
    "COORD_SPACES",
    "PluginError",
    "PluginInfo",
    "PluginWarning",
    "Registry",
    "RewardFn",
    "RewardRegister",
    "TaskRegister",
    "contract_problems",
    "get_registry",
    "hookimpl",
    "hookspec",
    "load_registry",
    "reset_registry",
]
