"""`perception-r1 score` on hand-made files: the paper's rewards and metrics, computed by hand."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _score(tmp_path, task, records, *flags):
    src = _write(tmp_path / f"{task}.jsonl", records)
    out = tmp_path / f"{task}.scored.jsonl"
    result = run_cli("score", "--task", task, str(src), "--out", str(out), "--json", *flags)
    assert result.returncode == 0, result.stderr
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    return json.loads(result.stdout), scored


def test_grounding(tmp_path):
    gt = {"bbox": [20, 10, 120, 60]}  # 100 x 50 px in a 200 x 100 image
    records = [
        {"completion": "<|box_start|>(100,100),(600,600)<|box_end|>", "image_size": [200, 100], "solution": gt},
        # x2 = 400/1000 * 200 = 80 px: box 60 x 50 inside the ground truth -> IoU 3000/5000 = 0.6
        {"completion": "(100,100),(400,600)", "image_size": [200, 100], "solution": gt},
        {"completion": "<not a box>", "image_size": [200, 100], "solution": gt},
    ]
    metrics, scored = _score(tmp_path, "grounding", records)
    assert [r["reward"] for r in scored] == pytest.approx([2.0, 1.0 + 0.6**2, 0.0])
    assert scored[1]["rewards"]["iou"] == pytest.approx(0.6)
    assert scored[2]["rewards"]["format"] == 0.0
    assert metrics["acc@0.5"] == pytest.approx(2 / 3) and metrics["acc@0.75"] == pytest.approx(1 / 3)
    assert metrics["miou"] == pytest.approx((1.0 + 0.6 + 0.0) / 3)


def test_grounding_coords_flag_reads_pixels(tmp_path):
    records = [{"completion": "(20,10),(120,60)", "image_size": [200, 100], "solution": {"bbox": [20, 10, 120, 60]}}]
    metrics, scored = _score(tmp_path, "grounding", records, "--coords", "pixels")
    assert scored[0]["reward"] == pytest.approx(2.0) and metrics["acc@0.95"] == 1.0


def test_counting(tmp_path):
    gt = {"points": [[10, 10], [50, 50]]}
    records = [
        {"completion": "(10,10)\n(50,50)", "image_size": [100, 100], "solution": gt},
        {"completion": "(10,10)", "image_size": [100, 100], "solution": gt},  # 1 of 2, exact: 1/2 * (1 - 0)
        # 2 of 2, each (3, 4) px off; within half a pixel counts as exact (rounding grid), so (2.5, 3.5)
        {"completion": "(13,14)\n(53,54)", "image_size": [100, 100], "solution": gt},
    ]
    metrics, scored = _score(tmp_path, "counting", records, "--coords", "pixels")
    assert [r["reward"] for r in scored] == pytest.approx([1.0, 0.5, 1 - (2.5**2 + 3.5**2) ** 0.5 / (100 * 2**0.5)])
    assert metrics["accuracy"] == pytest.approx(2 / 3)


def test_ocr(tmp_path):
    records = [
        {"completion": "hello   world", "image_size": [224, 56], "solution": {"text": "hello world"}},
        {"completion": "hello wrld", "image_size": [224, 56], "solution": {"text": "hello world"}},
    ]
    metrics, scored = _score(tmp_path, "ocr", records)
    assert [r["reward"] for r in scored] == pytest.approx([1.0, 1 - 1 / 11])
    assert metrics["edit_distance"] == pytest.approx((0 + 1 / 11) / 2)
    assert metrics["f1"] == pytest.approx((1.0 + 0.5) / 2)  # 1 of 2 tokens right: P = R = 0.5


def test_detection(tmp_path):
    gt = {"boxes": [[10, 10, 50, 50], [60, 60, 90, 90]], "labels": ["circle", "square"]}
    perfect = json.dumps([{"bbox_2d": [10, 10, 50, 50], "label": "circle"}, {"bbox_2d": [60, 60, 90, 90], "label": "square"}])
    half = json.dumps([{"bbox_2d": [10, 10, 50, 50], "label": "circle"}])
    records = [
        {"completion": perfect, "image_size": [100, 100], "solution": gt},
        {"completion": f"```json\n{half}\n```", "image_size": [100, 100], "solution": gt},
    ]
    metrics, scored = _score(tmp_path, "detection", records, "--coords", "pixels")
    assert scored[0]["reward"] == pytest.approx(3.75)
    # one of two found: format 1 + 0.75 * F1 (P 1, R 0.5 -> 2/3) + class 1 + IoU 1 - 0.5 * (FP 0 + FN 0.5)
    assert scored[1]["reward"] == pytest.approx(1 + 0.75 * 2 / 3 + 1 + 1 - 0.25)
    assert set(metrics) >= {"AP", "AP50", "AP75"} and 0 < metrics["AP"] < 100


def test_bad_line_is_one_line_error_naming_it(tmp_path):
    src = _write(tmp_path / "g.jsonl", [{"completion": "(1,1),(2,2)", "image_size": [10, 10], "solution": {"bbox": [0, 0, 5, 5]}}])
    with src.open("a") as handle:
        handle.write('{"completion": "x", "image_size": [10, 10], "solution": {"bbox": [1, 2]}}\n')
        handle.write("{not json\n")
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    result = run_cli("score", "--task", "grounding", str(src), "--out", str(out), "--force")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{src}:2: solution breaks the 'grounding' schema" in result.stderr
    assert out.read_text() == "previous results\n"  # nothing already written is lost
    bad_json = _write(tmp_path / "j.jsonl", [])
    bad_json.write_text("\n{oops\n")
    result = run_cli("score", "--task", "ocr", str(bad_json))
    assert result.returncode == 2 and f"{bad_json}:2: not valid JSON" in result.stderr


def test_unknown_task(tmp_path):
    result = run_cli("score", "--task", "nope", str(_write(tmp_path / "x.jsonl", [])))
    assert result.returncode == 2 and "unknown task 'nope'" in result.stderr
