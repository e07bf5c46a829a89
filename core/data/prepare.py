"""A sample made ready for a model: its image opened as RGB, its answer space set to the model's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from perception_r1.contract import Task
from perception_r1.data import limits
from perception_r1.errors import UserError


class AnswerSpace(Protocol):
    """What preparing a sample needs to know of a model (``Policy`` is one)."""

    @property
    def coord_space(self) -> str: ...

    def resized_size(self, width: int, height: int) -> list[int]: ...


def open_image(image: Any, sample_id: str) -> tuple[Image.Image | None, list[int] | None]:
    """``image`` (a PIL image, a path, or None) as an RGB PIL image, and its original ``[w, h]``.

    An unreadable file or one past :data:`~perception_r1.data.limits.MAX_IMAGE_PIXELS` (a decompression bomb)
    is a UserError; a large image is downscaled to :data:`~perception_r1.data.limits.MAX_KEPT_PIXELS`."""
    if isinstance(image, str | Path):
        try:
            with Image.open(image) as im:
                if problem := limits.pixels_problem(im):
                    raise UserError(f"sample {sample_id}: {image}: {problem}")
                return limits.decode_capped(im), [im.width, im.height]
        except (OSError, Image.DecompressionBombError) as exc:
            raise UserError(f"sample {sample_id}: cannot open image '{image}' ({exc})") from exc
    if isinstance(image, Image.Image):
        size = [image.width, image.height]
        if problem := limits.pixels_problem(image):
            raise UserError(f"sample {sample_id}: {problem}")
        if image.mode != "RGB" or image.width * image.height > limits.MAX_KEPT_PIXELS:
            return limits.decode_capped(image), size
        return image, size
    return image, None


def prepare_sample(sample: Mapping[str, Any], model: AnswerSpace, task: Task) -> dict[str, Any]:
    """A copy of ``sample`` for ``task`` and ``model``: the image as PIL RGB, ``coords`` the space the model
    answers in (``none`` for a task without coordinates), ``task`` the task's name.

    Images are not resized here: the processor resizes within its min/max pixels, and for
    ``resized`` coordinates ``resized_size`` records the size the model will see.
    """
    out = dict(sample)
    out["task"] = task.name
    image, size = open_image(out.get("image"), out.get("id", "?"))
    if image is not None:
        out["image"] = image
        out.setdefault("image_size", size)
    if task.coord_space == "none":
        out["coords"] = "none"
        return out
    out["coords"] = model.coord_space
    if model.coord_space == "resized":
        seen = [image.width, image.height] if image is not None else out["image_size"]  # downscaled: what the model sees
        out["resized_size"] = model.resized_size(*seen)
    return out
