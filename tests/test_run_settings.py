"""`run --set` reaches the run's config, named flags win over it, and `eval_every` records a held-out curve."""

from __future__ import annotations

import json

import yaml

from perception_r1.cli import main

TINY = ["--task", "ocr", "--threads", "1", "--set", "group_size=2", "--set", "prompts_per_step=1",
        "--set", "eval_batch_size=4"]


def test_set_is_kept_and_eval_every_writes_the_curve_between_before_and_after(tmp_path):
    out = tmp_path / "run"
    assert main(["run", *TINY, "--steps", "3", "--set", "eval_samples=4", "--set", "eval_every=2",
                 "--out", str(out)]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["eval_samples"] == 4 and config["eval_every"] == 2  # not the task's small-model 256
    results = json.loads((out / "eval.json").read_text())
    assert list(results) == ["before", "during", "after"]
    assert list(results["during"]) == ["2"] and set(results["during"]["2"]) == set(results["after"])
    assert len((out / "eval_step-2.jsonl").read_text().splitlines()) == 4


def test_a_named_flag_wins_over_set_of_the_same_key(tmp_path):
    out = tmp_path / "run"
    assert main(["run", *TINY, "--steps", "1", "--eval-samples", "2", "--set", "eval_samples=4",
                 "--out", str(out)]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["eval_samples"] == 2
