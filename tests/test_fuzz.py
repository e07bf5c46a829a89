"""A small share of ``benchmarks/fuzz.py`` (the full run is 100,000 completions per task; README of benchmarks):
every installed task's parser and reward, and every custom reward, on hostile completions (one 10 MB string
per task included): no exception, no NaN, nothing outside ``reward_range``, no call near the 0.5 s bar."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from perception_r1.registry import get_registry

FUZZ = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"
SHARE = 5000  # per task (every 2,000th completion is a 10 MB string): ~15 s for the four built-ins


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz", FUZZ)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(get_registry().tasks))
def test_fuzz_share(name):
    fuzz = _fuzz_module()
    stats = fuzz.fuzz_task(get_registry().tasks[name], SHARE, seed=1)
    assert stats.calls == SHARE
    assert (stats.exceptions, stats.nan, stats.out_of_range) == (0, 0, 0), stats.first_problem
    assert max(stats.times) < 2.0, f"{name}: {max(stats.times):.2f} s for one call (bar: 0.5 s, shared cores)"


def test_generator_covers_every_kind():
    fuzz = _fuzz_module()
    texts = list(fuzz.completions(['[{"bbox_2d": [1, 2, 3, 4], "label": "a"}]'], SHARE, seed=0))
    assert len(texts) == SHARE and max(map(len, texts)) == fuzz.TEN_MB
    assert any("9" * 400 in t for t in texts) and any(t.count("bbox_2d") >= 1000 for t in texts)


def test_every_hostile_file_class_ends_in_one_line(tmp_path):
    """The fuzz script's second table (issue 23): one error line, no traceback, per class; `$` names: a report."""
    rows = _fuzz_module().fuzz_files(tmp_path)
    assert len(rows) >= 8
    for name, code, errors, tracebacks, _seconds in rows:
        expected = ("0", "0") if name.endswith("(report: exit 0)") else ("2", "1")
        assert (code, errors, tracebacks) == (*expected, "0"), name
