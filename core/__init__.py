"""perception-r1: rule-based RL (GRPO) for visual perception, with every task a plugin."""

from perception_r1.contract import (
    COORD_SPACES,
    Loaded,
    PaperBenchmark,
    ParseError,
    RewardResult,
    Shapes,
    Task,
)
from perception_r1.registry.hookspecs import RewardRegister, TaskRegister, hookimpl

__version__ = "0.1.0"

__all__ = [
    "COORD_SPACES", "Loaded", "PaperBenchmark", "ParseError", "RewardRegister", "RewardResult", "Shapes", "Task",
    "TaskRegister", "__version__", "hookimpl",
]
