"""RL headroom (`eval --samples K`): sampled mean, best-of-K and the share of prompts with no reward spread."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

from perception_r1.evaluate.headroom import headroom_of


def test_headroom_by_hand():
    groups = [[0.0, 1.0, 0.5, 0.5], [0.2, 0.2, 0.2, 0.2], [1.0, 1.0, 1.0, 0.0]]
    assert headroom_of(groups) == pytest.approx({
        "sampled_mean_reward": (0.5 + 0.2 + 0.75) / 3,
        "best_of_4_reward": (1.0 + 0.2 + 1.0) / 3,
        "all_equal_share": 1 / 3,
    })
    with pytest.raises(ValueError):
        headroom_of([[]])


@pytest.mark.slow  # samples the embedded model
def test_eval_samples_reports_headroom_in_its_json_and_report(tmp_path):
    out = tmp_path / "out"
    result = run_cli("eval", "--task", "ocr", "--limit", "4", "--samples", "3", "--threads", "1", "--json",
                     "--max-new-tokens", "16", "--out", str(out))
    assert result.returncode == 0, result.stderr
    head = json.loads(result.stdout)["headroom"]
    assert head["k"] == 3 and head["temperature"] == 0.7  # the OCR task's run temperature on a small model
    assert head["sampled_mean_reward"] <= head["best_of_3_reward"] and 0 <= head["all_equal_share"] <= 1
    assert json.loads((out / "metrics.json").read_text())["headroom"] == head
    assert "RL headroom: 3 samples per prompt" in (out / "report.html").read_text()
