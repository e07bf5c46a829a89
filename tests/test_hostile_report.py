"""`report` is confined from outside the directory it reports, and survives any name a plugin or log gives
(issue 23: roots never come from the run's own files; `$` never reaches matplotlib's mathtext)."""

from __future__ import annotations

import json

from helpers import cli_in_process
from PIL import Image

from perception_r1.data.io import write_jsonl
from perception_r1.evaluate.report import build_report

OCR_ROW = {"completion": "hello", "image_size": [10, 10], "solution": {"text": "hello"}, "task": "ocr"}
OUTSIDE = "outside the run and data directories"


def _run_naming_a_private_image(tmp_path):
    """A run directory whose own files name a private directory as their data, and a record showing its image."""
    run, private = tmp_path / "run", tmp_path / "private"
    run.mkdir()
    private.mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(private / "secret.png")
    write_jsonl(run / "predictions.jsonl", [{**OCR_ROW, "id": "a", "reward": 1.0, "image_path": str(private / "secret.png")}])
    (run / "config.yaml").write_text(f"task: ocr\ndata: {private}\n")
    (run / "metrics.json").write_text(json.dumps({"task": "ocr", "data_dir": str(private), "metrics": {}}))
    return run, private


def test_files_inside_the_reported_directory_never_widen_what_it_embeds(tmp_path, monkeypatch):
    monkeypatch.delenv("PERCEPTION_R1_IMAGE_ROOTS", raising=False)
    run, _ = _run_naming_a_private_image(tmp_path)
    (run / "config.yaml").write_text("task: ocr\ndata: /\n")  # `data: /` would have allowed every file
    assert OUTSIDE in build_report(run)


def test_a_directory_given_on_the_command_line_is_trusted(tmp_path, monkeypatch):
    monkeypatch.delenv("PERCEPTION_R1_IMAGE_ROOTS", raising=False)
    run, private = _run_naming_a_private_image(tmp_path)
    result = cli_in_process("report", str(run))
    assert result.returncode == 0, result.stderr
    assert OUTSIDE in (run / "report.html").read_text()
    result = cli_in_process("report", str(run), "--data", str(private))
    assert result.returncode == 0, result.stderr
    assert OUTSIDE not in (run / "report.html").read_text()


def test_a_missing_data_directory_on_the_command_line_is_one_line(tmp_path):
    run, _ = _run_naming_a_private_image(tmp_path)
    result = cli_in_process("report", str(run), "--data", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "nowhere" in result.stderr and "Traceback" not in result.stderr


def test_dollar_signs_in_reward_names_are_text_not_mathtext(tmp_path):
    """`$x^{$` in a component name made matplotlib's mathtext parser raise and killed the report."""
    rows = [{"step": s, "reward": 0.1 * s, "rewards/$x^{$": 0.5, "rewards/$\\frac$": 0.2, "rewards/_hidden": 0.1}
            for s in (1, 2)]
    write_jsonl(tmp_path / "metrics.jsonl", rows)
    result = cli_in_process("report", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Reward components" in (tmp_path / "report.html").read_text()


def test_a_path_part_too_long_for_the_file_system_is_one_line(tmp_path):
    result = cli_in_process("report", str(tmp_path / ("r" * 300)))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("perception-r1: error:") == 1 and "too long" in result.stderr
