"""verl and EasyR1: `perception-r1 export` writes each layout, read back the way each trainer reads it, and each
reward called exactly as that trainer calls it equals `perception-r1 score` (score_records)."""

from __future__ import annotations

import importlib.util
import io
import json
import re

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from perception_r1.cli import cli
from perception_r1.evaluate.scoring import score_file, score_records
from perception_r1.integrations.common import sample_from_ground_truth
from perception_r1.integrations.easyr1 import easyr1_prescale
from perception_r1.integrations.predictions import read_predictions
from perception_r1.registry import get_registry
from perception_r1.tasks.geometry import smart_resize

COMPLETIONS = ["(100,200),(400,500)", "(0,0),(1000,1000)", "not a box", '[{"bbox_2d": [1, 2, 30, 40]}]']


def export(tmp_path, fmt, *args):
    from perception_r1.cli import _register_commands

    _register_commands()
    result = CliRunner().invoke(cli, ["export", "--format", fmt, "--out", str(tmp_path / fmt), *args],
                                standalone_mode=False)
    assert result.exception is None, result.output
    return tmp_path / fmt, result.output


def load_reward_file(path, name):
    """The reward file as verl's load_extern_object / EasyR1's AutoRewardManager load it: by file path."""
    spec = importlib.util.spec_from_file_location("custom_reward_fn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, getattr(module, name)


def expected(task_name, truths, completions):
    records = [{**sample_from_ground_truth(t), "completion": c} for t, c in zip(truths, completions, strict=True)]
    scored, _ = score_records(get_registry().task(task_name), records, metrics=False)
    return [r["reward"] for r in scored]


@pytest.mark.parametrize("family,coords", [("qwen2_vl", "norm1000"), ("qwen2_5_vl", "resized")])
def test_verl_layout_and_compute_score(tmp_path, family, coords):
    out, printed = export(tmp_path, "verl", "--task", "grounding", "--limit", "4", "--model-family", family)
    assert f"custom_reward_function.path={(out / 'reward.py').resolve()}" in printed
    assert "custom_reward_function.name=compute_score" in printed
    table = pq.read_table(out / "train.parquet")
    assert set(table.column_names) == {"data_source", "prompt", "images", "ability", "reward_model", "extra_info"}
    rows = table.to_pylist()
    for row in rows:  # what verl's RLHFDataset._build_messages and its reward manager read
        assert row["data_source"] == "grounding"
        (turn,) = row["prompt"]
        assert turn["role"] == "user" and turn["content"].count("<image>") == len(row["images"]) == 1
        image = Image.open(io.BytesIO(row["images"][0]["bytes"]))
        truth = sample_from_ground_truth(row["reward_model"]["ground_truth"])
        assert row["reward_model"]["style"] == "rule" and list(image.size) == truth["image_size"]
        assert truth["coords"] == coords
        if coords == "resized":  # verl's qwen_vl_utils.fetch_image: factor 28, up to 16384 merged patches
            assert truth["resized_size"] == list(smart_resize(*truth["image_size"], max_pixels=28 * 28 * 16384))
    _, compute_score = load_reward_file(out / "reward.py", "compute_score")
    truths = [row["reward_model"]["ground_truth"] for row in rows]
    keys = set()
    for row, completion, want in zip(rows, COMPLETIONS, expected("grounding", truths, COMPLETIONS), strict=True):
        extra_info = dict(row["extra_info"], num_turns=None, rollout_reward_scores={})  # as naive.py adds them
        score = compute_score(data_source=row["data_source"], solution_str=completion,
                              ground_truth=row["reward_model"]["ground_truth"], extra_info=extra_info)
        assert abs(score["score"] - want) <= 1e-9
        assert all(isinstance(v, float) for v in score.values())  # verl averages every key it logs
        keys.add(tuple(sorted(score)))
    assert len(keys) == 1  # verl's validation asserts every extra-info list is as long as the scores


def test_verl_compute_score_refuses_a_foreign_data_source(tmp_path):
    from perception_r1.errors import UserError
    from perception_r1.integrations.verl import compute_score

    out, _ = export(tmp_path, "verl", "--task", "counting", "--limit", "1")
    row = pq.read_table(out / "train.parquet").to_pylist()[0]
    with pytest.raises(UserError, match="data_source 'grounding'.*task 'counting'"):
        compute_score("grounding", "(1,2),(3,4)", row["reward_model"]["ground_truth"], row["extra_info"])


@pytest.mark.parametrize("family,coords", [("qwen2_vl", "norm1000"), ("qwen2_5_vl", "resized")])
def test_easyr1_layout_and_batch_reward(tmp_path, family, coords):
    import datasets

    out, printed = export(tmp_path, "easyr1", "--task", "detection", "--limit", "4", "--model-family", family)
    assert f"worker.reward.reward_function={(out / 'reward.py').resolve()}:compute_score" in printed
    # EasyR1's RLHFDataset: load_dataset("json", data_files=...), keys problem / answer / images, image_dir joined
    data = datasets.load_dataset("json", data_files=str(out / "train.jsonl"), split="train")
    assert set(data.column_names) == {"problem", "answer", "images"}
    module, compute_score = load_reward_file(out / "reward.py", "compute_score")
    assert module.REWARD_TYPE == "batch"
    truths = []
    for row in data:
        assert row["problem"].count("<image>") == len(row["images"]) == 1
        truth = sample_from_ground_truth(row["answer"])
        with Image.open(out / row["images"][0]) as image:
            assert list(image.size) == truth["image_size"]
        assert truth["coords"] == coords
        if coords == "resized":  # EasyR1 rescales into 262144..4194304 pixels, then the processor resizes
            seen = easyr1_prescale()(*truth["image_size"])
            assert seen[0] * seen[1] >= 262144 * 0.99
            assert truth["resized_size"] == list(smart_resize(*seen, max_pixels=28 * 28 * 16384))
        truths.append(row["answer"])
    task = get_registry().task("detection")
    completions = [task.render(sample_from_ground_truth(truths[0])), *COMPLETIONS[1:]]
    inputs = [{"response": c, "response_length": len(c), "ground_truth": t}
              for c, t in zip(completions, truths, strict=True)]
    scores = compute_score(inputs)
    want = expected("detection", truths, completions)
    assert [s["overall"] for s in scores] == pytest.approx(want, abs=1e-9)
    assert scores[0]["overall"] == pytest.approx(task.reward_range[1])  # the ideal answer, read in its space
    assert all(isinstance(v, float) for s in scores for v in s.values())


def test_easyr1_custom_reward_weighted_as_run_flags(tmp_path, plugin_dir):
    from helpers import make_dist

    make_dist(plugin_dir, "shortness", "shortness_plugin", """
from perception_r1 import hookimpl

@hookimpl
def register_rewards(register):
    register("shortness.len", lambda completions, samples, **kw: [-len(c) / 100 for c in completions])
""")
    out, _ = export(tmp_path, "easyr1", "--task", "ocr", "--limit", "2", "--reward", "shortness.len:0.5")
    _, compute_score = load_reward_file(out / "reward.py", "compute_score")
    truths = [json.loads(line)["answer"] for line in (out / "train.jsonl").read_text().splitlines()]
    inputs = [{"response": "abcd", "response_length": 4, "ground_truth": t} for t in truths]
    scores = compute_score(inputs)
    for score, want in zip(scores, expected("ocr", truths, ["abcd", "abcd"]), strict=True):
        assert score["overall"] == pytest.approx(want - 0.02, abs=1e-9)
        assert score["shortness.len"] == pytest.approx(-0.04)


def test_trl_export_reads_back_and_its_reward_file_loads(tmp_path):
    import datasets

    out, printed = export(tmp_path, "trl", "--task", "ocr", "--limit", "3")
    data = datasets.load_from_disk(str(out / "train"))
    assert set(data.column_names) == {"prompt", "image", "ground_truth"} and len(data) == 3
    assert "load_from_disk" in printed and "REWARD_FUNCS" in printed
    _, funcs = load_reward_file(out / "reward.py", "REWARD_FUNCS")
    assert [f.__name__ for f in funcs] == ["ocr"]
    truths = data["ground_truth"]
    values = funcs[0](prompts=data["prompt"], completions=["a", "b", "c"], ground_truth=truths)
    assert values == pytest.approx(expected("ocr", truths, ["a", "b", "c"]), abs=1e-9)


def test_verl_generations_dump_scores_like_score(tmp_path):
    """verl's validation dump (`_dump_generations`: input, output, gts, score, step) is scored by `score --from
    verl` exactly as the records it stands for."""
    out, _ = export(tmp_path, "verl", "--task", "grounding", "--limit", "4")
    rows = pq.read_table(out / "train.parquet").to_pylist()
    dump = tmp_path / "1.jsonl"
    dump.write_text("".join(json.dumps({"input": "x", "output": c, "gts": r["reward_model"]["ground_truth"],
                                        "score": 0.0, "step": 1}) + "\n" for c, r in zip(COMPLETIONS, rows, strict=True)))
    task = get_registry().task("grounding")
    scored, metrics = score_file(dump, task, rows=read_predictions(dump, "verl"))
    truths = [r["reward_model"]["ground_truth"] for r in rows]
    assert [r["reward"] for r in scored] == pytest.approx(expected("grounding", truths, COMPLETIONS), abs=1e-9)
    records = [{**sample_from_ground_truth(t), "completion": c} for t, c in zip(truths, COMPLETIONS, strict=True)]
    assert metrics == task.evaluate(records)


def test_bad_inputs_are_one_line_exit_2(tmp_path, capsys):
    from perception_r1.cli import main

    cases = [
        (["export", "--task", "nope", "--format", "verl", "--out", str(tmp_path / "a")], "unknown task 'nope'"),
        (["export", "--task", "ocr", "--format", "swift", "--out", str(tmp_path / "b")], "'swift' is not one of"),
        (["export", "--task", "grounding", "--format", "trl", "--out", str(tmp_path / "c"), "--model-family", "gpt2x"],
         "unknown model family 'gpt2x'"),
        (["export", "--task", "grounding", "--format", "trl", "--out", str(tmp_path / "d"), "--split", "test"],
         "unknown split 'test'"),
        (["score", "--task", "grounding", "--from", "verl", str(tmp_path / "missing.jsonl")], "does not exist"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
    out = tmp_path / "e"
    assert main(["export", "--task", "ocr", "--format", "verl", "--out", str(out), "--limit", "1"]) == 0
    assert main(["export", "--task", "ocr", "--format", "verl", "--out", str(out), "--limit", "1"]) == 2
    assert re.search(r"train\.parquet exists", capsys.readouterr().err)


def test_export_reads_data_through_the_tasks_loader(tmp_path):
    """`--data`: a task's own data format (grounding's plain JSONL here), images read from inside the data."""
    root = tmp_path / "refs"
    root.mkdir()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(root / "a.jpg")
    (root / "val.jsonl").write_text(json.dumps({"image": "a.jpg", "expression": "red box", "bbox": [10, 20, 300, 400]}) + "\n")
    out, _ = export(tmp_path, "verl", "--task", "grounding", "--data", str(root), "--split", "val",
                    "--model-family", "qwen2_5_vl")
    (row,) = pq.read_table(out / "val.parquet").to_pylist()
    truth = sample_from_ground_truth(row["reward_model"]["ground_truth"])
    assert truth["solution"] == {"bbox": [10.0, 20.0, 300.0, 400.0]} and truth["image_size"] == [640, 480]
    assert truth["resized_size"] == [644, 476]  # Qwen2.5-VL's processor: multiples of 28 nearest 640 x 480
    assert "red box" in row["prompt"][0]["content"]
    assert Image.open(io.BytesIO(row["images"][0]["bytes"])).size == (640, 480)


def test_foreign_predictions_scored_and_drawn(tmp_path):
    """`score --from verl --out DIR/predictions.jsonl` then `report DIR`: each exported sample is drawn."""
    from perception_r1.cli import main

    out, _ = export(tmp_path, "verl", "--task", "grounding", "--limit", "3")
    rows = pq.read_table(out / "train.parquet").to_pylist()
    dump = tmp_path / "dump.jsonl"
    dump.write_text("".join(json.dumps({"output": c, "gts": r["reward_model"]["ground_truth"]}) + "\n"
                            for c, r in zip(COMPLETIONS, rows, strict=False)))
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    assert main(["score", "--task", "grounding", "--from", "verl", str(dump), "--out",
                 str(report_dir / "predictions.jsonl")]) == 0
    assert main(["report", str(report_dir)]) == 0
    html = (report_dir / "report.html").read_text()
    assert html.count("data:image/png") >= 3
    for row in rows:
        assert row["extra_info"]["id"] in html


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_every_installed_task_round_trips(tmp_path, monkeypatch, family):
    """Every installed task (built-ins, and text-spotting when installed): the task's ideal answer in the exported
    space earns its maximum through verl's and EasyR1's calls."""
    from perception_r1.integrations import easyr1, verl
    from perception_r1.registry import reset_registry

    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "text-spotting")
    reset_registry()
    try:
        registry = get_registry()
        for name, task in sorted(registry.tasks.items()):
            rows = verl.rows(name, model_family=family, limit=2)
            truths = [row["reward_model"]["ground_truth"] for row in rows]
            ideal = [task.render(sample_from_ground_truth(t)) for t in truths]
            for row, completion in zip(rows, ideal, strict=True):
                score = verl.compute_score(data_source=row["data_source"], solution_str=completion,
                                           ground_truth=row["reward_model"]["ground_truth"], extra_info=row["extra_info"])
                assert score["score"] == pytest.approx(task.reward_range[1]), name
            table = easyr1.rows(name, tmp_path / name, model_family=family, limit=2)
            inputs = [{"response": task.render(sample_from_ground_truth(r["answer"])), "response_length": 1,
                       "ground_truth": r["answer"]} for r in table]
            assert [s["overall"] for s in easyr1.compute_score(inputs)] == pytest.approx([task.reward_range[1]] * 2)
    finally:
        reset_registry()
