"""Real data from local files (no hub is reachable): the task reads its own formats through ``Task.load``.

Each task documents the layouts it reads in its ``load`` (the built-ins: the paper's RefCOCO family,
PixMo-Count, page OCR and COCO 2017); samples come back in the task contract's format (see
:mod:`perception_r1.contract`), boxes in original-image pixels xyxy, validated against the task's
``solution_schema``. Here the task is asked, and whatever goes wrong becomes one line a user can act on: a
bad row names ``file:row`` (JSONL/parquet: 1-based row; JSON lists: 1-based entry). Image files must lie
inside ``--data`` (see :mod:`perception_r1.data.limits`).
"""

from __future__ import annotations

from pathlib import Path

from perception_r1.contract import Loaded, Task
from perception_r1.data import limits
from perception_r1.errors import UserError

__all__ = ["Loaded", "load_samples"]


def load_samples(task: Task, path: str | Path, split: str = "val", limit: int | None = None) -> Loaded:
    """At most ``limit`` samples of ``split`` of ``task`` from ``path``, read by the task's own ``load``."""
    from perception_r1.data.hf import cached_hub_dataset

    root = Path(path)
    if not root.exists() and not cached_hub_dataset(str(path)):
        raise UserError(f"--data {root} does not exist (nor is it a Hub data set in the local datasets cache)")
    try:
        with limits.image_roots(root if root.is_dir() else root.parent):  # images only from inside the data
            loaded = task.load(str(root), split, limit)
    except UserError:
        raise
    except NotImplementedError as exc:
        raise UserError(f"--data: {exc}") from exc
    except (ValueError, OSError) as exc:  # task loaders name the file:row at fault
        raise UserError(f"--data: {exc}".replace("\n", " ")) from exc
    except (TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RecursionError) as exc:
        # a value of the wrong type where a loader trusted the file (COCO ``image_id: [1]``, a count of inf,
        # ``dataset_dict.json`` ``{"splits": 5}``): one line naming the data and the task, whatever the loader
        raise UserError(f"--data {root}: task '{task.name}' cannot read it: a malformed file or value "
                        f"({type(exc).__name__}: {str(exc)[:200]})".replace("\n", " ")) from exc
    if not isinstance(loaded, Loaded):  # a loader that returns bare samples
        loaded = Loaded(list(loaded), "task-loader")
    for sample in loaded.samples:
        sample["task"] = task.name
    if limit is not None:
        loaded.samples = loaded.samples[:limit]
    return loaded
