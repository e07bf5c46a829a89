"""A sample made ready for a model: its image opened as RGB, its answer space set to the model's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from perception_r1.errors import UserError


class AnswerSpace(Protocol):
    """What preparing a sample needs to know of a model (``Policy`` is one)."""

    coord_space: str

    def resized_size(self, width: int, height: int) -> list[int]: ...


def open_image(image: Any, sample_id: str) -> Image.Image | None:
    """``image`` (a PIL image, a path, or None) as an RGB PIL image; an unreadable file is a UserError."""
    if isinstance(image, str | Path):
        try:
            with Image.open(image) as im:
                return im.convert("RGB")
        except OSError as exc:
            raise UserError(f"sample {sample_id}: cannot open image '{image}' ({exc})") from exc
    if isinstance(image, Image.Image) and image.mode != "RGB":
        return image.convert("RGB")
    return image


def prepare_sample(sample: Mapping[str, Any], model: AnswerSpace, task: Any = None) -> dict[str, Any]:
    """A copy of ``sample`` with the image as PIL RGB and ``coords`` set to the space ``model`` answers in.

    Images are not resized here: the processor resizes within its min/max pixels, and for
    ``resized`` coordinates ``resized_size`` records the size the model will see.
    """
    out = dict(sample)
    image = open_image(out.get("image"), out.get("id", "?"))
    if image is not None:
        out["image"] = image
        out.setdefault("image_size", [image.width, image.height])
    if task is not None and task.coord_space == "none":
        out["coords"] = "none"
        return out
    out["coords"] = model.coord_space
    if model.coord_space == "resized":
        out["resized_size"] = model.resized_size(*out["image_size"])
    return out
