"""The paper's numbers beside ours: each task declares them (``Task.paper_benchmarks``), this reads them.

Accuracies and F1 are fractions and edit distance is a fraction here (the paper quotes percent), COCO AP
is 0-100 in both, as each task's metrics are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from perception_r1.contract import Task


def lookup(task: Task, benchmark: str | None) -> dict[str, tuple[float, float]]:
    """``{metric: (base model, Perception-R1)}`` of ``benchmark`` when ``task`` reads it, else {}."""
    entry = task.paper_benchmarks.get(benchmark) if benchmark else None
    return dict(entry.metrics) if entry is not None else {}


def perplexities(tasks: Iterable[Task]) -> dict[str, float]:
    """``{"<task> (<data set>)": perplexity}`` for the first benchmark of each task the paper measured it on
    (the data set is the benchmark's name before its split: ``PixMo-Count val`` -> ``PixMo-Count``)."""
    out = {}
    for task in tasks:
        for name, entry in task.paper_benchmarks.items():
            if entry.perplexity is not None and math.isfinite(entry.perplexity):
                out[f"{task.name} ({name.split(' ')[0]})"] = entry.perplexity
                break
    return out
