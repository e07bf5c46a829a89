"""No silent success from settings or plugins: every number finite and bounded, a config read once, a plugin that
exits or overflows named in one line (issue 23's first class of findings)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import cli_in_process, make_dist

from perception_r1.contract import RewardError, task_rewards
from perception_r1.errors import UserError
from perception_r1.registry import get_registry
from perception_r1.train import config as cfg
from perception_r1.train.rewards import WeightedReward, score


def _error_line(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("perception-r1: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize(("setting", "key"), [
    ("rewards={grounding: .nan}", "rewards.grounding"), ("learning_rate=.inf", "learning_rate"),
    ("beta=.nan", "beta"), ("clip_eps=.nan", "clip_eps"), ("temperature=-.inf", "temperature"),
])
def test_nan_and_infinity_are_refused_with_the_key_named(setting, key):
    line = _error_line(cli_in_process("run", "--task", "grounding", "--set", setting))
    assert f"key '{key}'" in line and "not a finite number" in line


@pytest.mark.parametrize("setting", ["group_size=1000000000", "eval_samples=1000000000", "steps=100000000000",
                                     "threads=1000000000000", "seed=100000000000000000000"])
def test_sizes_past_any_sane_run_are_refused_before_anything_is_allocated(setting):
    line = _error_line(cli_in_process("run", "--task", "ocr", "--set", setting))
    assert f"key '{setting.split('=')[0]}'" in line and "maximum" in line


def test_a_flag_of_infinity_is_refused_too():
    assert "not a finite number" in _error_line(cli_in_process("run", "--task", "ocr", "--lr", "inf"))


def test_a_config_file_is_read_once_from_a_pipe(tmp_path):
    """`--config <(cat t.yaml)`: the settings are the file's, not the defaults a second, empty read gave."""
    read, write = os.pipe()
    os.write(write, b"steps: 7\ntemperature: 0.5\n")
    os.close(write)
    path = f"/dev/fd/{read}"
    from_file = cfg.read_config_file(path)
    os.close(read)
    config = cfg.resolve(path, {}, from_file=from_file)
    assert (config["steps"], config["temperature"]) == (7, 0.5)
    assert cfg.explicit_keys(from_file, {}) == {"steps", "temperature"}


def test_the_config_size_cap_counts_bytes_read_not_what_stat_says():
    with pytest.raises(UserError, match="larger than 1,000,000 bytes"):
        cfg.read_config_file("/dev/zero")  # stat says 0 bytes; unbounded before


def test_a_task_reward_that_calls_sys_exit_is_an_error_not_a_quiet_success(monkeypatch):
    task = get_registry().task("ocr")
    monkeypatch.setattr(task, "reward", lambda completion, sample: sys.exit(0))
    with pytest.raises(RewardError, match=r"task 'ocr' reward on sample 's1' raised SystemExit"):
        task_rewards(task, ["x"], [{"id": "s1", "solution": {"text": "x"}}])


def test_a_custom_reward_that_exits_or_overflows_is_named():
    task = get_registry().task("ocr")
    samples = [{"id": "a", "task": "ocr", "solution": {"text": "a"}}]
    with pytest.raises(RewardError, match="reward 'plug.exit' raised SystemExit"):
        score([WeightedReward("plug.exit", 1.0, fn=lambda c, s: sys.exit(0))], ["a"], samples)
    huge = [WeightedReward("ocr", 1e308, task=task), WeightedReward("plug.big", 1e308, fn=lambda c, s: [1.0])]
    with pytest.raises(RewardError, match=r"weighted reward of completion 0 is inf .*lower the weights"):
        score(huge, ["a"], samples)


EXITING_REWARD = """
import sys
from perception_r1 import hookimpl

def leave(completions, samples, **kw):
    sys.exit(0)

@hookimpl
def register_rewards(register):
    register("leaver.reward", leave)
"""


def test_a_run_whose_plugin_exits_ends_with_code_2(tmp_path, plugin_dir, small_model):
    """As a user sees it, through the console entry point: exit 0 was the bug."""
    make_dist(plugin_dir, "leaver-reward", "leaver_reward", EXITING_REWARD)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "perception_r1.cli", "run", "--task", "ocr", "--model", str(small_model), "--out",
         str(out), "--reward", "leaver.reward:0.1", "--set", "steps=1", "--set", "prompts_per_step=1",
         "--set", "group_size=2", "--set", "max_new_tokens=4", "--set", "eval_samples=0", "--threads", "1"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "reward 'leaver.reward' raised SystemExit" in done.stderr, done.stderr[-2000:]


def test_resume_never_records_fewer_steps_than_its_checkpoint_holds(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-6").mkdir(parents=True)
    (run / "checkpoints" / "step-6" / "state.json").write_text("{}")
    (run / "checkpoints" / "step-9.bak").mkdir()  # not a checkpoint of ours: ignored, never int()-ed
    (run / "config.yaml").write_text("task: ocr\nsteps: 6\n")
    line = _error_line(cli_in_process("run", "--resume", str(run), "--steps", "3"))
    assert "--steps 3 is below the step its latest checkpoint holds (6)" in line
    assert (run / "config.yaml").read_text() == "task: ocr\nsteps: 6\n"


def test_an_output_never_replaces_a_device_fifo_or_socket(tmp_path):
    from perception_r1.data import io

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        io.atomic_write_text(fifo, "x")
    assert fifo.exists() and not fifo.is_file()
    with pytest.raises(UserError, match="not a regular file"):
        io.atomic_write_text("/dev/null", "x")


def test_control_characters_from_a_file_never_reach_the_terminal():
    from perception_r1.cli import one_line

    shown = one_line("bad row: \x1b]0;pwned\x07 and \x9b2J")
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown and "\\x1b]0;pwned\\x07" in shown


@pytest.mark.parametrize("name", ["../escape", "a/b", "has space", "x" * 65, "tab\tname", "-leading", "é"])
def test_task_names_are_names_not_paths(name):
    from perception_r1.contract import contract_problems

    task = type("Named", (), {"name": name})()
    assert "needs a `name`" in contract_problems(task)[0]


@pytest.mark.parametrize(("template", "says"), [
    ("{expression.__class__.__mro__}", "is not a plain {name}"), ("{expression:>200000000}", "is not a plain"),
    ("{expression!r}", "is not a plain"), ('"{expression', "not a format string"), ("{0}", "is not a plain"),
])
def test_a_prompt_template_is_data_never_code(tmp_path, template, says):
    config = tmp_path / "run.yaml"
    config.write_text(f"prompt_templates:\n  grounding: '{template}'\n")
    line = _error_line(cli_in_process("run", "--task", "grounding", "--config", str(config)))
    assert "prompt_templates.grounding" in line and says in line


def test_a_template_field_no_sample_has_is_one_line():
    task = get_registry().task("grounding")
    renamed = type(task)(prompt_template="Find the {nothere}.")
    with pytest.raises(UserError, match=r"prompt template needs field 'nothere'"):
        renamed.prompt({"query": {"expression": "cat"}})


def test_a_reward_over_its_time_budget_is_stopped_with_one_line(monkeypatch):
    import time

    monkeypatch.setenv("PERCEPTION_R1_REWARD_SECONDS", "0.5")
    task = get_registry().task("ocr")
    monkeypatch.setattr(task, "reward", lambda completion, sample: time.sleep(10))
    start = time.monotonic()
    with pytest.raises(RewardError, match=r"task 'ocr' reward on sample 'z' took more than 0.5 s"):
        task_rewards(task, ["x"], [{"id": "z", "solution": {"text": "x"}}])
    assert time.monotonic() - start < 5


def test_a_custom_reward_that_backtracks_forever_is_stopped(monkeypatch):
    import re

    monkeypatch.setenv("PERCEPTION_R1_REWARD_SECONDS", "0.5")

    def backtracks(completions, samples, **_):
        return [float(bool(re.match(r"^answer:\s*((?:[a-z]+,?)+)\.$", "answer: " + "a" * 40 + "!")))]

    samples = [{"id": "a", "task": "ocr", "solution": {"text": "a"}}]
    with pytest.raises(RewardError, match="reward 'plug.slow' took more than 0.5 s for 1 completions"):
        score([WeightedReward("plug.slow", 1.0, fn=backtracks)], ["a"], samples)


def test_a_bad_reward_budget_setting_is_one_line(monkeypatch, tmp_path):
    records = tmp_path / "records.jsonl"
    records.write_text('{"completion": "a", "image_size": [10, 10], "solution": {"text": "a"}}\n')
    monkeypatch.setenv("PERCEPTION_R1_REWARD_SECONDS", "soon")
    assert "give a number of seconds" in _error_line(cli_in_process("score", "--task", "ocr", str(records)))


def test_report_regenerates_a_late_synthetic_image_in_bounded_memory(tmp_path):
    """Six records naming sample 9,999 once cost 3.18 GB (every sample up to it was cached with its image)."""
    import resource

    from perception_r1.evaluate.report import Images

    task = get_registry().task("grounding")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    images = Images()
    sample = images._synthetic(task, "val", 0, 9_999)
    assert sample["id"] == "grounding-heldout-0-9999" and len(images._kept) == 1
    assert images._synthetic(task, "val", 0, 9_999) is sample and images._synthetic(task, "val", 0, 5)["id"].endswith("-5")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, f"regenerating one late sample grew memory by {grown_mb:.0f} MB"


@pytest.mark.parametrize("returned", [None, {}, {"image": None}, {"solution": {"text": "a"}}])
def test_a_synthetic_generator_that_returns_no_sample_is_one_line(monkeypatch, returned):
    from perception_r1.data.synthetic import synthetic_samples

    task = get_registry().task("ocr")
    monkeypatch.setattr(task, "synthetic", lambda rng: returned)
    with pytest.raises(UserError, match=r"task 'ocr': synthetic\(\) returned .*not a sample with 'image' and 'solution'"):
        synthetic_samples(task, "val", 2)


def test_numpy_rewards_and_components_are_numbers_and_the_log_stays_json(monkeypatch):
    import json

    import numpy as np

    from perception_r1.contract import RewardResult

    task = get_registry().task("ocr")
    monkeypatch.setattr(task, "reward", lambda c, s: RewardResult(np.float32(0.5), {"format": np.float64(1.0)}))
    samples = [{"id": "n", "task": "ocr", "solution": {"text": "a"}}]
    result = task_rewards(task, ["a"], samples)[0]
    assert type(result.total) is float and json.dumps(result.components) == '{"format": 1.0}'
    totals, _ = score([WeightedReward("plug.np", 1.0, fn=lambda c, s: [np.float32(0.25)])], ["a"], samples)
    assert totals == [0.25]
    monkeypatch.setattr(task, "reward", lambda c, s: RewardResult(0.5, {"format": "yes"}))
    with pytest.raises(RewardError, match="component 'format' = 'yes': not a finite number"):
        task_rewards(task, ["a"], samples)
    with pytest.raises(RewardError, match="not a finite number"):
        score([WeightedReward("plug.bool", 1.0, fn=lambda c, s: [np.bool_(True)])], ["a"], samples)
