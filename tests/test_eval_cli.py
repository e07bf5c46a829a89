"""`perception-r1 eval`: predictions that `score` re-scores to the same metrics, paper numbers beside."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import run_cli
from PIL import Image

from perception_r1.cli.eval import write_eval_dir
from perception_r1.data.synthetic import synthetic_samples
from perception_r1.evaluate import eval_dir
from perception_r1.evaluate.evaluation import evaluate_policy
from perception_r1.registry import get_registry


class ScriptedPolicy:
    """Answers like a model would, from a fixed script: the ideal answer, a shifted one, or garbage."""

    coord_space = "norm1000"  # what evaluation's sample preparation asks of a model

    def __init__(self, task, samples):
        self.task, self.calls = task, 0
        self.by_image = {id(s["image"]): {**s, "coords": "norm1000"} for s in samples}

    def generate(self, prompts, images, **_):
        texts = []
        for sample in (self.by_image[id(image)] for image in images):
            kind, self.calls = self.calls % 3, self.calls + 1
            if kind == 0:
                texts.append(self.task.render(sample))
            elif kind == 1:  # the truth moved 8 px right: partly right
                moved = json.loads(json.dumps({k: v for k, v in sample.items() if k != "image"}))
                sol = moved["solution"]
                for key in ("boxes",):
                    sol[key] = [[b[0] + 8, b[1], b[2] + 8, b[3]] for b in sol.get(key, [])]
                if "bbox" in sol:
                    sol["bbox"] = [sol["bbox"][0] + 8, sol["bbox"][1], sol["bbox"][2] + 8, sol["bbox"][3]]
                if "points" in sol:
                    sol["points"] = [[p[0] + 8, p[1]] for p in sol["points"]]
                if "text" in sol:
                    sol["text"] = sol["text"] + " extra"
                texts.append(self.task.render(moved))
            else:
                texts.append("no idea")
        return SimpleNamespace(texts=texts)


@pytest.mark.parametrize("name", ["grounding", "counting", "ocr", "detection"])
def test_predictions_rescore_to_the_same_metrics(tmp_path, name):
    task = get_registry().task(name)
    samples = synthetic_samples(task, "val", 9, seed=0)
    metrics, records = evaluate_policy(ScriptedPolicy(task, samples), task, samples, batch_size=4)
    assert 0 < metrics["mean_reward"] < task.reward_range[1]  # a mix of right, partly right and wrong answers
    eval_dir.append(tmp_path, records)  # as `eval --out` saves them, batch by batch
    write_eval_dir(tmp_path, task, None, "synthetic val (seed 0)", None, metrics, records)
    result = run_cli("score", "--task", name, str(tmp_path / "predictions.jsonl"), "--json")
    assert result.returncode == 0, result.stderr
    rescored = json.loads(result.stdout)
    assert rescored == pytest.approx({**metrics, "records": 9}, abs=1e-9)  # mean reward and count as the table
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["metrics"] == pytest.approx(metrics) and summary["samples"] == 9
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") >= 9


@pytest.mark.slow  # an end-to-end model run: `pytest -m slow` and CI run it
def test_eval_command_on_the_embedded_default(tmp_path):
    out = tmp_path / "eval"
    result = run_cli("eval", "--task", "counting", "--limit", "4", "--batch-size", "2", "--threads", "1",
                     "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) == {"accuracy", "accuracy_official", "mae", "format_rate", "mean_reward"}
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [f"counting-heldout-0-{i}" for i in range(4)]
    rescored = run_cli("score", "--task", "counting", str(out / "predictions.jsonl"), "--json")
    assert json.loads(rescored.stdout) == pytest.approx({**metrics, "records": 4})
    assert (out / "report.html").is_file()


def _refcoco_fixture(root):
    (root / "data").mkdir(parents=True)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 90, 200)).save(buffer, format="JPEG")
    rows = [{"question_id": f"q{i}", "image": {"bytes": buffer.getvalue(), "path": f"{i}.jpg"},
             "answer": ["the thing"], "bbox": [4.0, 4.0, 20.0, 20.0], "file_name": f"{i}.jpg"} for i in range(2)]
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "testA-00000-of-00001.parquet")


@pytest.mark.slow  # an end-to-end model run: `pytest -m slow` and CI run it
def test_paper_numbers_beside_a_paper_benchmark(tmp_path):
    root = tmp_path / "RefCOCO"
    _refcoco_fixture(root)
    result = run_cli("eval", "--task", "grounding", "--data", str(root), "--split", "testA", "--threads", "1",
                     "--out", str(tmp_path / "out"), env={"COLUMNS": "160"})
    assert result.returncode == 0, result.stderr
    assert "RefCOCO testA" in result.stdout and "paper base" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "acc@0.5" in line)
    assert "0.896" in row and "0.914" in row  # PAPER.md: RefCOCO testA 89.6 -> 91.4
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert summary["benchmark"] == "RefCOCO testA" and summary["paper"]["acc@0.5"] == {"base": 0.896, "perception_r1": 0.914}
    assert "paper Perception-R1" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.slow  # an end-to-end model run: `pytest -m slow` and CI run it
def test_bad_data_is_one_line(tmp_path):
    (tmp_path / "val.jsonl").write_text('{"image": "a.jpg", "text": 5}\n')
    result = run_cli("eval", "--task", "ocr", "--data", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "val.jsonl:1: bad 'ocr' row (text must be a string)" in result.stderr
    result = run_cli("eval", "--task", "ocr", "--benchmark", "PageOCR")
    assert result.returncode == 2 and "without --data" in result.stderr
