"""A tiny GRPO run moves its reward in the right direction: the loop really optimises what it is given."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import make_dist, run_cli

pytestmark = pytest.mark.slow

# A reward a policy can learn within a few steps: answer briefly (an early <|im_end|>).
SHORT_REWARD = """
from perception_r1 import hookimpl

@hookimpl
def register_rewards(register):
    register("short.answer", lambda completions, samples, **kw: [max(0.0, 1 - len(c) / 40) for c in completions])
"""

CONFIG = """
task: ocr
steps: 24
prompts_per_step: 4
group_size: 8
max_new_tokens: 24
learning_rate: 3.0e-3
eval_samples: 0
checkpoint_every: 0
threads: 1
rewards: {ocr: 0, short.answer: 1.0}  # the custom reward alone: the task's own at weight 0
"""


def test_reward_rises_and_kl_grows_from_zero(tmp_path, plugin_dir, small_model):
    make_dist(plugin_dir, "short-reward", "short_reward", SHORT_REWARD)
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    result = run_cli("run", "--config", str(config), "--model", str(small_model), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first = sum(r["reward"] for r in rows[:6]) / 6
    last = sum(r["reward"] for r in rows[-6:]) / 6
    assert last > first + 0.1, f"reward did not rise: first steps {first:.3f}, last steps {last:.3f}"
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6) and rows[-1]["kl"] > 0  # policy left the reference
    lengths = [r["completion_length"] for r in rows]
    assert sum(lengths[-6:]) < sum(lengths[:6])  # and it did so by answering shorter, as rewarded


CONSTANT_REWARD = """
from perception_r1 import hookimpl

@hookimpl
def register_rewards(register):
    register("constant.half", lambda completions, samples, **kw: [0.5 for _ in completions])
"""


def test_no_reward_difference_means_no_update(tmp_path, plugin_dir, small_model):
    """Equal rewards in every group give GRPO nothing to learn: the weights must not drift on float noise."""
    from safetensors.torch import load_file

    from perception_r1.model.policy import Policy

    make_dist(plugin_dir, "constant-reward", "constant_reward", CONSTANT_REWARD)
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.replace("steps: 24", "steps: 5").replace("short.answer", "constant.half")
                      .replace("checkpoint_every: 0", "checkpoint_every: 5"))  # fmt: skip
    out = tmp_path / "run"
    result = run_cli("run", "--config", str(config), "--model", str(small_model), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["zero_std_groups"] == 1.0 and r["update_skipped"] for r in rows)
    console = " ".join((result.stdout + result.stderr).split())
    assert "5 of 5 updates skipped" in console and "100% of groups had all-equal rewards" in console  # told why
    assert "dynamic_sampling=true" in console and "temperature" in console  # and what to try
    assert "flat groups 100% update skipped" in console  # on every step's line too
    assert all(r["kl"] == pytest.approx(0.0, abs=1e-6) for r in rows)
    start = Policy.load(small_model).model.state_dict()
    end = load_file(out / "checkpoints" / "step-5" / "model.safetensors")
    assert set(end) <= set(start) and all(torch.equal(start[k], end[k]) for k in end)
