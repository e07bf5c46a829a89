"""Hostile files and paths (issue 23, third round): every class ends in one line and exit 2 with nothing
half-written left: huge lines and truth lists, non-UTF-8 and over-long paths, a full disk, broken checkpoints,
model directories and data files."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import cli_in_process

from perception_r1.cli import user_os_error
from perception_r1.data import io, limits
from perception_r1.errors import UserError


def _one_line(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("perception-r1: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# -- sizes: lines and truth lists -------------------------------------------------------------------
def test_a_line_past_the_cap_is_a_file_line_error_read_in_bounded_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text('{"a": 1}\n' + '{"completion": "' + "x" * (io.MAX_LINE_BYTES + 10) + '"}\n')
    rows = io.read_jsonl(path)
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(UserError, match=r"big.jsonl:2: line longer than"):
        next(rows)


def test_score_of_dev_zero_is_one_line():
    assert "/dev/zero:1: line longer than" in _one_line(cli_in_process("score", "--task", "ocr", "/dev/zero"))


def test_a_truth_with_more_objects_than_the_cap_is_refused_before_matching(tmp_path):
    """100k truth boxes against 300 predictions took 207 s and 2.8 GB; now the record is refused as it is read."""
    n = limits.MAX_OBJECTS + 1
    boxes = [[i % 50, i % 40, i % 50 + 5, i % 40 + 5] for i in range(n)]
    row = {"completion": json.dumps([{"bbox_2d": [1, 2, 30, 40], "label": "person"}] * 300), "image_size": [64, 48],
           "solution": {"boxes": boxes, "labels": ["person"] * n}}
    (tmp_path / "det.jsonl").write_text(json.dumps(row) + "\n")
    line = _one_line(cli_in_process("score", "--task", "detection", str(tmp_path / "det.jsonl")))
    assert "det.jsonl:1:" in line and f"more than {limits.MAX_OBJECTS:,} objects" in line
    assert limits.number_problem({"boxes": boxes[: limits.MAX_OBJECTS]}) is None  # the cap itself is allowed


# -- paths ------------------------------------------------------------------------------------------
def test_an_argument_that_is_not_utf8_is_refused_before_anything_runs(tmp_path):
    out = str(tmp_path / "run-\udcff")  # what Python makes of the byte 0xff in a path
    line = _one_line(cli_in_process("run", "--task", "ocr", "--out", out))
    assert "is not UTF-8" in line and "\\udcff" in line
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_under_a_file_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "afile").write_text("x")
    line = _one_line(cli_in_process("new-plugin", "--dir", str(tmp_path / "afile" / "sub"), "shapes"))
    assert "Not a directory" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# -- a full disk ------------------------------------------------------------------------------------
def test_any_command_hitting_a_full_disk_ends_in_one_line(tmp_path, monkeypatch):
    from perception_r1.evaluate import report

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "report.html"))

    monkeypatch.setattr(report, "write_report", full)
    line = _one_line(cli_in_process("report", str(tmp_path)))
    assert "No space left on device" in line and "--resume" in line


def test_a_rust_librarys_disk_full_error_is_recognised():
    """safetensors reports a full disk as SafetensorError text, not an OSError."""
    exc = RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space" })')
    assert user_os_error(exc).errno == errno.ENOSPC
    assert user_os_error(RuntimeError("a bug")) is None  # anything else stays a traceback


def test_a_checkpoint_write_that_fails_leaves_no_partial_directory(tmp_path, monkeypatch):
    import torch

    from perception_r1.train import checkpoint

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())

    def full(tensors, path):
        Path(path).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(OSError):
        checkpoint.save(tmp_path, 1, model, optimizer, {})
    assert list(tmp_path.iterdir()) == []


def test_an_sft_save_that_fails_leaves_nothing_but_the_lock(tmp_path):
    from perception_r1.cli.sft import save_beside_lock

    def save(directory, dtype=None):
        Path(directory).mkdir()
        (Path(directory) / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    (tmp_path / "run.lock").write_text("{}")
    with pytest.raises(OSError):
        save_beside_lock(SimpleNamespace(save=save), tmp_path, None)
    assert [p.name for p in tmp_path.iterdir()] == ["run.lock"]


# -- one writer -------------------------------------------------------------------------------------
def test_sft_into_a_directory_another_process_writes_is_one_line(tmp_path):
    from perception_r1.train import rundir

    out = tmp_path / "sft"
    lock = rundir.acquire(out)  # another writer: its own open file, so its flock conflicts as a process's would
    try:
        line = _one_line(cli_in_process("sft", "--task", "ocr", "--steps", "1", "--out", str(out)))
    finally:
        rundir.release(lock)
    assert "is being written by process" in line
    assert not (out / "config.json").exists()


def test_sft_settings_are_finite_and_bounded():
    assert "not a finite number" in _one_line(cli_in_process("sft", "--task", "ocr", "--lr", "nan"))
    for flag, value in (("--eval-samples", "1000000000"), ("--seed", "100000000000000000000"),
                        ("--threads", "1000000000000"), ("--batch-size", "1000000000")):
        assert flag in _one_line(cli_in_process("sft", "--task", "ocr", flag, value))


# -- broken checkpoints, model directories and data files ------------------------------------------
@pytest.mark.parametrize("state", ['{"step": "6", "optimizer": {"state": {}, "param_groups": []}}', "{}", "[6]", "{",
                                   '{"step": 5, "optimizer": {"state": {}, "param_groups": []}}'])
def test_a_malformed_checkpoint_state_is_refused_naming_the_file(tmp_path, state):
    from perception_r1.train.checkpoint import read_state

    (tmp_path / "step-6").mkdir()
    (tmp_path / "step-6" / "state.json").write_text(state)
    with pytest.raises(UserError, match=r"step-6/state.json"):
        read_state(tmp_path / "step-6")


def test_a_refused_resume_rewrites_no_log(tmp_path):
    """Every log is checked before any is repaired: a bad completions.jsonl leaves metrics.jsonl as it was."""
    from perception_r1.train import rundir

    metrics = '{"step": 1}\n{"step": 2}\n{"step": 3}\n'
    (tmp_path / "metrics.jsonl").write_text(metrics)
    (tmp_path / "completions.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(UserError, match=r"completions.jsonl:2"):
        rundir.repair_logs(tmp_path, 1)
    assert (tmp_path / "metrics.jsonl").read_text() == metrics


@pytest.mark.parametrize(("content", "says"), [(b"[1, 2]", "expected a JSON object"), (b"\xff\xfe{", "not UTF-8")])
def test_a_model_directory_with_a_broken_config_is_one_line(tmp_path, small_model, content, says):
    from perception_r1.model.policy import Policy

    model = shutil.copytree(small_model, tmp_path / "m")
    (model / "config.json").write_bytes(content)
    with pytest.raises(UserError, match=rf"config.json:1: {says}"):
        Policy.load(model)


@pytest.mark.parametrize(("template", "says"), [
    ("{% for i in range(10**8) %}{% endfor %}", "cannot be used"),
    ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "took more than"),
])
def test_a_chat_template_that_loops_is_refused_at_load(tmp_path, small_model, monkeypatch, template, says):
    from perception_r1.model import policy

    monkeypatch.setattr(policy, "TEMPLATE_SECONDS", 0.5)
    model = shutil.copytree(small_model, tmp_path / "m")
    (model / "chat_template.jinja").write_text(template)
    with pytest.raises(UserError, match=says):
        policy.Policy.load(model)


def test_a_loader_meeting_a_value_of_the_wrong_type_is_one_line(tmp_path):
    """COCO ``image_id: [1]`` (any wrong type a loader trusted) names the data and the task."""
    from PIL import Image

    from perception_r1.data.loaders import load_samples
    from perception_r1.registry import get_registry

    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "val2017" / "1.jpg")
    ann = {"images": [{"id": 1, "file_name": "1.jpg", "width": 32, "height": 32}],
           "categories": [{"id": 1, "name": "person"}],
           "annotations": [{"id": 1, "image_id": [1], "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0}]}
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(ann))
    with pytest.raises(UserError, match=r"task 'detection' cannot read it.*TypeError"):
        load_samples(get_registry().task("detection"), tmp_path, "val")
    ann["annotations"] = 5
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(ann))
    with pytest.raises(UserError, match=r"task 'detection' cannot read it"):
        load_samples(get_registry().task("detection"), tmp_path, "val")


def test_a_saved_dataset_directory_with_a_malformed_index_is_one_line(tmp_path):
    from perception_r1.data.loaders import load_samples
    from perception_r1.registry import get_registry

    (tmp_path / "dataset_dict.json").write_text('{"splits": 5}')
    with pytest.raises(UserError, match=r"task 'detection' cannot read it"):
        load_samples(get_registry().task("detection"), tmp_path, "val")
