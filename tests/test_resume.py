"""Kill a training run with SIGKILL at a random step, resume it, and get exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

STEPS = 6
CONFIG = f"""
task: ocr  # edit similarity varies even for an untrained model: real gradients from step 1
steps: {STEPS}
prompts_per_step: 2
group_size: 4
max_new_tokens: 12
eval_samples: 0
checkpoint_every: 1
log_completions_every: 1
threads: 1
"""


def _command(out: Path, config: Path, model: Path, resume: bool = False) -> list[str]:
    base = [sys.executable, "-m", "perception_r1.cli", "run"]
    if resume:
        return [*base, "--resume", str(out)]
    return [*base, "--config", str(config), "--model", str(model), "--out", str(out)]


def _metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for row in rows:  # wall-clock and memory fields differ between runs by nature
        row.pop("seconds"), row.pop("generation_seconds"), row.pop("peak_rss_mb")
    return rows


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "checkpoints" / f"step-{STEPS}" / "model.safetensors")


@pytest.mark.parametrize("menu", ["", "recipe: dapo  # dynamic sampling draws more prompts: still a pure function of the step\n"])
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path, small_model, menu):
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG + menu)
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    straight = tmp_path / "straight"
    subprocess.run(_command(straight, config, small_model), check=True, env=env, capture_output=True, timeout=600)

    rng = random.Random()
    kill_after = rng.randint(1, STEPS - 2)  # a random step; the kill may land inside a checkpoint write
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_command(killed, config, small_model), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= kill_after:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = len(metrics.read_text().splitlines()) if metrics.exists() else 0
    assert done_at_kill < STEPS, "the run finished before it could be killed: nothing was resumed"
    assert (killed / "run.lock").is_file()  # left by the killed process: stale, taken over without a manual step
    with metrics.open("a") as handle:  # what a kill inside a log write leaves, and inside a checkpoint write
        handle.write('{"step": 99, "rew')
    (killed / "checkpoints" / ".tmp-step-99-1").mkdir(parents=True)

    resumed = subprocess.run(_command(killed, config, small_model, resume=True), env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert not (killed / "run.lock").exists() and not list((killed / "checkpoints").glob(".tmp-step-*"))
    assert _metrics(killed) == _metrics(straight), f"killed after step {kill_after}"
    assert not menu or all(row["sampling_tries"] >= 1 for row in _metrics(straight))
    a, b = _weights(straight), _weights(killed)
    first = load_file(straight / "checkpoints" / "step-1" / "model.safetensors")
    assert any(not torch.equal(a[k], first[k]) for k in a), "training did not change the weights"
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), f"weights differ after resume (killed after step {kill_after})"


def test_resume_of_a_non_run_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "perception_r1.cli", "run", "--resume", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no config.yaml there" in result.stderr


def test_kill_before_the_first_checkpoint_restarts_the_logs(tmp_path, small_model):
    """Step 1 logged, then killed before its checkpoint: the resumed run must not log step 1 twice."""
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.replace(f"steps: {STEPS}", "steps: 3"))
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = tmp_path / "run"
    subprocess.run(_command(out, config, small_model), check=True, env=env, capture_output=True, timeout=600)
    full = _metrics(out)
    # the state a kill leaves between the first metrics line and the first checkpoint
    shutil.rmtree(out / "checkpoints")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text(lines[0] + "\n")
    resumed = subprocess.run(_command(out, config, small_model, resume=True), env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert _metrics(out) == full
