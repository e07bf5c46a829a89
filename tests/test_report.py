"""The HTML report: one self-contained file, curves, metrics, a gallery with boxes where they belong."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from perception_r1.data import io as pio
from perception_r1.data.synthetic import synthetic_samples
from perception_r1.errors import UserError
from perception_r1.evaluate.evaluation import record_of
from perception_r1.evaluate.report import PREDICTION, TRUTH, VIEW, Shapes, build_report, draw, write_report
from perception_r1.registry import get_registry


def _pngs(page):
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)]


def _is(pixel, colour):
    return all(abs(int(a) - b) <= 2 for a, b in zip(pixel, colour, strict=False))


def test_boxes_and_points_are_drawn_where_they_belong():
    image = Image.new("RGB", (112, 112), (24, 24, 24))
    truth = Shapes(boxes=[[10, 20, 50, 60]], points=[[80, 80]])
    pred = Shapes(boxes=[[60, 10, 100, 40]])
    view, scale = draw(image, [112, 112], truth, pred)
    assert view.size == (VIEW, VIEW) and scale == pytest.approx(VIEW / 112)
    px = view.load()
    s = scale
    assert _is(px[int(10 * s) + 1, int(40 * s)], TRUTH)  # left edge of the truth box
    assert _is(px[int(30 * s), int(20 * s) + 1], TRUTH)  # top edge
    assert _is(px[int(80 * s), int(80 * s) - 3], TRUTH)  # ring around the truth point
    assert _is(px[int(60 * s), int(25 * s)], PREDICTION)  # left edge of the predicted box
    assert _is(px[int(30 * s), int(40 * s)], (24, 24, 24))  # inside the boxes: the image itself


def _run_dir(tmp_path):
    task = get_registry().task("grounding")
    samples = synthetic_samples(task, "val", 4, seed=0)
    records = []
    for i, sample in enumerate(samples):
        sample["coords"] = "norm1000"
        completion = task.render(sample) if i < 2 else "<script>alert(1)</script>"
        records.append(record_of(sample, completion, task))
    pio.write_jsonl(tmp_path / "eval_after.jsonl", records)
    pio.write_jsonl(tmp_path / "metrics.jsonl", [
        {"step": s, "reward": 0.1 * s, "reward_std": 0.05, "kl": 0.01 * s, "zero_std_groups": 0.5,
         "completion_length": 20.0, "loss": 0.1, "clip_fraction": 0.0, "rewards/format": 0.5, "rewards/iou": 0.2}
        for s in (1, 2, 3)])
    (tmp_path / "eval.json").write_text(json.dumps({"before": {"acc@0.5": 0.25}, "after": {"acc@0.5": 0.5}}))
    (tmp_path / "config.yaml").write_text("task: grounding\nmodel: null\n")
    completion_rows = [{"step": 1, "id": samples[0]["id"], "task": "grounding", "completion": records[0]["completion"],
                        "reward": 2.0, "rewards": {"format": 1.0, "iou": 1.0}, "solution": records[0]["solution"]}]
    pio.write_jsonl(tmp_path / "completions.jsonl", completion_rows)
    return samples, records


def test_run_report_is_self_contained_and_complete(tmp_path):
    samples, records = _run_dir(tmp_path)
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report.html").read_text()
    assert result.stdout.strip() == str(tmp_path / "report.html")
    for title in ("Reward (mean ± std over rollouts)", "Reward components", "Fraction of zero-std groups",
                  "KL to the reference", "Completion length (tokens)", "before and after training",
                  "sampled training completions (step 1)", "Best", "Worst"):
        assert title in page, title
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # model output is escaped
    assert not re.search(r"""(src|href)=["']?(https?:|file:|/)""", page)  # nothing loaded from outside
    pictures = _pngs(page)
    assert len(pictures) == 6 + 4 + 1  # charts, eval gallery, training gallery

    # the best card is sample 0 (a perfect answer): its picture is the regenerated image, scaled, with
    # the truth box drawn at the ground truth's place
    best = pictures[6]
    box = np.asarray(records[0]["solution"]["bbox"]) * VIEW / 112
    expected = samples[0]["image"].convert("RGB").resize((VIEW, VIEW), Image.NEAREST)
    x1, y1, x2, y2 = box
    inside = (int((x1 + x2) / 2), int((y1 + y2) / 2))
    assert best.getpixel(inside) == expected.getpixel(inside)  # the shape itself, undrawn
    edge = best.getpixel((int(x1) + 1, inside[1]))
    assert _is(edge, PREDICTION) or _is(edge, TRUTH)  # the prediction is drawn over the truth


def test_eval_directory_and_unknown_images(tmp_path):
    task = get_registry().task("counting")
    record = record_of({"id": "mine-1", "task": "counting", "image_size": [200, 100], "coords": "norm1000",
                        "solution": {"points": [[50.0, 50.0]]}}, "(250,500)", task)
    pio.write_jsonl(tmp_path / "predictions.jsonl", [record])
    (tmp_path / "metrics.json").write_text(json.dumps({
        "task": "counting", "model": "m", "data": "d", "benchmark": "PixMo-Count val", "samples": 1,
        "metrics": {"accuracy": 1.0}, "paper": {"accuracy": {"base": 0.602, "perception_r1": 0.781}}}))
    page = build_report(tmp_path)
    assert "PixMo-Count val" in page and "0.781" in page and "image not stored" in page
    (picture,) = _pngs(page)
    assert picture.size == (VIEW, VIEW // 2)  # a blank canvas of the record's image size
    scale = VIEW / 200
    assert _is(picture.getpixel((int(50 * scale), int(50 * scale) - 4)), TRUTH)
    assert _is(picture.getpixel((int(50 * scale) + 3, int(50 * scale) + 3)), PREDICTION)  # (250,500) = (50, 50) px


def test_not_a_run_directory(tmp_path):
    with pytest.raises(UserError, match="not a run or eval directory"):
        write_report(tmp_path)
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1


def test_each_task_says_what_to_draw_and_what_to_caption(tmp_path):
    """Detection draws labelled boxes and no caption (its query is the class list); OCR shows its text."""
    registry = get_registry()
    detection, ocr = registry.task("detection"), registry.task("ocr")
    sample = {"id": "d-1", "task": "detection", "image_size": [100, 50], "coords": "pixels",
              "query": {"classes": "circle, square"}, "solution": {"boxes": [[10, 10, 40, 40]], "labels": ["circle"]}}
    truth = detection.draw_solution(sample)
    assert truth == Shapes(boxes=[[10.0, 10.0, 40.0, 40.0]], labels=["circle"]) and detection.caption(sample) == ""
    answer = detection.parse('[{"bbox_2d": [50, 10, 90, 40], "label": "square"}]')
    assert detection.draw_answer(answer, sample) == Shapes(boxes=[[50.0, 10.0, 90.0, 40.0]], labels=["square"])
    assert ocr.draw_solution({"solution": {"text": "hello"}}).text == "hello"
    pio.write_jsonl(tmp_path / "predictions.jsonl", [record_of(sample, '[{"bbox_2d": [50, 10, 90, 40], "label": "square"}]',
                                                                detection)])
    page = build_report(tmp_path)
    assert "classes: circle, square" not in page
    (picture,) = _pngs(page)
    scale = VIEW / 100
    assert _is(picture.getpixel((int(10 * scale) + 1, int(30 * scale))), TRUTH)
    assert _is(picture.getpixel((int(90 * scale) - 1, int(30 * scale))), PREDICTION)


def test_report_on_a_missing_path_says_it_does_not_exist(tmp_path):
    result = run_cli("report", str(tmp_path / "nope"))
    assert result.returncode == 2 and "does not exist" in result.stderr and result.stderr.count("\n") == 1
