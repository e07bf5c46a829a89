"""The verdicts of benchmarks/paper_findings.py on hand-made rows (its run end to end on a very small model:
tests/test_benchmarks_smoke.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_verdicts_say_when_a_direction_does_not_reproduce() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import paper_findings
    finally:
        sys.path.remove(str(BENCHMARKS))

    def row(task, multi, sft, rl, higher=True, best=1.0):
        return {"task": task, "perplexity": {"multi_object": multi, "log10_mean": 2.0 if multi else 0.0},
                "sft": sft, "rl": rl, "higher_is_better": higher, "best": best, "metric": "m", "base": 0.0,
                "sequential": []}

    single = [row("grounding", False, [0.5], [0.51]), row("ocr", False, [0.4], [0.39], higher=False, best=0.0)]
    grows = single + [row("counting", True, [0.3], [0.5]), row("detection", True, [10.0], [20.0], best=100.0)]
    assert paper_findings.advantage(single[1]) == pytest.approx([1.0])  # edit distance down 0.01 = +1 %
    assert "(a) reproduced" in paper_findings.verdict(grows)
    flat = single + [row("counting", True, [0.3], [0.2]), row("detection", True, [10.0], [10.0], best=100.0)]
    assert "NOT reproduced" in paper_findings.verdict(flat)
    # the order holds only because RL hurt the single-answer tasks, and one multi-object seed lost: partly
    hurt = [row("grounding", False, [0.5], [0.4]), row("counting", True, [0.3, 0.4], [0.32, 0.38])]
    assert "partly reproduced" in paper_findings.verdict(hurt)
    detection = {**row("detection", True, [1.0, 1.0], [3.0, 2.0], best=100.0), "sequential": [2.0, 2.5]}
    assert "partly reproduced" in paper_findings.matching_table(detection)[1]
