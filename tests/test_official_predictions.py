"""`score --from pr1`: predictions the paper's official eval scripts wrote, paired with the annotations they
answered, score to what the official formulas give (issue 24)."""

from __future__ import annotations

import json

import pytest
from helpers import cli_in_process
from test_official_files import (
    PIXMO_ROWS,
    PR1_ROWS,
    _conversation,
    _image,
    _page_ocr,
    _pixmo,
    _refcoco,
    official_center,
    official_iou,
    official_ocr,
)


def _score(task, file, data, *extra):
    result = cli_in_process("score", "--task", task, str(file), "--from", "pr1", "--data", str(data), "--json", *extra)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _span(box):
    return f"<|box_start|>({box[0]},{box[1]}),({box[2]},{box[3]})<|box_end|>"


def test_grounding_rec_results(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTION_R1_IMAGE_ROOTS", str(tmp_path / "coco" / "train2014"))
    annotations = _refcoco(tmp_path, PR1_ROWS)
    answers = [[130, 120, 460, 600], [0, 0, 400, 500]]  # 0-1000, as Qwen2-VL answers and the script reads them
    details = [{"question": row["problem"], "ground_truth": row["normalized_solution"], "model_output": _span(box),
                "extracted_answer": box, "scores": {}} for row, box in zip(PR1_ROWS, answers, strict=True)]
    results = tmp_path / "rec_results.json"
    results.write_text(json.dumps({"model": "m", "dataset": "refcoco_val", "details": details}, indent=2))
    ours = _score("grounding", results, annotations)
    ious = [official_iou(box, row["normalized_solution"]) for box, row in zip(answers, PR1_ROWS, strict=True)]
    assert ours["acc@0.5"] == pytest.approx(sum(iou >= 0.5 for iou in ious) / 2)
    assert ours["acc@0.3"] == pytest.approx(sum(iou >= 0.3 for iou in ious) / 2)
    centred = [official_center(box, row["normalized_solution"]) for box, row in zip(answers, PR1_ROWS, strict=True)]
    assert ours["center_acc"] == pytest.approx(sum(centred) / 2) and ours["records"] == 2
    details[1]["question"] = "a dog"  # predictions of another annotation file
    results.write_text(json.dumps({"details": details}))
    result = cli_in_process("score", "--task", "grounding", str(results), "--from", "pr1", "--data", str(annotations))
    assert result.returncode == 2 and "prediction 2 asks about 'a dog'" in result.stderr
    assert result.stderr.count("\n") == 1


def test_counting_scores_pick_the_set_of_the_annotation_file(tmp_path):
    annotations = _pixmo(tmp_path, PIXMO_ROWS)  # pixmo_count_test540.jsonl: counts 3 and 0
    three = _span([10, 10, 50, 50]) * 3
    results = {"pixmo_count_test540": {"accuracy": 50.0, "results": [
        {"question": "red squares", "ground_truth": 3, "model_output": three, "extracted_answer": 3},
        {"question": "people", "ground_truth": 0, "model_output": _span([1, 1, 9, 9]), "extracted_answer": 1}]},
        "pixmo_count_val540": {"accuracy": 0.0, "results": []}, "average_accuracy": 25.0}
    file = tmp_path / "counting_scores_1206_101010.json"
    file.write_text(json.dumps(results, indent=2))
    assert _score("counting", file, annotations)["accuracy"] == pytest.approx(0.5)  # the official 50.0 %
    other = tmp_path / "elsewhere.jsonl"
    other.write_text(annotations.read_text())
    result = cli_in_process("score", "--task", "counting", str(file), "--from", "pr1", "--data", str(other))
    assert result.returncode == 2 and "holds the sets pixmo_count_test540, pixmo_count_val540" in result.stderr


@pytest.mark.filterwarnings("ignore::UserWarning")  # nltk warns about zero n-gram counts
def test_ocr_results_are_the_rows_with_output(tmp_path):
    truths = ["Hello world and more", "the cat sat on the mat"]
    outputs = ["Hello world", "the cat sat on a mat"]
    annotations = _page_ocr(tmp_path, [_conversation(f"{i}.png", t) for i, t in enumerate(truths)])
    rows = [{**_conversation(f"{i}.png", t), "output": o} for i, (t, o) in enumerate(zip(truths, outputs, strict=True))]
    results = tmp_path / "en_page_ocr_results_1206_101010.json"
    results.write_text(json.dumps(rows, indent=4))
    ours = _score("ocr", results, annotations)
    official = [official_ocr(o, t) for o, t in zip(outputs, truths, strict=True)]
    for key in official[0]:
        assert ours[key] == pytest.approx(sum(row[key] for row in official) / 2, abs=1e-9), key


def test_detection_coco_results_equal_pycocotools(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": 7, "file_name": "a.jpg", "width": 64, "height": 48},
              {"id": 9, "file_name": "b.jpg", "width": 64, "height": 48}]
    for image in images:
        _image(tmp_path / "val2017" / image["file_name"])
    annotations = [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [8, 6, 22, 22], "area": 484, "iscrowd": 0},
                   {"id": 2, "image_id": 7, "category_id": 3, "bbox": [40, 10, 20, 30], "area": 600, "iscrowd": 0},
                   {"id": 3, "image_id": 9, "category_id": 1, "bbox": [0, 0, 30, 40], "area": 1200, "iscrowd": 0}]
    instances = {"images": images, "annotations": annotations,
                 "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(instances))
    results = [{"image_id": 7, "category_id": 1, "bbox": [9, 6, 21, 22], "score": 1.0},
               {"image_id": 7, "category_id": 3, "bbox": [30, 10, 20, 30], "score": 1.0},
               {"image_id": 9, "category_id": 3, "bbox": [0, 0, 30, 40], "score": 1.0}]
    file = tmp_path / "temp_results_1.json"
    file.write_text(json.dumps(results))
    ours = _score("detection", file, tmp_path)
    gt = COCO(str(tmp_path / "annotations" / "instances_val2017.json"))
    evaluation = COCOeval(gt, gt.loadRes(str(file)), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert ours["AP"] == pytest.approx(evaluation.stats[0] * 100, abs=1e-6)
    assert ours["AP50"] == pytest.approx(evaluation.stats[1] * 100, abs=1e-6)


def test_pr1_needs_its_annotations(tmp_path):
    file = tmp_path / "rec_results.json"
    file.write_text("{}")
    result = cli_in_process("score", "--task", "grounding", str(file), "--from", "pr1")
    assert result.returncode == 2 and "--from pr1 needs --data" in result.stderr
