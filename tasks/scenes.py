"""Synthetic shape scenes for the embedded default: flat coloured shapes on a plain background.

The embedded model sees 112x112 images (16 image tokens of 28x28 pixels), so shapes are large, flat,
saturated and never touch: a tiny model can learn to find, name and count them. Boxes are measured
from the drawn pixels (tight, xyxy, continuous pixel coordinates: right/bottom exclusive), not from
the drawing call, so they are exact for every shape. Everything is drawn with PIL only and depends
only on the ``random.Random`` passed in.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 40),
    "blue": (40, 80, 240),
    "yellow": (250, 220, 20),
}
BACKGROUND = (24, 24, 24)
#: free pixels kept between two objects so they stay separate blobs
GAP = 3
#: placement tries per object before giving up on it (bounded time for crowded scenes)
TRIES = 200


@dataclass
class SceneObject:
    shape: str
    color: str
    box: list[float]  # xyxy, original-image pixels, tight around the drawn shape


@dataclass
class Scene:
    image: Image.Image
    objects: list[SceneObject]


def _outline(shape: str, x: int, y: int, s: int) -> tuple[str, list]:
    """The PIL drawing call for ``shape`` filling the square cell at (x, y) of side ``s``."""
    x2, y2 = x + s - 1, y + s - 1  # PIL coordinates are inclusive
    if shape == "circle":
        return "ellipse", [x, y, x2, y2]
    if shape == "square":
        return "rectangle", [x, y, x2, y2]
    if shape == "triangle":
        return "polygon", [(x, y2), (x2, y2), ((x + x2) / 2, y)]
    raise ValueError(f"unknown shape '{shape}' (one of {', '.join(SHAPES)})")


def _mask(shape: str, x: int, y: int, s: int, size: tuple[int, int]) -> Image.Image:
    """An "L" image of ``size``: 1 on the pixels ``shape`` covers when drawn in the cell at (x, y) of side ``s``."""
    mask = Image.new("L", size, 0)
    kind, xy = _outline(shape, x, y, s)
    getattr(ImageDraw.Draw(mask), kind)(xy, fill=1)
    return mask


def object_mask(obj: SceneObject, size: tuple[int, int]) -> Image.Image:
    """The pixels a scene's object covers, drawn as the scene drew it (its tight box is the square cell)."""
    x1, y1, x2, _ = (int(round(v)) for v in obj.box)
    return _mask(obj.shape, x1, y1, x2 - x1, size)


def _tight_box(shape: str, x: int, y: int, s: int, size: tuple[int, int]) -> list[float]:
    bbox = _mask(shape, x, y, s, size).getbbox()
    assert bbox is not None  # s >= 1 always draws at least one pixel
    return [float(v) for v in bbox]


def _free(box: Sequence[float], taken: list[list[float]]) -> bool:
    return all(
        box[2] + GAP <= t[0] or t[2] + GAP <= box[0] or box[3] + GAP <= t[1] or t[3] + GAP <= box[1] for t in taken
    )


def place_objects(
    rng: random.Random,
    kinds: Sequence[tuple[str, str]],
    size: tuple[int, int] = (112, 112),
    min_size: int = 14,
    max_size: int = 40,
) -> Scene:
    """Draw one object per ``(shape, color)`` in ``kinds``, in order, without overlap.

    An object that finds no free cell after :data:`TRIES` tries (the largest sizes first shrink toward
    ``min_size``) is left out, so crowded requests can give fewer objects: callers must read
    ``scene.objects``, never assume ``len(kinds)``. Put the objects that matter first.
    """
    w, h = size
    if not 1 <= min_size <= max_size or max_size > min(w, h):
        raise ValueError(f"need 1 <= min_size <= max_size <= image side, got {min_size}, {max_size}, {size}")
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    objects: list[SceneObject] = []
    for shape, color in kinds:
        if color not in COLORS:
            raise ValueError(f"unknown color '{color}' (one of {', '.join(COLORS)})")
        for attempt in range(TRIES):
            # later tries use smaller objects: dense scenes still fit
            hi = max(min_size, max_size - (max_size - min_size) * attempt // (TRIES // 2))
            s = rng.randint(min_size, hi)
            x, y = rng.randint(0, w - s), rng.randint(0, h - s)
            box = _tight_box(shape, x, y, s, size)
            if _free(box, [o.box for o in objects]):
                kind, xy = _outline(shape, x, y, s)
                getattr(draw, kind)(xy, fill=COLORS[color])
                objects.append(SceneObject(shape, color, box))
                break
    return Scene(image, objects)


def random_scene(
    rng: random.Random,
    size: tuple[int, int] = (112, 112),
    n_objects: int | tuple[int, int] = (1, 4),
    shapes: Sequence[str] = SHAPES,
    colors: Sequence[str] | None = None,
    min_size: int = 14,
    max_size: int = 40,
) -> Scene:
    """A scene of ``n_objects`` (an int, or an inclusive ``(low, high)`` range) random shapes and colors."""
    lo, hi = (n_objects, n_objects) if isinstance(n_objects, int) else n_objects
    names = list(colors) if colors is not None else list(COLORS)
    n = rng.randint(lo, hi)
    kinds = [(rng.choice(list(shapes)), rng.choice(names)) for _ in range(n)]
    return place_objects(rng, kinds, size, min_size, max_size)


def plural(shape: str) -> str:
    """'circle' -> 'circles' (all of :data:`SHAPES` take a plain -s)."""
    return shape + "s"
