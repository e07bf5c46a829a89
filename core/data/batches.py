"""Mixed-task batches: which task each slot of a batch gets, and samples drawn once per task in that order.

Shared by the GRPO trainer and SFT, so both mix tasks the same way and stay a pure function of their seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from perception_r1.contract import Task


def round_robin(tasks: Sequence[Task], n: int, step: int) -> list[Task]:
    """The task of each of a step's ``n`` slots: the tasks in turn, continuing from the previous step."""
    return [tasks[(step * n + i) % len(tasks)] for i in range(n)]


def draw_for(chosen: Sequence[Task], draw: Callable[[Task, int], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One ``draw(task, count)`` per distinct task, its samples handed out in the order of ``chosen``."""
    pools = {task.name: list(draw(task, sum(t is task for t in chosen))) for task in dict.fromkeys(chosen)}
    return [pools[task.name].pop(0) for task in chosen]
