"""perception-r1 plugin: text spotting, i.e. locate (as polygons) and read every word in an image."""

from __future__ import annotations

from perception_r1 import TaskRegister, hookimpl

from .task import TextSpotting

__all__ = ["TextSpotting", "register_tasks"]


@hookimpl
def register_tasks(register: TaskRegister) -> None:
    register(TextSpotting())
