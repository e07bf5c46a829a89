"""`eval --out DIR` saves predictions batch by batch: a killed evaluation continues where it stopped and ends
with the metrics of an uninterrupted one; a finished, foreign or busy directory is refused with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import run_cli

from perception_r1.train import rundir

EVAL = ["eval", "--task", "counting", "--batch-size", "2", "--threads", "1", "--max-new-tokens", "24", "--json"]


def _eval(out, limit, **kwargs):
    return run_cli(*EVAL, "--limit", str(limit), "--out", str(out), **kwargs)


def _lines(path):
    return path.read_text().splitlines()


@pytest.mark.slow  # two evaluations of the embedded model and a killed one
def test_a_killed_evaluation_continues_to_the_same_metrics(tmp_path):
    whole = _eval(tmp_path / "whole", 24)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "perception_r1.cli", *EVAL, "--limit", "24", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    predictions = out / "predictions.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if predictions.exists() and len(_lines(predictions)) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists(), "the evaluation ended before the kill: nothing was tested"
    with predictions.open("a") as handle:  # what a kill inside a write leaves: a torn last line
        handle.write('{"id": "counting-heldout-0-')
    kept = len(_lines(predictions)) - 1
    resumed = _eval(out, 24)
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing {out}: {kept // 2 * 2} of 24 samples already answered" in resumed.stderr
    assert json.loads(resumed.stdout) == json.loads(whole.stdout)
    assert _lines(predictions) == _lines(tmp_path / "whole" / "predictions.jsonl")


def test_a_finished_or_foreign_directory_is_refused_untouched(tmp_path):
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "metrics.json").write_text("{}")
    result = _eval(finished, 2)
    assert result.returncode == 2 and "already holds a finished evaluation" in result.stderr
    assert (finished / "metrics.json").read_text() == "{}"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = _eval(foreign, 2)
    assert result.returncode == 2 and "notes.txt" in result.stderr and result.stderr.count("\n") == 1


def test_other_settings_do_not_continue_an_unfinished_evaluation(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    settings = {"task": "counting", "model": None, "coords": None, "data": None, "split": "val", "limit": 4,
                "batch_size": 2, "max_new_tokens": 24, "shuffle_images": False, "samples": 4, "sample_ids": "x"}
    (out / "eval_settings.json").write_text(json.dumps(settings))
    (out / "predictions.jsonl").write_text('{"id": "a"}\n')
    result = _eval(out, 6)
    assert result.returncode == 2 and "with other settings (limit: 4 there, 6 now)" in result.stderr
    assert (out / "predictions.jsonl").read_text() == '{"id": "a"}\n'


def test_a_directory_another_process_writes_is_refused(tmp_path):
    out = tmp_path / "busy"
    lock = rundir.acquire(out)  # this test process holds it, as a live `run` or `eval` would
    try:
        result = _eval(out, 2)
        assert result.returncode == 2 and f"is being written by process {os.getpid()}" in result.stderr
    finally:
        rundir.release(lock)
