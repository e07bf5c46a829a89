"""Synthetic OCR images: one or two short lowercase words, black on white, in PIL's default font.

The font is Pillow's bundled scalable default (``ImageFont.load_default(size=...)``, Pillow >= 10.1 with
FreeType), so rendering needs no font file on the machine and gives the same pixels everywhere.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFont

#: short, common lowercase words: readable at small sizes, no characters a tokenizer treats specially
WORDS = (
    "apple", "river", "stone", "cloud", "green", "light", "house", "table", "water", "music",
    "bread", "chair", "plant", "smile", "train", "paper", "night", "quick", "brown", "fox",
    "jump", "over", "lazy", "dog", "cat", "sun", "moon", "star", "tree", "bird",
    "fish", "blue", "red", "gold", "word", "text", "read", "open", "door", "road",
    "city", "lake", "hill", "snow", "rain", "wind", "fire", "sand", "glass", "clock",
)  # fmt: skip

DEFAULT_SIZE = (224, 56)
MARGIN = 6


def random_text(rng: random.Random, max_words: int = 2) -> str:
    """One or up to ``max_words`` words from :data:`WORDS`, separated by single spaces."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_words)))


def _fitting_font(draw: ImageDraw.ImageDraw, text: str, size: tuple[int, int]) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The largest default-font size (at most 80% of the image height) at which ``text`` fits."""
    w, h = size
    points = max(8, int(h * 0.8))
    while True:
        font = ImageFont.load_default(size=points)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if (right - left <= w - 2 * MARGIN and bottom - top <= h - 2 * MARGIN) or points <= 8:
            return font
        points -= 2


def _layout(draw: ImageDraw.ImageDraw, text: str, size: tuple[int, int]) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, float, float]:
    """Font and origin that centre ``text`` in an image of ``size``."""
    font = _fitting_font(draw, text, size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return font, (size[0] - (right - left)) / 2 - left, (size[1] - (bottom - top)) / 2 - top


def render_text(text: str, size: tuple[int, int] = DEFAULT_SIZE) -> Image.Image:
    """``text`` centred in black on a white RGB image of ``size`` (w, h)."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font, x, y = _layout(draw, text, size)
    draw.text((x, y), text, fill="black", font=font)
    return image


def char_spans(text: str, size: tuple[int, int] = DEFAULT_SIZE) -> list[tuple[str, float, float]]:
    """``(character, x_start, x_end)`` in pixels for each character of ``render_text(text, size)``."""
    draw = ImageDraw.Draw(Image.new("RGB", size))
    font, x, _ = _layout(draw, text, size)
    return [(c, x + font.getlength(text[:i]), x + font.getlength(text[: i + 1])) for i, c in enumerate(text)]
