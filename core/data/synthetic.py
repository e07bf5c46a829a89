"""Where samples come from: a task's synthetic generator (the embedded default) or its real-data loader.

Splits of synthetic data are disjoint by construction: each split draws from its own seeded stream.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator
from typing import Any

from perception_r1.contract import Task, UserError

#: the framework's splits (as `--data` names them) -> the synthetic stream each draws from. The stream's name is
#: in every seed and sample id (``<task>-<stream>-<seed>-<index>``): "heldout" stays, so every published number
#: and every saved id still holds
STREAMS = {"train": "train", "val": "heldout"}
SPLITS = tuple(STREAMS)


def split_seed(task_name: str, split: str, seed: int) -> int:
    """A stable seed per (task, split, seed): same samples on every machine and Python version."""
    digest = hashlib.sha256(f"{task_name}/{split}/{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def synthetic_stream(task: Task, split: str, seed: int = 0) -> Iterator[dict[str, Any]]:
    """The synthetic samples of ``task`` for ``split`` ("train" or "val"), in order, each with an ``id``: one
    at a time, so a caller that needs sample 9,999 holds one image, not ten thousand."""
    if split not in STREAMS:
        raise ValueError(f"unknown split '{split}' (splits: {', '.join(SPLITS)})")
    stream = STREAMS[split]
    rng = random.Random(split_seed(task.name, stream, seed))
    for i in itertools.count():
        sample = task.synthetic(rng)
        if not isinstance(sample, dict) or "solution" not in sample or "image" not in sample:
            raise UserError(f"task '{task.name}': synthetic() returned {str(sample)[:60]!r}, not a sample with "
                            "'image' and 'solution' (see `perception-r1 docs`)")
        sample.setdefault("id", f"{task.name}-{stream}-{seed}-{i}")
        sample["task"] = task.name
        yield sample


def synthetic_samples(task: Task, split: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """The first ``n`` samples of :func:`synthetic_stream`."""
    return list(itertools.islice(synthetic_stream(task, split, seed), n))
