"""``--data`` through `datasets`: a save_to_disk directory, a Hub id from the local cache (offline), and local
parquet, each made here; rows keep their numbers in error messages."""

from __future__ import annotations

import glob
import io
import shutil

import pytest
from helpers import run_cli
from PIL import Image

from perception_r1.data.loaders import load_samples
from perception_r1.errors import UserError
from perception_r1.registry import get_registry

datasets = pytest.importorskip("datasets")


def _png(color: str, size=(64, 48)) -> dict:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def refcoco(n: int = 3, bad_row: int | None = None):
    """lmms-lab/RefCOCO's columns: image, bbox (xywh pixels), answer (expressions), question_id."""
    rows = {"image": [_png("red") for _ in range(n)], "question_id": [f"q{i}" for i in range(n)],
            "bbox": [[4.0, 6.0, 20.0, 10.0] if i + 1 != bad_row else [1.0, 2.0] for i in range(n)],
            "answer": [["the red thing", "left box"] for _ in range(n)]}
    features = datasets.Features({"image": datasets.Image(), "question_id": datasets.Value("string"),
                                  "bbox": datasets.List(datasets.Value("float64")),
                                  "answer": datasets.List(datasets.Value("string"))})
    return datasets.Dataset.from_dict(rows, features=features)


def grounding():
    return get_registry().task("grounding")


def test_save_to_disk_dataset_dict(tmp_path):
    datasets.DatasetDict({"val": refcoco(), "train": refcoco(2)}).save_to_disk(tmp_path / "refcoco")
    loaded = load_samples(grounding(), tmp_path / "refcoco", "val")
    assert loaded.format == "lmms-lab-datasets" and len(loaded.samples) == 6  # 2 expressions per row
    sample = loaded.samples[0]
    assert sample["solution"]["bbox"] == [4.0, 6.0, 24.0, 16.0]  # xywh -> xyxy pixels
    assert sample["query"]["expression"] == "the red thing" and sample["image_size"] == [64, 48]
    assert len(load_samples(grounding(), tmp_path / "refcoco", "train", limit=3).samples) == 3
    with pytest.raises(UserError, match=r"no split testA \(has: val, train\)"):
        load_samples(grounding(), tmp_path / "refcoco", "testA")


def test_bad_row_is_named_by_its_number(tmp_path):
    refcoco(4, bad_row=3).save_to_disk(tmp_path / "bad")
    with pytest.raises(UserError, match=r"bad\[val\]:row 3"):
        load_samples(grounding(), tmp_path / "bad", "val")


def _fake_hub_cache(cache, repo: str, table, split: str) -> None:
    """Lay out ``table`` as `datasets` caches a Hub data set it downloaded: <owner>___<name>/default/0.0.0/<hash>/."""
    from datasets.naming import camelcase_to_snakecase
    from datasets.packaged_modules.parquet.parquet import Parquet

    owner, name = repo.split("/")
    name = camelcase_to_snakecase(name)
    table.to_parquet(str(cache / f"{split}.parquet"))
    Parquet(cache_dir=str(cache / "build"), dataset_name=name,
            data_files={split: str(cache / f"{split}.parquet")}).download_and_prepare()
    built = glob.glob(str(cache / "build" / name / "*" / "0.0.0"))[0]
    shutil.copytree(built, cache / f"{owner}___{name}" / "default" / "0.0.0" / "0123abcd")


def test_hub_id_from_the_local_cache_offline(tmp_path, monkeypatch):
    _fake_hub_cache(tmp_path, "lmms-lab/RefCOCO", refcoco(), "val")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    loaded = load_samples(grounding(), "lmms-lab/RefCOCO", "val")
    assert len(loaded.samples) == 6 and loaded.benchmark == "RefCOCO val"
    with pytest.raises(UserError, match="does not exist"):
        load_samples(grounding(), "lmms-lab/NotCached", "val")


def test_pixmo_count_through_datasets(tmp_path):
    table = datasets.Dataset.from_dict(
        {"image": [_png("blue")] * 2, "label": ["dots", "dots"], "count": [2, 1],
         "points": [[{"x": 5.0, "y": 6.0}, {"x": 30.0, "y": 20.0}], [{"x": 1.0, "y": 2.0}]]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string"),
                                    "count": datasets.Value("int64"),
                                    "points": datasets.List({"x": datasets.Value("float64"),
                                                             "y": datasets.Value("float64")})}))
    datasets.DatasetDict({"validation": table}).save_to_disk(tmp_path / "pixmo")
    loaded = load_samples(get_registry().task("counting"), tmp_path / "pixmo", "val")
    assert loaded.format == "pixmo-count-datasets"
    assert [s["solution"]["points"] for s in loaded.samples] == [[[5.0, 6.0], [30.0, 20.0]], [[1.0, 2.0]]]


def test_object_detection_convention_through_datasets(tmp_path):
    """transformers' object-detection layout (cppe-5 and COCO exports): objects {bbox xywh, category ClassLabel}."""
    objects = datasets.List({"bbox": datasets.List(datasets.Value("float64"), length=4),
                             "category": datasets.ClassLabel(names=["person", "car"])})
    table = datasets.Dataset.from_dict(
        {"image": [_png("green")] * 2, "image_id": [7, 8],
         "objects": [[{"bbox": [1.0, 2.0, 10.0, 5.0], "category": 1}], [{"bbox": [0.0, 0.0, 4.0, 4.0], "category": 0},
                                                                         {"bbox": [5.0, 5.0, 2.0, 2.0], "category": 1}]]},
        features=datasets.Features({"image": datasets.Image(), "image_id": datasets.Value("int64"), "objects": objects}))
    datasets.DatasetDict({"validation": table}).save_to_disk(tmp_path / "det")
    loaded = load_samples(get_registry().task("detection"), tmp_path / "det", "val")
    assert loaded.format == "hf-object-detection" and [s["id"] for s in loaded.samples] == ["7", "8"]
    assert loaded.samples[0]["solution"] == {"boxes": [[1.0, 2.0, 11.0, 7.0]], "labels": ["car"]}
    assert loaded.samples[1]["solution"]["labels"] == ["person", "car"]


def test_local_parquet_written_by_datasets(tmp_path):
    (tmp_path / "pq").mkdir()
    refcoco().to_parquet(str(tmp_path / "pq" / "val.parquet"))
    loaded = load_samples(grounding(), tmp_path / "pq", "val")
    assert loaded.format == "lmms-lab-parquet" and len(loaded.samples) == 6


@pytest.mark.slow
def test_eval_cli_reads_a_saved_dataset(tmp_path):
    datasets.DatasetDict({"val": refcoco()}).save_to_disk(tmp_path / "refcoco")
    done = run_cli("eval", "--task", "grounding", "--data", str(tmp_path / "refcoco"), "--limit", "2",
                   "--max-new-tokens", "8", "--threads", "1", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
