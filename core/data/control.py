"""The shuffled-image control: the same samples, each shown another sample's image.

A model that perceives scores worse this way; a model that answers from the prompt alone scores the same.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

#: the record key that names whose image a sample was shown
SHOWN_IMAGE_OF = "shown_image_of"


def shuffle_images(samples: Sequence[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """Copies of ``samples`` in the same order, where no sample keeps its own image (n >= 2).

    A seeded random cycle hands each sample the image of the next one, so the images are a derangement.
    Everything but the image (and ``image_path``) stays: the truth is still the sample's own.
    """
    if len(samples) < 2:
        raise ValueError("the shuffled-image control needs at least 2 samples")
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    out = [dict(s) for s in samples]
    for position, index in enumerate(order):
        donor = samples[order[(position + 1) % len(order)]]
        out[index]["image"] = donor.get("image")
        out[index].pop("image_path", None)
        if "image_path" in donor:
            out[index]["image_path"] = donor["image_path"]
        out[index][SHOWN_IMAGE_OF] = donor.get("id")
    return out
