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
from types import SimpleNamespace

import pytest
from helpers import make_dist, run_cli

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
        one_line_error(cli(capsys, "run", "--task", "ocr", "--out", run), "is being written by process")
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


G_OK = {"completion": "(1,1),(2,2)", "image_size": [10, 10], "solution": {"bbox": [0, 0, 5, 5]}}
FIRST = {"grounding": G_OK,
         "detection": {**G_OK, "completion": "[]", "solution": {"boxes": [[0, 0, 5, 5]], "labels": ["a"]}},
         "counting": {**G_OK, "completion": "", "solution": {"points": [[1, 1]]}}}


def g_line(size: str = "[9, 9]", bbox: str = "[0, 0, 5, 5]", extra: str = "") -> str:
    """A grounding record written by hand (numbers JSON cannot produce from Python: Infinity, 1e400, 400 digits)."""
    return f'{{"completion": ""{extra}, "image_size": {size}, "solution": {{"bbox": {bbox}}}}}'


BAD_LINES = [  # (task, line 2 of the file, what the one-line error says)
    ("grounding", g_line(size="[Infinity, 10]"), "Infinity"),
    ("grounding", g_line(size="[1e400, 10]"), "image_size"),
    ("grounding", g_line(size=f"[{BIG}, 10]"), "image_size"),
    ("grounding", g_line(extra=', "x": ' + "9" * 5000), "digits"),
    ("grounding", '{"completion": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ("grounding", g_line(bbox="[0, 0, 1e300, 5]"), "huge number"),
    ("grounding", g_line(bbox=f"[0, 0, {BIG}, 5]"), "huge number"),
    ("grounding", json.dumps({**G_OK, "coords": "none"}), "coords 'none' cannot be used by task 'grounding'"),
    ("grounding", json.dumps({**G_OK, "coords": "resized", "resized_size": [0, 0]}), "resized_size"),
    ("detection", json.dumps({**FIRST["detection"], "solution": {"boxes": [[0, 0, 5, 5]], "labels": ["a", "b"]}}),
     "1 boxes but 2 labels"),
    ("counting", json.dumps({**FIRST["counting"], "solution": {"points": [[1e300, 1]]}}), "huge"),
]


@pytest.mark.parametrize(("task", "line", "says"), BAD_LINES, ids=[f"{i}-{t}" for i, (t, _, _) in enumerate(BAD_LINES)])
def test_bad_record_lines_are_file_line_errors(capsys, tmp_path, task, line, says):
    src = write_jsonl(tmp_path / "r.jsonl", [FIRST[task], line])
    out = tmp_path / "keep.jsonl"
    out.write_text("kept\n")
    result = cli(capsys, "score", "--task", task, src, "--out", out, "--force")
    one_line_error(result, f"{src}:2: ", says)
    assert len(result[2]) < 400 and out.read_text() == "kept\n"


def test_detection_truths_all_empty_say_ap_is_undefined(capsys, tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", [{"completion": "[]", "image_size": [9, 9],
                                              "solution": {"boxes": [], "labels": []}}])
    one_line_error(cli(capsys, "score", "--task", "detection", src), str(src), "AP is undefined")


def test_out_whose_parent_is_a_file_or_name_too_long(capsys, tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", [OCR_ROW])
    (tmp_path / "file").write_text("x")
    one_line_error(cli(capsys, "score", "--task", "ocr", src, "--out", tmp_path / "file" / "o.jsonl"), "cannot write")
    one_line_error(cli(capsys, "score", "--task", "ocr", src, "--out", tmp_path / ("n" * 300)), "--out")
    one_line_error(cli(capsys, "run", "--task", "ocr", "--out", tmp_path / "file" / "run"), "cannot create")
    one_line_error(cli(capsys, "eval", "--task", "ocr", "--out", tmp_path / "file" / "ev"), "cannot create")
    one_line_error(cli(capsys, "sft", "--task", "ocr", "--out", tmp_path / "file" / "m"), "cannot create")
    one_line_error(cli(capsys, "eval", "--task", "ocr", "--out", _with(tmp_path / "ev", "metrics.json")),
                   "already holds a finished evaluation (metrics.json)")


def _with(folder: Path, name: str) -> Path:
    folder.mkdir()
    (folder / name).write_text("{}")
    return folder


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's first bytes)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.slow  # decodes 64-400 Mpixel headers through the whole loader
@pytest.mark.parametrize(("size", "says"), [((20000, 20000), "decompression bomb"), ((8000, 8000), "more than the cap")])
def test_decompression_bomb_in_a_data_set(capsys, tmp_path, size, says):
    bomb_png(tmp_path / "bomb.png", *size)
    write_jsonl(tmp_path / "val.jsonl", [{"image": "bomb.png", "text": "hi"}])
    one_line_error(cli(capsys, "eval", "--task", "ocr", "--data", tmp_path), f"{tmp_path / 'val.jsonl'}:1:", says)
    result = run_cli("eval", "--task", "ocr", "--data", str(tmp_path))  # a real process: no PIL warning line either
    one_line_error((result.returncode, result.stdout, result.stderr), says)
    from perception_r1.data.prepare import prepare_sample
    from perception_r1.errors import UserError

    with pytest.raises(UserError, match="sample b: .*(decompression bomb|more than the cap)"):
        prepare_sample({"id": "b", "image": str(tmp_path / "bomb.png")}, object(), SimpleNamespace(name="t"))


def test_image_name_longer_than_the_os_allows(capsys, tmp_path):
    write_jsonl(tmp_path / "val.jsonl", [{"image": "n" * 300 + ".png", "text": "hi"}])
    one_line_error(cli(capsys, "eval", "--task", "ocr", "--data", tmp_path), f"{tmp_path / 'val.jsonl'}:1:", "unusable")


def test_chat_template_the_sandbox_refuses(tmp_path, small_model):
    import shutil

    from perception_r1.errors import UserError
    from perception_r1.model.policy import Policy

    model = Path(shutil.copytree(small_model, tmp_path / "m"))
    (model / "chat_template.jinja").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(UserError, match="chat template cannot be used .*SecurityError|chat template cannot be used"):
        Policy.load(model).chat_text("hi")


def test_malformed_eval_json_metrics_and_config(capsys, tmp_path):
    from perception_r1.errors import UserError
    from perception_r1.train.trainer import read_results

    (tmp_path / "eval.json").write_text('{"before": [1, 2]}')
    with pytest.raises(UserError, match=r"eval.json:1: 'before' must be an object"):
        read_results(tmp_path / "eval.json")
    (tmp_path / "eval.json").write_text("[]")
    one_line_error(cli(capsys, "report", tmp_path), "eval.json:1: expected a JSON object")
    (tmp_path / "eval.json").unlink()
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "reward": [}\n')
    one_line_error(cli(capsys, "report", tmp_path), "metrics.jsonl:2: not valid JSON")
    (tmp_path / "c.yaml").write_text("steps: [1,\n  2\nseed: {")
    one_line_error(cli(capsys, "run", "--config", tmp_path / "c.yaml"), "c.yaml:", "is not valid YAML")
    (tmp_path / "c.yaml").write_text("- 1\n- 2\n")
    one_line_error(cli(capsys, "run", "--config", tmp_path / "c.yaml"), "must be a mapping")


# -- 4. bounded memory and time -------------------------------------------------------------------------
def test_yaml_alias_bomb_is_refused_small_and_fast(capsys, tmp_path):
    import time

    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    result = cli(capsys, "run", "--config", tmp_path / "bomb.yaml")
    one_line_error(result, "bomb.yaml:", "aliases (*name) are not allowed")
    assert time.perf_counter() - start < 5 and len(result[2]) < 300
    one_line_error(cli(capsys, "run", "--set", "steps=*a"), "--set")


def test_report_canvas_and_synthetic_regeneration_are_capped(tmp_path):
    from perception_r1.evaluate.report import MAX_REGENERATED, build_report

    rows = [{"task": "grounding", "id": f"grounding-heldout-0-{MAX_REGENERATED * 5000}", "image_size": [100000, 100000],
             "solution": {"bbox": [0, 0, 5, 5]}, "completion": "(1,1),(2,2)", "reward": 1.0},
            {"task": "grounding", "id": "x", "image_size": [10 ** 400, 5], "solution": {"bbox": [0, 0, 5, 5]},
             "completion": "", "reward": 0.0}]
    write_jsonl(tmp_path / "predictions.jsonl", rows)
    page = build_report(tmp_path)  # was a 30 GB canvas and 50M regenerated samples
    assert "not regenerated" in page


def test_ocr_truth_length_is_capped(capsys, tmp_path):
    import time

    from perception_r1.tasks.ocr import MAX_TRUTH_CHARS

    src = write_jsonl(tmp_path / "o.jsonl", [OCR_ROW, {**OCR_ROW, "solution": {"text": "ab " * 100_000}}])
    result = cli(capsys, "score", "--task", "ocr", src)
    one_line_error(result, f"{src}:2:", "is too long")
    assert len(result[2]) < 400
    task = get_registry().tasks["ocr"]
    start = time.perf_counter()
    task.reward("x" * 40_000, {"solution": {"text": "ab " * 100_000}})  # unvalidated: compared up to the cap
    assert time.perf_counter() - start < 2 and MAX_TRUTH_CHARS == 6000


def test_huge_images_are_downscaled_with_the_original_size_kept():
    from PIL import Image

    from perception_r1.data.limits import MAX_KEPT_PIXELS
    from perception_r1.data.prepare import prepare_sample

    class Space:
        coord_space = "norm1000"

    prepared = prepare_sample({"id": "big", "image": Image.new("RGB", (6000, 3000))}, Space(),
                              SimpleNamespace(name="t", coord_space="pixels"))
    assert prepared["image_size"] == [6000, 3000]
    assert prepared["image"].width * prepared["image"].height <= MAX_KEPT_PIXELS
    assert abs(prepared["image"].width / prepared["image"].height - 2) < 0.01


# -- 6. local files pulled into a report or a data set ----------------------------------------------------
def test_data_set_images_must_stay_inside_the_data_directory(capsys, tmp_path, monkeypatch):
    from PIL import Image

    data, outside = tmp_path / "data", tmp_path / "private"
    data.mkdir()
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(outside / "secret.png")
    for image in ("../private/secret.png", str(outside / "secret.png")):
        write_jsonl(data / "val.jsonl", [{"image": image, "text": "hi"}])
        one_line_error(cli(capsys, "eval", "--task", "ocr", "--data", data), f"{data / 'val.jsonl'}:1:",
                       "outside the data directory", "PERCEPTION_R1_IMAGE_ROOTS")
    from perception_r1.data.loaders import load_samples

    monkeypatch.setenv("PERCEPTION_R1_IMAGE_ROOTS", str(outside))
    assert len(load_samples(get_registry().task("ocr"), data).samples) == 1


def test_report_embeds_images_only_from_the_run_and_data_directories(tmp_path, monkeypatch):
    from PIL import Image

    from perception_r1.evaluate.report import build_report

    run, outside = tmp_path / "run", tmp_path / "private"
    run.mkdir()
    outside.mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(outside / "secret.png")
    Image.new("RGB", (8, 8)).save(run / "mine.png")
    rows = [{**OCR_ROW, "task": "ocr", "id": "a", "reward": 1.0, "image_path": str(outside / "secret.png")},
            {**OCR_ROW, "task": "ocr", "id": "b", "reward": 0.0, "image_path": str(run / "mine.png")}]
    write_jsonl(run / "predictions.jsonl", rows)
    page = build_report(run)
    assert page.count("outside the run and data directories") == 1
    monkeypatch.setenv("PERCEPTION_R1_IMAGE_ROOTS", str(outside))
    assert "outside the run and data directories" not in build_report(run)


def test_task_names_and_descriptions_are_not_markup(capsys, monkeypatch):
    task = get_registry().tasks["ocr"]
    monkeypatch.setattr(task, "description", "reads [/x] and [bold]text")
    code, out, err = cli(capsys, "tasks")
    assert code == 0, err
    assert "[/x]" in out and "[bold]text" in out


def test_whole_json_data_files_with_huge_numbers_or_deep_nesting(tmp_path):
    from perception_r1.errors import UserError
    from perception_r1.tasks.rows import read_json

    for name, text in (("deep.json", "[" * 100_000 + "]" * 100_000), ("digits.json", '{"a": ' + "9" * 5000 + "}")):
        (tmp_path / name).write_text(text)
        with pytest.raises(UserError, match=f"{name}: not valid JSON"):
            read_json(tmp_path / name)
