"""Hostile inputs (issue 15), one section per class: model output never crashes a reward; user files give one
line ``FILE:LINE: reason`` and exit 2; nothing that existed is overwritten; memory and time are bounded; user
text is never console markup; images are read only from where the rule allows."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_dist

from perception_r1.cli import main
from perception_r1.registry import get_registry

BIG = "9" * 400


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """The command in this process (no interpreter start-up): exit code, stdout, stderr."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(result: tuple[int, str, str], *parts: str) -> None:
    code, _, err = result
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("perception-r1: error:"), err
    for part in parts:
        assert part in lines[0], (part, lines[0])


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


OCR_ROW = {"completion": "hello", "image_size": [10, 10], "solution": {"text": "hello"}}

# -- 1. model output never crashes a reward ----------------------------------------------------------
HOSTILE = [
    f"[0, 0, {BIG}, 1]", f'[{{"bbox_2d": [0, 0, {BIG}, 1], "label": "a"}}]', BIG, f"({BIG},1),({BIG},3)",
    "[1e400, 0, 1, 1]", "[NaN, 0, 1, 1]", "[Infinity]", "-" + BIG, "[" * 100_000, '{"a":' * 100_000,
    "(1,2)" * 20_000, "\ud800\x00", "x" * 2_000_000,
]


@pytest.mark.parametrize("name", sorted(get_registry().tasks))
def test_every_task_rewards_any_text_inside_its_range(name):
    import random

    task = get_registry().tasks[name]
    sample = task.synthetic(random.Random(0))
    lo, hi = task.reward_range
    for text in HOSTILE:
        total = task.reward(text, sample).total
        assert math.isfinite(total) and lo <= total <= hi, (name, text[:40], total)


def _broken(monkeypatch, name="ocr"):
    task = get_registry().tasks[name]

    def reward(completion, sample):
        raise ZeroDivisionError("boom\nsecond line")

    monkeypatch.setattr(task, "reward", reward)
    return task


def test_a_task_reward_that_raises_is_one_line_naming_task_and_sample(monkeypatch, capsys, tmp_path):
    from perception_r1.train.rewards import RewardError, WeightedReward, score

    task = _broken(monkeypatch)
    with pytest.raises(RewardError, match=r"task 'ocr' reward on sample 's7' raised ZeroDivisionError: boom second"):
        score([WeightedReward("ocr", 1.0, task=task)], ["x"], [{"id": "s7", "task": "ocr", "solution": {"text": "a"}}])
    src = write_jsonl(tmp_path / "c.jsonl", [{**OCR_ROW, "id": "row-1"}])
    one_line_error(cli(capsys, "score", "--task", "ocr", src), "task 'ocr' reward on sample 'row-1'")


def test_a_task_reward_out_of_range_is_refused(monkeypatch):
    from perception_r1.contract import RewardResult
    from perception_r1.evaluate.evaluation import record_of
    from perception_r1.train.rewards import RewardError

    task = get_registry().tasks["ocr"]
    monkeypatch.setattr(task, "reward", lambda c, s: RewardResult(float("nan"), {}))
    with pytest.raises(RewardError, match="task 'ocr' reward on sample 'q' returned nan"):
        record_of({"id": "q", "solution": {"text": "a"}}, "a", task)


def test_a_task_evaluate_that_raises_is_one_line(monkeypatch, capsys, tmp_path):
    task = get_registry().tasks["ocr"]
    monkeypatch.setattr(task, "evaluate", lambda records: 1 / 0)
    src = write_jsonl(tmp_path / "c.jsonl", [OCR_ROW])
    one_line_error(cli(capsys, "score", "--task", "ocr", src), "task 'ocr' evaluate raised ZeroDivisionError")


# -- 3. data loss ---------------------------------------------------------------------------------------
def test_score_out_never_onto_the_input_nor_over_a_file(capsys, tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", [OCR_ROW])
    before = src.read_bytes()
    one_line_error(cli(capsys, "score", "--task", "ocr", src, "--out", src), "is the input file")
    os.link(src, tmp_path / "hard.jsonl")
    one_line_error(cli(capsys, "score", "--task", "ocr", src, "--out", tmp_path / "hard.jsonl", "--force"),
                   "is the input file")
    other = tmp_path / "other.jsonl"
    other.write_text("mine\n")
    one_line_error(cli(capsys, "score", "--task", "ocr", src, "--out", other), "exists", "--force")
    assert other.read_text() == "mine\n" and src.read_bytes() == before
    assert cli(capsys, "score", "--task", "ocr", src, "--out", other, "--force")[0] == 0
    assert json.loads(other.read_text())["reward"] == 1.0


def test_run_refuses_a_directory_with_foreign_files(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "eval.json").write_text('{"before": {"x": 1}}')
    one_line_error(cli(capsys, "run", "--task", "ocr", "--out", out), "is not empty", "eval.json")
    assert (out / "eval.json").read_text() == '{"before": {"x": 1}}' and sorted(os.listdir(out)) == ["eval.json"]


def test_one_writer_per_run_directory_and_stale_locks(capsys, tmp_path):
    from perception_r1.train import rundir
    from perception_r1.train.config import dump_yaml, resolve

    run = tmp_path / "run"
    with rundir.locked(run):
        (run / "config.yaml").write_text(dump_yaml({**resolve(None, {"task": "ocr"}), "out": str(run)}))
        one_line_error(cli(capsys, "run", "--resume", run), "is being written by process", str(os.getpid()))
        with pytest.raises(Exception, match="being written"):
            rundir.acquire(run)
    assert not (run / "run.lock").exists()  # released
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    assert rundir.acquire(run) == run / "run.lock"  # a stale lock is taken over
    assert json.loads((run / "run.lock").read_text())["pid"] == os.getpid()


def test_resume_repairs_what_a_kill_leaves(tmp_path):
    from perception_r1.errors import UserError
    from perception_r1.train import rundir

    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"st')
    (tmp_path / "completions.jsonl").write_text('{"step": 1, "completion": "a"}\n{"step": 2, "comp')
    (tmp_path / "checkpoints" / ".tmp-step-4-123").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-2").mkdir()
    rundir.repair_logs(tmp_path, 2)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'
    assert (tmp_path / "completions.jsonl").read_text() == '{"step": 1, "completion": "a"}\n'
    assert rundir.remove_partial_checkpoints(tmp_path / "checkpoints") == [".tmp-step-4-123"]
    assert os.listdir(tmp_path / "checkpoints") == ["step-2"]
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(UserError, match=r"metrics.jsonl:2: not a log line"):
        rundir.repair_logs(tmp_path, 2)


def test_sft_out_equal_to_model_is_refused(capsys, tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    one_line_error(cli(capsys, "sft", "--task", "ocr", "--model", model, "--out", model), "is the --model directory")
    assert (model / "config.json").read_text() == "{}"


# -- 2. user files: one line FILE:LINE: reason, exit 2 ----------------------------------------------------
def test_plugin_that_calls_sys_exit_on_import(capsys, plugin_dir):
    make_dist(plugin_dir, "exiter", "exiter_plugin", "import sys\nsys.exit(0)\n")
    one_line_error(cli(capsys, "tasks"), "plugin 'exiter_plugin'", "failed to import: SystemExit")


@pytest.mark.parametrize("target", ["perception_r1.tasks.ocr", "json"])
def test_plugin_whose_entry_point_names_a_builtin_module(capsys, plugin_dir, target):
    make_dist(plugin_dir, "impostor", "impostor_plugin", "")
    info = next(plugin_dir.glob("impostor-*.dist-info"))
    (info / "entry_points.txt").write_text(f"[perception_r1]\nimpostor = {target}\n")
    one_line_error(cli(capsys, "tasks"), "plugin 'impostor'", f"'{target}'", "not a plugin")


# -- 5. console output escapes user text -------------------------------------------------------------------
def test_markup_in_file_names_is_printed_as_text(capsys, tmp_path):
    weird = tmp_path / "[x]"
    weird.mkdir()
    src = write_jsonl(weird / "[bold]c[x].jsonl", [OCR_ROW])
    code, out, err = cli(capsys, "score", "--task", "ocr", src, "--out", weird / "[red]y.jsonl")
    assert code == 0, err
    assert "[bold]c[x].jsonl" in out.replace("\n", "").replace(" ", "").replace("│", "")
    assert (weird / "[red]y.jsonl").is_file()
    from rich.console import Console

    from perception_r1.display import console, progress

    assert console.is_dumb_terminal or isinstance(console, Console)
    console.print("[/x] run dir")  # was MarkupError: user text is never markup
    with progress() as bar:
        bar.add_task("GRPO [/x]", total=1, status="[/y]")
