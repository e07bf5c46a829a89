"""Synthetic text-spotting images: 1-3 words, some rotated, on a 112x112 or 224x224 background.

Each word is drawn on its own transparent patch, rotated with PIL (counter-clockwise, ``expand``) and
pasted without overlapping earlier words; its polygon is the tight text box rotated the same way.
"""

from __future__ import annotations

import math
import random
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from shapely.geometry import Polygon

try:  # the OCR task's vocabulary, when that built-in is installed; words a small model can read
    from perception_r1.tasks.text_render import WORDS
except ImportError:  # pragma: no cover - older perception-r1
    WORDS = ("apple", "river", "stone", "cloud", "green", "light", "house", "table", "water", "music")

SIZES = (112, 224)
PLACEMENT_TRIES = 50


def _rotate(points: list[tuple[float, float]], angle: float, src: tuple[int, int], dst: tuple[int, int]):
    """Where PIL's ``rotate(angle, expand=True)`` moves ``points`` of a ``src``-sized image (y points down)."""
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)
    cx, cy, nx, ny = src[0] / 2, src[1] / 2, dst[0] / 2, dst[1] / 2
    return [(nx + (x - cx) * cos + (y - cy) * sin, ny - (x - cx) * sin + (y - cy) * cos) for x, y in points]


def word_patch(text: str, points: int, angle: float, color: tuple[int, int, int]):
    """A transparent patch with ``text`` rotated by ``angle`` degrees, and the text box's 4 corners on it."""
    font = ImageFont.load_default(size=points)
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    pad = 2
    patch = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
    ImageDraw.Draw(patch).text((pad - left, pad - top), text, font=font, fill=(*color, 255))
    box = [(pad, pad), (patch.width - pad, pad), (patch.width - pad, patch.height - pad), (pad, patch.height - pad)]
    if angle == 0:
        return patch, box
    rotated = patch.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    return rotated, _rotate(box, angle, patch.size, rotated.size)


def make_sample(rng: random.Random) -> dict[str, Any]:
    size = rng.choice(SIZES)
    background = tuple(rng.randint(200, 255) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    scale = size / 224
    words: list[dict[str, Any]] = []
    placed: list[Polygon] = []
    for _ in range(rng.randint(1, 3)):
        text = rng.choice(WORDS)
        points = max(11, round(rng.randint(18, 34) * scale))
        angle = 0.0 if rng.random() < 0.5 else round(rng.uniform(-35, 35), 1)
        color = tuple(rng.randint(0, 90) for _ in range(3))
        patch, corners = word_patch(text, points, angle, color)
        if patch.width >= size or patch.height >= size:
            continue
        for _ in range(PLACEMENT_TRIES):
            x, y = rng.randint(0, size - patch.width), rng.randint(0, size - patch.height)
            # integer pixel corners: the ground truth a model can write exactly
            polygon = [[round(px + x), round(py + y)] for px, py in corners]
            shape = Polygon(polygon)
            if all(shape.distance(other) > 2 for other in placed):
                image.paste(patch, (x, y), patch)
                placed.append(shape)
                words.append({"polygon": polygon, "text": text})
                break
    return {"image": image, "image_size": [size, size], "query": {}, "solution": {"words": words}}
