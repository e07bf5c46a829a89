"""perception-r1 plugin: text spotting, i.e. locate (as polygons) and read every word in an image."""

from __future__ import annotations

from collections.abc import Callable

from perception_r1 import hookimpl

from .task import TextSpotting

__all__ = ["TextSpotting", "register_tasks"]


@hookimpl
def register_tasks(register: Callable[[TextSpotting], None]) -> None:
    register(TextSpotting())
