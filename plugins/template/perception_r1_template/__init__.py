"""A perception-r1 plugin: one task and one extra reward, registered through the two hooks."""

from __future__ import annotations

from perception_r1 import RewardRegister, TaskRegister, hookimpl

from .task import KNOWN_COLOR_REWARD, TASK_NAME, ColorTask, known_color

__all__ = ["KNOWN_COLOR_REWARD", "TASK_NAME", "ColorTask", "known_color"]


@hookimpl
def register_tasks(register: TaskRegister) -> None:
    register(ColorTask())


@hookimpl
def register_rewards(register: RewardRegister) -> None:
    register(KNOWN_COLOR_REWARD, known_color)
