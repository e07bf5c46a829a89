"""The paper's headline results (PAPER.md), in this project's metric names and units.

Accuracies and F1 are fractions and edit distance is a fraction here (the paper quotes percent), COCO AP
is 0-100 in both. ``lookup`` returns, for a benchmark name such as ``"RefCOCO val"``, each reported
metric as ``(base model, Perception-R1)``.
"""

from __future__ import annotations

#: benchmark -> (task, {metric: (base, Perception-R1)})
HEADLINE: dict[str, tuple[str, dict[str, tuple[float, float]]]] = {
    "RefCOCO val": ("grounding", {"acc@0.5": (0.868, 0.891)}),
    "RefCOCO testA": ("grounding", {"acc@0.5": (0.896, 0.914)}),
    "RefCOCO testB": ("grounding", {"acc@0.5": (0.820, 0.845)}),
    "RefCOCO+ val": ("grounding", {"acc@0.5": (0.771, 0.817)}),
    "RefCOCO+ testA": ("grounding", {"acc@0.5": (0.825, 0.868)}),
    "RefCOCO+ testB": ("grounding", {"acc@0.5": (0.701, 0.743)}),
    "RefCOCOg val": ("grounding", {"acc@0.5": (0.833, 0.857)}),
    "RefCOCOg test": ("grounding", {"acc@0.5": (0.831, 0.854)}),
    "PixMo-Count val": ("counting", {"accuracy": (0.602, 0.781)}),
    "PixMo-Count test": ("counting", {"accuracy": (0.505, 0.756)}),
    # the paper's first version; a later one reports 2.8 edit distance with the same F1
    "PageOCR": ("ocr", {"edit_distance": (0.080, 0.035), "f1": (0.944, 0.982)}),
    "COCO val2017": ("detection", {"AP": (16.1, 31.9), "AP50": (23.7, 46.7), "AP75": (16.7, 33.4)}),
}

#: the paper's measured perceptual perplexity (mean number of matchings per sample)
PERPLEXITY = {"PixMo-Count": 229_202.0, "COCO": 3.47e83, "RefCOCO": 1.0, "PageOCR": 1.0}


def lookup(task: str, benchmark: str | None) -> dict[str, tuple[float, float]]:
    """The paper's numbers for ``benchmark`` when it is one of the paper's and belongs to ``task``, else {}."""
    if benchmark is None or benchmark not in HEADLINE:
        return {}
    owner, numbers = HEADLINE[benchmark]
    return dict(numbers) if owner == task else {}
