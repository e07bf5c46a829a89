"""Loaders: small fixtures written in the exact upstream formats, loaded, checked against hand values.

Every loaded sample is also checked end to end: the task's ideal answer for it (``render``) earns the
task's best reward, so boxes and points reached the sample in original-image pixels.
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from perception_r1.data.loaders import load_samples
from perception_r1.errors import UserError
from perception_r1.registry import get_registry


def _jpeg(size=(64, 48), colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _save(path, size=(64, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_jpeg(size))
    return path


def _perfect(task, sample):
    """The reward of the task's ideal answer for ``sample`` in the embedded model's space."""
    prepared = {**sample, "coords": "pixels" if task.name == "detection" else "norm1000"}
    if task.name == "ocr":
        prepared["coords"] = "none"
    return task.reward(task.render(prepared), prepared).total


def _task(name):
    return get_registry().task(name)


# -- grounding ----------------------------------------------------------------------------------
def test_refcoco_lmms_lab_parquet(tmp_path):
    root = tmp_path / "RefCOCO"
    (root / "data").mkdir(parents=True)
    rows = [  # lmms-lab/RefCOCO columns; bbox is COCO xywh in pixels
        {"question_id": "q1", "image": {"bytes": _jpeg(), "path": "a.jpg"}, "question": "prompt",
         "answer": ["man on left", "left guy"], "segmentation": [1.0], "bbox": [4.0, 6.0, 20.0, 30.0],
         "iscrowd": 0, "file_name": "COCO_train2014_000000000001.jpg"},
        {"question_id": "q2", "image": {"bytes": _jpeg((80, 60)), "path": "b.jpg"}, "question": "prompt",
         "answer": ["red car"], "segmentation": [1.0], "bbox": [10.0, 10.0, 5.0, 5.0],
         "iscrowd": 0, "file_name": "COCO_train2014_000000000002.jpg"},
    ]
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "val-00000-of-00001.parquet")
    loaded = load_samples(_task("grounding"), root, "val")
    assert loaded.format == "lmms-lab-parquet" and loaded.benchmark == "RefCOCO val"
    samples = loaded.samples
    assert [s["query"]["expression"] for s in samples] == ["man on left", "left guy", "red car"]
    assert samples[0]["solution"] == {"bbox": [4.0, 6.0, 24.0, 36.0]}
    assert samples[2]["image_size"] == [80, 60] and samples[2]["id"] == "q2-0"
    assert all(_perfect(_task("grounding"), s) == pytest.approx(2.0) for s in samples)
    assert len(load_samples(_task("grounding"), root, "val", limit=2).samples) == 2

    rows[1]["bbox"] = [1.0, 2.0, 3.0]  # broken second row
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "val-00000-of-00001.parquet")
    with pytest.raises(UserError, match=r"val-00000-of-00001\.parquet:row 2: bad 'grounding' row \(bbox must be"):
        load_samples(_task("grounding"), root, "val")


def _refer_fixture(root):
    instances = {
        "images": [{"id": 11, "file_name": "COCO_train2014_000000000011.jpg", "width": 64, "height": 48},
                   {"id": 12, "file_name": "COCO_train2014_000000000012.jpg", "width": 64, "height": 48}],
        "annotations": [{"id": 101, "image_id": 11, "bbox": [2, 3, 10, 12], "category_id": 1, "iscrowd": 0},
                        {"id": 102, "image_id": 12, "bbox": [30, 20, 8, 8], "category_id": 1, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person"}],
    }
    refs = [  # refer toolkit fields (refs(unc).p converted to JSON)
        {"ref_id": 1, "ann_id": 101, "image_id": 11, "split": "testA", "category_id": 1,
         "file_name": "COCO_train2014_000000000011_101.jpg",
         "sentences": [{"sent": "woman in red", "raw": "Woman in red", "tokens": ["woman", "in", "red"]}]},
        {"ref_id": 2, "ann_id": 102, "image_id": 12, "split": "train", "category_id": 1,
         "file_name": "COCO_train2014_000000000012_102.jpg",
         "sentences": [{"sent": "small thing"}, {"sent": "the dot"}]},
    ]
    root.mkdir(parents=True)
    (root / "instances.json").write_text(json.dumps(instances))
    (root / "refs(unc).json").write_text(json.dumps(refs))
    for img in instances["images"]:
        _save(root / "images" / img["file_name"])
    return refs


def test_refer_json_with_instances(tmp_path):
    root = tmp_path / "refcoco+"
    refs = _refer_fixture(root)
    loaded = load_samples(_task("grounding"), root, "testA")
    assert loaded.format == "refer-json" and loaded.benchmark == "RefCOCO+ testA"
    (sample,) = loaded.samples
    assert sample["solution"] == {"bbox": [2.0, 3.0, 12.0, 15.0]} and sample["query"] == {"expression": "woman in red"}
    assert sample["image_path"].endswith("COCO_train2014_000000000011.jpg")
    train = load_samples(_task("grounding"), root, "train").samples
    assert [s["query"]["expression"] for s in train] == ["small thing", "the dot"]
    assert all(_perfect(_task("grounding"), s) == pytest.approx(2.0) for s in train)

    refs[1]["ann_id"] = 999
    (root / "refs(unc).json").write_text(json.dumps(refs))
    with pytest.raises(UserError, match=r"refs\(unc\)\.json:ref 2: bad 'grounding' row \(ann_id 999 is not in"):
        load_samples(_task("grounding"), root, "train")


def test_qwen_vl_refcoco_jsonl(tmp_path):
    _save(tmp_path / "images" / "coco" / "a.jpg")
    rows = [{"image": "coco/a.jpg", "sent": "left cup", "bbox": [1, 2, 30, 40], "height": 48, "width": 64}]
    (tmp_path / "refcocog_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_samples(_task("grounding"), tmp_path, "test")
    assert loaded.format == "qwen-vl-jsonl" and loaded.benchmark == "RefCOCOg test"
    assert loaded.samples[0]["solution"] == {"bbox": [1.0, 2.0, 30.0, 40.0]}
    rows.append({"image": "coco/a.jpg", "sent": "x", "bbox": [30, 2, 1, 40]})  # corners swapped
    (tmp_path / "refcocog_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match=r"refcocog_test\.jsonl:2: .*corners out of order"):
        load_samples(_task("grounding"), tmp_path / "refcocog_test.jsonl", "test")


# -- counting -----------------------------------------------------------------------------------
def test_pixmo_count_parquet(tmp_path):
    root = tmp_path / "pixmo-count"
    (root / "data").mkdir(parents=True)
    _save(root / "images" / "abc123.jpg", (100, 80))
    _save(root / "images" / "photo.png", (100, 80))
    rows = [  # allenai/pixmo-count columns; points in pixels
        {"image_url": "https://x.org/a.jpg", "image_sha256": "abc123", "count": 3, "label": "apples",
         "points": [{"x": 10.0, "y": 20.0}, {"x": 50.5, "y": 40.0}, {"x": 90.0, "y": 70.0}]},
        {"image_url": "https://x.org/photo.png?s=1", "image_sha256": "fff", "count": 2, "label": "dogs",
         "points": [{"x": 5.0, "y": 5.0}, {"x": 60.0, "y": 30.0}]},
    ]
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "validation-00000-of-00001.parquet")
    loaded = load_samples(_task("counting"), root, "val")
    assert loaded.format == "pixmo-count-parquet" and loaded.benchmark == "PixMo-Count val"
    first, second = loaded.samples
    assert first["solution"] == {"points": [[10.0, 20.0], [50.5, 40.0], [90.0, 70.0]]}
    assert first["query"] == {"object": "apples"} and first["image_size"] == [100, 80]
    assert second["image_path"].endswith("photo.png")  # found by the URL's file name
    assert all(_perfect(_task("counting"), s) == pytest.approx(1.0) for s in loaded.samples)

    rows[1]["count"] = 5
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "validation-00000-of-00001.parquet")
    with pytest.raises(UserError, match=r"validation-00000-of-00001\.parquet:row 2: .*count 5 but 2 points"):
        load_samples(_task("counting"), root, "val")


def test_pixmo_missing_image_is_reported(tmp_path):
    (tmp_path / "data").mkdir()
    rows = [{"image_url": "https://x.org/none.jpg", "image_sha256": "nope", "count": 1, "label": "cats",
             "points": [{"x": 1.0, "y": 1.0}]}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(UserError, match=r"train-00000-of-00001\.parquet:row 1: .*no image file for sha256 nope"):
        load_samples(_task("counting"), tmp_path, "train")


# -- OCR ----------------------------------------------------------------------------------------
def test_page_ocr_jsonl(tmp_path):
    root = tmp_path / "pageocr"
    _save(root / "pages" / "p1.png", (120, 160))
    rows = [{"image": "pages/p1.png", "text": "Title\nfirst line of the page"}]
    root.joinpath("val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_samples(_task("ocr"), root, "val")
    assert loaded.benchmark == "PageOCR"
    assert loaded.samples[0]["solution"] == {"text": "Title\nfirst line of the page"}
    assert loaded.samples[0]["image_size"] == [120, 160]
    assert _perfect(_task("ocr"), loaded.samples[0]) == pytest.approx(1.0)
    rows += [{"image": "pages/p1.png", "text": "   "}]  # breaks the schema: text needs a non-space character
    root.joinpath("val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match=r"val\.jsonl:2: bad 'ocr' row \(solution breaks the 'ocr' schema at text"):
        load_samples(_task("ocr"), root, "val")


# -- detection ----------------------------------------------------------------------------------
def test_coco_2017_instances(tmp_path):
    root = tmp_path / "coco"
    instances = {
        "images": [{"id": 7, "file_name": "000000000007.jpg", "width": 64, "height": 48},
                   {"id": 8, "file_name": "000000000008.jpg", "width": 64, "height": 48}],
        "annotations": [
            {"id": 1, "image_id": 7, "bbox": [1, 2, 10, 10], "category_id": 18, "iscrowd": 0, "area": 100},
            {"id": 2, "image_id": 7, "bbox": [30, 5, 20, 30], "category_id": 1, "iscrowd": 0, "area": 600},
            {"id": 3, "image_id": 7, "bbox": [0, 0, 60, 40], "category_id": 1, "iscrowd": 1, "area": 2400},
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"},
                       {"id": 18, "name": "dog", "supercategory": "animal"}],
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(instances))
    for img in instances["images"]:
        _save(root / "val2017" / img["file_name"])
    loaded = load_samples(_task("detection"), root, "val")
    assert loaded.format == "coco-2017" and loaded.benchmark == "COCO val2017"
    seven, eight = loaded.samples
    assert seven["solution"] == {"boxes": [[1.0, 2.0, 11.0, 12.0], [30.0, 5.0, 50.0, 35.0]], "labels": ["dog", "person"]}
    assert eight["solution"] == {"boxes": [], "labels": []}  # an image without objects stays in
    assert all(_perfect(_task("detection"), s) == pytest.approx(_task("detection").reward_range[1]) for s in loaded.samples)

    instances["annotations"][1]["category_id"] = 99
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(instances))
    with pytest.raises(UserError, match=r"instances_val2017\.json:image 1: .*category_id 99 is not in"):
        load_samples(_task("detection"), root, "val")


def test_no_paper_layout_falls_back_to_the_tasks_plain_jsonl(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_samples(_task("grounding"), tmp_path / "missing", "val")
    _save(tmp_path / "a.jpg")
    (tmp_path / "val.jsonl").write_text(json.dumps({"image": "a.jpg", "expression": "x", "bbox": [1, 1, 5, 5]}) + "\n")
    loaded = load_samples(_task("grounding"), tmp_path, "val")
    assert loaded.format == "jsonl" and loaded.samples[0]["solution"] == {"bbox": [1.0, 1.0, 5.0, 5.0]}
    assert loaded.samples[0]["task"] == "grounding" and loaded.samples[0]["id"] == "val-1"


def test_a_plugin_task_loads_through_the_same_dispatch(tmp_path):
    """Core only asks ``task.load``: a task without one is a one-line error; one returning bare samples works;
    its ValueError naming file:row becomes a UserError."""
    from perception_r1 import Task

    class NoLoader(Task):
        name = "no-loader"

    class ListLoader(Task):
        name = "list-loader"

        def load(self, path, split=None, limit=None):
            if split == "bad":
                raise ValueError(f"{path}/bad.txt:3: not a row")
            return [{"id": str(i), "solution": {}} for i in range(5)]

    with pytest.raises(UserError, match="task 'no-loader' has no loader for real data"):
        load_samples(NoLoader(), tmp_path, "val")
    loaded = load_samples(ListLoader(), tmp_path, "val", limit=2)
    assert loaded.format == "task-loader" and [s["id"] for s in loaded.samples] == ["0", "1"]
    assert all(s["task"] == "list-loader" for s in loaded.samples)
    with pytest.raises(UserError, match=r"bad\.txt:3: not a row"):
        load_samples(ListLoader(), tmp_path, "bad")
