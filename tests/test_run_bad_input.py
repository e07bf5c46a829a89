"""`perception-r1 run` on bad input: one line naming what is wrong, exit 2, nothing already written lost."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import cli_in_process, make_dist, run_cli

SMALL = "steps: 3\nprompts_per_step: 2\ngroup_size: 2\nmax_new_tokens: 8\neval_samples: 0\nthreads: 1\n"

FLAKY_REWARD = """
import math
from perception_r1 import hookimpl

calls = {"n": 0}

def flaky(completions, samples, **kw):
    calls["n"] += 1
    if calls["n"] >= 2:
        return [float("nan")] * len(completions) if MODE == "nan" else 1 / 0
    return [0.0] * len(completions)

@hookimpl
def register_rewards(register):
    register("flaky.reward", flaky)
"""


def _run(tmp_path, *args, config=SMALL, as_user=False):
    path = tmp_path / "run.yaml"
    path.write_text(config)
    return (run_cli if as_user else cli_in_process)("run", "--config", str(path), *args)


def _one_line_exit_2(result, *needles):
    assert result.returncode == 2, result.stderr[-2000:]
    # progress lines may come first (stderr); the error is one line, the last, with no traceback
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("perception-r1: error:") and "Traceback" not in result.stderr, result.stderr
    assert sum(line.startswith("perception-r1: error:") for line in result.stderr.splitlines()) == 1
    for needle in needles:
        assert needle in last, result.stderr


def test_unknown_task(tmp_path, small_model):
    """The console entry point itself (a subprocess): one line, exit code 2."""
    result = _run(tmp_path, "--task", "nope", "--model", str(small_model), as_user=True)
    _one_line_exit_2(result, "unknown task 'nope'")


def test_a_task_named_twice_is_refused_not_run_as_a_mix(tmp_path, small_model):
    _one_line_exit_2(_run(tmp_path, "--task", "ocr, ocr", "--model", str(small_model)), "task ocr named twice")


def test_config_errors_come_before_any_heavy_import(tmp_path):
    """`run --task nope` answers without importing torch (it took 8 s when accelerate started first)."""
    code = ("import sys; from perception_r1.cli import main; rc = main(['run', '--task', 'nope']); "
            "sys.exit(rc if 'torch' not in sys.modules else 99)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr


def test_a_run_that_fails_before_writing_leaves_no_directory(tmp_path, small_model):
    out = tmp_path / "never"
    _one_line_exit_2(_run(tmp_path, "--task", "nope", "--model", str(small_model), "--out", str(out)), "unknown task")
    assert not out.exists()


def test_unknown_reward(tmp_path, small_model):
    result = _run(tmp_path, "--task", "ocr", "--model", str(small_model), "--reward", "nope.reward:0.5",
                  "--out", str(tmp_path / "out"))
    _one_line_exit_2(result, "unknown reward 'nope.reward'")


def test_bad_config_key(tmp_path, small_model):
    result = _run(tmp_path, "--model", str(small_model), config=SMALL + "group_size: 1\n")
    _one_line_exit_2(result, "key 'group_size'", "minimum of 2")


def test_missing_model_dir(tmp_path):
    _one_line_exit_2(_run(tmp_path, "--model", str(tmp_path / "nowhere")), "does not exist")


def test_out_dir_with_a_run_is_not_overwritten(tmp_path, small_model):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("precious: true\n")
    _one_line_exit_2(_run(tmp_path, "--model", str(small_model), "--out", str(out)), "already holds a run")
    assert (out / "config.yaml").read_text() == "precious: true\n"


def _flaky_run(tmp_path, plugin_dir, small_model, mode):
    make_dist(plugin_dir, "flaky-reward", "flaky_reward", FLAKY_REWARD.replace("MODE", repr(mode)))
    out = tmp_path / "out"
    result = _run(tmp_path, "--task", "ocr", "--model", str(small_model), "--out", str(out),
                  "--reward", "ocr:1", "--reward", "flaky.reward:0.1")
    return result, out


def test_reward_plugin_that_raises_mid_run(tmp_path, plugin_dir, small_model):
    result, out = _flaky_run(tmp_path, plugin_dir, small_model, "raise")
    _one_line_exit_2(result, "reward 'flaky.reward' raised ZeroDivisionError")
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1]  # the step logged before the failure is kept
    assert (out / "config.yaml").is_file()


def test_reward_plugin_that_returns_nan_is_not_silently_zero(tmp_path, plugin_dir, small_model):
    result, out = _flaky_run(tmp_path, plugin_dir, small_model, "nan")
    _one_line_exit_2(result, "reward 'flaky.reward' returned nan", "not a finite number")
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
