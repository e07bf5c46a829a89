"""The paper's official evaluation files, written as PR1's eval scripts read them, load through each task's
``load`` (and ``eval --data``), and the official metrics equal a straight transcription of each official
formula (issue 24). The transcriptions below are tests only; the package has its own code."""

from __future__ import annotations

import json
import random

import pytest
from helpers import cli_in_process
from PIL import Image, ImageDraw

from perception_r1.data.loaders import load_samples
from perception_r1.errors import UserError
from perception_r1.registry import get_registry


def _task(name):
    return get_registry().task(name)


def _image(path, size=(64, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (240, 240, 240))
    ImageDraw.Draw(image).rectangle([8, 6, 30, 28], fill=(200, 30, 30))
    image.save(path)


# -- grounding: PR1 / VLM-R1 JSON lists --------------------------------------------------------------
def _refcoco(tmp_path, rows, name="refcoco_val.json"):
    """A pretty-printed official grounding file in ``ann/`` and its images under ``coco/train2014/``."""
    for row in rows:
        _image(tmp_path / "coco" / "train2014" / row["image"])
    file = tmp_path / "ann" / name
    file.parent.mkdir(exist_ok=True)
    file.write_text(json.dumps(rows, indent=2))
    return file


PR1_ROWS = [
    {"image": "COCO_train2014_000000000009.jpg", "problem": "red box", "solution": [8, 6, 30, 28],
     "normalized_solution": [125, 125, 469, 583]},
    {"image": "COCO_train2014_000000000025.jpg", "problem": "the grey part", "solution": [32, 0, 63, 47],
     "normalized_solution": [500, 0, 984, 979]},
]


def test_pr1_grounding_json_list_with_an_image_root(tmp_path, monkeypatch):
    file = _refcoco(tmp_path, PR1_ROWS)
    with pytest.raises(UserError, match=r"refcoco_val\.json:1: bad 'grounding' row \(image COCO_train2014_0+9\.jpg "
                                        r"is not beside refcoco_val\.json, in images/ or under .*IMAGE_ROOTS"):
        load_samples(_task("grounding"), file)
    monkeypatch.setenv("PERCEPTION_R1_IMAGE_ROOTS", str(tmp_path / "coco" / "train2014"))
    loaded = load_samples(_task("grounding"), file)
    assert loaded.format == "pr1-json" and loaded.benchmark == "RefCOCO val"
    assert [s["query"] for s in loaded.samples] == [{"expression": "red box"}, {"expression": "the grey part"}]
    assert loaded.samples[1]["solution"] == {"bbox": [32.0, 0.0, 63.0, 47.0]}
    assert loaded.samples[0]["image_size"] == [64, 48]


@pytest.mark.parametrize(("name", "expected"), [
    ("refcoco_testA.json", "RefCOCO testA"), ("refcocop_testB.json", "RefCOCO+ testB"),
    ("refcocog_test.json", "RefCOCOg test"), ("refcocog_val.json", "RefCOCOg val"), ("lisa_test.json", None),
])
def test_grounding_benchmark_from_the_file_name(tmp_path, name, expected):
    file = tmp_path / name
    rows = PR1_ROWS[:1]
    _image(tmp_path / rows[0]["image"])
    file.write_text(json.dumps(rows))  # on one line: a JSON list all the same
    assert load_samples(_task("grounding"), file).benchmark == expected


def test_pr1_bad_row_and_unknown_layout_name_the_file_row(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTION_R1_IMAGE_ROOTS", str(tmp_path / "coco" / "train2014"))
    swapped = [PR1_ROWS[0], {**PR1_ROWS[1], "solution": [63, 0, 32, 47]}]
    with pytest.raises(UserError, match=r"refcoco_val\.json:2: bad 'grounding' row \(solution corners out of order"):
        load_samples(_task("grounding"), _refcoco(tmp_path, swapped))
    other = [{"image": "a.jpg", "problem": "cat", "box": [1, 2, 3, 4]}]
    with pytest.raises(UserError) as info:
        load_samples(_task("grounding"), _refcoco(tmp_path, other))
    message = str(info.value)
    assert "\n" not in message and "refcoco_val.json:1: matches no 'grounding' layout" in message
    assert "(tried pr1-json: missing 'solution')" in message
    assert "pr1-json {image, problem, solution}; qwen-vl-jsonl {image, sent, bbox}; jsonl {image, expression}" in message


def test_a_pretty_printed_object_is_named_as_such(tmp_path):
    file = tmp_path / "refcoco_val.json"
    file.write_text(json.dumps({"images": [], "annotations": []}, indent=2))
    with pytest.raises(UserError, match=r"refcoco_val\.json: one JSON object, not rows \(a JSON list of objects"):
        load_samples(_task("grounding"), file)
    file.write_text(json.dumps([[1, 2]], indent=2))
    with pytest.raises(UserError, match=r"refcoco_val\.json:1: expected a JSON object, got list"):
        load_samples(_task("grounding"), file)


def test_eval_cli_reads_the_official_grounding_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTION_R1_IMAGE_ROOTS", str(tmp_path / "coco" / "train2014"))
    monkeypatch.setenv("COLUMNS", "160")
    file = _refcoco(tmp_path, PR1_ROWS)
    result = cli_in_process("eval", "--task", "grounding", "--data", str(file), "--max-new-tokens", "8",
                            "--threads", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RefCOCO val" in result.stdout and "paper base" in result.stdout and "center_acc" in result.stdout
    assert "answers read as norm1000 coordinates (the model family's)" in result.stderr


# -- grounding metrics against the official evaluate_grounding.py formulas -------------------------------
def official_iou(box1, box2):
    """The official IoU: intersection over union with 1e-10 added to the denominator."""
    ix1, iy1 = max(box1[0], box2[0]), max(box1[1], box2[1])
    ix2, iy2 = min(box1[2], box2[2]), min(box1[3], box2[3])
    inter = max(0, ix2 - ix1) * max(0, iy2 - iy1)
    union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - inter
    return inter / (union + 1e-10)


def official_center(pred, gt):
    cx, cy = (pred[0] + pred[2]) / 2, (pred[1] + pred[3]) / 2
    return gt[0] <= cx <= gt[2] and gt[1] <= cy <= gt[3]


def test_grounding_metrics_equal_the_official_formulas():
    # a 1000 x 1000 image: the 0-1000 answer, normalized_solution and the pixel solution coincide, so the official
    # script's comparison and ours see the same numbers
    rng = random.Random(7)
    records, preds, truths = [], [], []
    for _ in range(200):
        x1, y1 = rng.randint(0, 800), rng.randint(0, 800)
        gt = [x1, y1, x1 + rng.randint(5, 199), y1 + rng.randint(5, 199)]
        dx, dy = rng.randint(-150, 150), rng.randint(-150, 150)
        pred = [max(0, gt[0] + dx), max(0, gt[1] + dy), gt[2] + dx + rng.randint(0, 60), gt[3] + dy + rng.randint(0, 60)]
        records.append({"image_size": [1000, 1000], "solution": {"bbox": gt},
                        "completion": f"<|box_start|>({pred[0]},{pred[1]}),({pred[2]},{pred[3]})<|box_end|>"})
        preds.append(pred)
        truths.append(gt)
    metrics = _task("grounding").evaluate(records)
    ious = [official_iou(p, g) for p, g in zip(preds, truths, strict=True)]
    for t in (0.1, 0.3, 0.5, 0.75, 0.95):
        assert metrics[f"acc@{t}"] == pytest.approx(sum(i >= t for i in ious) / len(ious), abs=1e-9)
    assert metrics["miou"] == pytest.approx(sum(ious) / len(ious), abs=1e-9)
    centred = [official_center(p, g) for p, g in zip(preds, truths, strict=True)]
    assert metrics["center_acc"] == pytest.approx(sum(centred) / len(centred), abs=1e-9)
    assert 0 < metrics["center_acc"] < 1 and 0 < metrics["acc@0.5"] < metrics["acc@0.1"] < 1  # the fixture discriminates


# -- counting: PixMo-Count evaluation JSONL --------------------------------------------------------------
def _pixmo(tmp_path, rows, name="pixmo_count_test540.jsonl"):
    for row in rows:
        if isinstance(row.get("image_path"), str):
            _image(tmp_path / "images" / row["image_path"])
    file = tmp_path / name
    file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return file


PIXMO_ROWS = [{"image_path": "a.jpg", "question": "red squares", "ground_truth": 3},
              {"image_path": "b.jpg", "question": "people", "ground_truth": 0}]


def test_pixmo_count_eval_jsonl_gives_counts(tmp_path):
    loaded = load_samples(_task("counting"), _pixmo(tmp_path, PIXMO_ROWS))
    assert loaded.format == "pixmo-count-eval" and loaded.benchmark == "PixMo-Count test"
    assert [s["solution"] for s in loaded.samples] == [{"count": 3}, {"count": 0}]
    assert loaded.samples[0]["query"] == {"object": "red squares"}
    official_name = "pixmo_count_validation540_counting_problems_label.jsonl"
    assert load_samples(_task("counting"), _pixmo(tmp_path, PIXMO_ROWS, official_name)).benchmark == "PixMo-Count val"
    bad = [PIXMO_ROWS[0], {**PIXMO_ROWS[1], "ground_truth": 2.5}]
    with pytest.raises(UserError, match=r"pixmo_count_test540\.jsonl:2: bad 'counting' row \(ground_truth must be an "
                                        r"integer count"):
        load_samples(_task("counting"), _pixmo(tmp_path, bad))
    with pytest.raises(UserError, match=r"tried pixmo-count-eval: missing 'ground_truth'\); the 'counting' layouts "
                                        r"are: pixmo-count-eval \{image_path, question, ground_truth\}; jsonl"):
        load_samples(_task("counting"), _pixmo(tmp_path, [{"image_path": "a.jpg", "question": "x", "count": 3}]))


def test_eval_cli_reads_the_pixmo_count_file(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    result = cli_in_process("eval", "--task", "counting", "--data", str(_pixmo(tmp_path, PIXMO_ROWS)),
                            "--max-new-tokens", "16", "--threads", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    shown = " ".join(result.stdout.split())  # the table's title wraps at the table's width
    assert "PixMo-Count test" in shown and "paper base" in shown


def test_pixmo_images_under_a_separate_image_dir(tmp_path, monkeypatch):
    # the official script: os.path.join(image_dir, image_path), anno_dir apart
    _image(tmp_path / "pixmo_images" / "a.jpg")
    file = tmp_path / "anno" / "pixmo_count_test540_counting_problems_label.jsonl"
    file.parent.mkdir()
    file.write_text(json.dumps(PIXMO_ROWS[0]) + "\n")
    with pytest.raises(UserError, match=r"counting_problems_label\.jsonl:1: bad 'counting' row \(image a\.jpg is not"):
        load_samples(_task("counting"), file)
    monkeypatch.setenv("PERCEPTION_R1_IMAGE_ROOTS", str(tmp_path / "pixmo_images"))
    loaded = load_samples(_task("counting"), file)
    assert loaded.benchmark == "PixMo-Count test" and loaded.samples[0]["image_path"] == str(tmp_path / "pixmo_images" / "a.jpg")


def test_count_only_samples_score_the_count():
    task = _task("counting")
    sample = {"image_size": [64, 48], "solution": {"count": 3}}
    three = "<|box_start|>(1,1),(5,5)<|box_end|><|box_start|>(10,10),(20,20)<|box_end|><|box_start|>(30,30),(40,40)<|box_end|>"
    assert task.reward(three, sample).total == 1.0 and task.reward(three, sample).components["distance"] is None
    one = "<|box_start|>(1,1),(5,5)<|box_end|>"
    assert task.reward(one, sample).total == pytest.approx(1 / 3)
    assert task.reward("none", {**sample, "solution": {"count": 0}}).total == 1.0
    records = [{**sample, "completion": three}, {**sample, "completion": one}, {**sample, "completion": "oops"}]
    assert task.evaluate(records) == pytest.approx({"accuracy": 1 / 3, "accuracy_official": 1 / 3,
                                                    "mae": (0 + 2 + 3) / 3, "format_rate": 2 / 3})
    assert task.objects({"count": 3}) == 3
    with pytest.raises(UserError, match="count-only sample"):
        task.render(sample)


# -- OCR: PageOCR JSON lists ------------------------------------------------------------------------------
def _page_ocr(tmp_path, rows, name="en_page_ocr.json"):
    for row in rows:  # where the official script reads them: <image_dir>/<lang>_pdf_png/<image>
        _image(tmp_path / "images" / f"{name.split('_')[0]}_pdf_png" / row["image"])
    file = tmp_path / name
    file.write_text(json.dumps(rows, indent=4, ensure_ascii=False))
    return file


def _conversation(image, truth):
    return {"image": image, "conversations": [{"from": "human", "value": "<image>\nOCR this image: "},
                                              {"from": "gpt", "value": truth}]}


def test_page_ocr_json_list(tmp_path):
    rows = [_conversation("1.png", "Hello  world\nsecond line"), _conversation("2.png", "x")]
    loaded = load_samples(_task("ocr"), _page_ocr(tmp_path, rows))
    assert loaded.format == "page-ocr-json" and loaded.benchmark == "PageOCR"
    assert [s["solution"]["text"] for s in loaded.samples] == ["Hello  world\nsecond line", "x"]
    chinese = load_samples(_task("ocr"), _page_ocr(tmp_path, rows, "cn_page_ocr.json"))
    assert chinese.benchmark is None and chinese.samples[0]["image_path"].endswith("cn_pdf_png/1.png")
    bad = [rows[0], {"image": "2.png", "conversations": [{"value": "q"}]}]
    with pytest.raises(UserError, match=r"en_page_ocr\.json:2: bad 'ocr' row \(conversations must be a list whose "
                                        r"second entry"):
        load_samples(_task("ocr"), _page_ocr(tmp_path, bad))


def test_eval_cli_reads_the_page_ocr_file(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    file = _page_ocr(tmp_path, [_conversation("1.png", "Hello world")])
    result = cli_in_process("eval", "--task", "ocr", "--data", str(file), "--max-new-tokens", "8", "--threads", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "PageOCR" in result.stdout and "f1_official" in result.stdout and "paper base" in result.stdout


# -- OCR metrics against nltk and jieba themselves (the official script's calls) ---------------------------
OCR_PAIRS = [
    ("The quick brown fox", "The quick brown fox jumps over the lazy dog"),
    ("the the cat sat on the mat mat", "the cat sat on the mat"),
    ("Hello  world\n", "Hello world"),
    ("completely different words", "nothing in common here"),
    ("a b c d e f", "a b c d e f"),
    ("", "some truth"),
    ("这是一个测试文本", "这是一个测试的文本"),
    ("今天天气很好，我们去公园散步。", "今天天气很好，我们去公园。"),
    ("OCR 识别结果 2024", "OCR 识别的结果 2024"),
]


def official_ocr(pred, gt):
    """The official evaluate_ocr.py's per-sample metrics, calling nltk and jieba as it does."""
    nltk = pytest.importorskip("nltk")
    jieba = pytest.importorskip("jieba")
    from nltk.metrics import f_measure, precision, recall
    from nltk.translate.bleu_score import sentence_bleu

    if any("\u4e00" <= ch <= "\u9fa5" for ch in pred + gt):
        reference, hypothesis = jieba.lcut(gt), jieba.lcut(pred)
    else:
        reference, hypothesis = gt.split(), pred.split()
    bleu = sentence_bleu([reference], hypothesis)
    ref_set, hyp_set = set(reference), set(hypothesis)
    return {"edit_distance_official": nltk.edit_distance(pred, gt) / max(len(pred), len(gt)),
            "precision_official": precision(ref_set, hyp_set) or 0.0, "recall_official": recall(ref_set, hyp_set) or 0.0,
            "f1_official": f_measure(ref_set, hyp_set) or 0.0, "bleu_official": bleu}


@pytest.mark.filterwarnings("ignore::UserWarning")  # nltk warns about zero n-gram counts
def test_ocr_official_metrics_equal_nltk_and_jieba():
    task = _task("ocr")
    for pred, gt in OCR_PAIRS:
        ours = task.evaluate([{"solution": {"text": gt}, "completion": pred}])
        expected = official_ocr(pred, gt)
        assert {k: ours[k] for k in expected} == pytest.approx(expected, abs=1e-9), (pred, gt)
    everything = task.evaluate([{"solution": {"text": gt}, "completion": pred} for pred, gt in OCR_PAIRS])
    rows = [official_ocr(pred, gt) for pred, gt in OCR_PAIRS]
    for key in rows[0]:
        assert everything[key] == pytest.approx(sum(row[key] for row in rows) / len(rows), abs=1e-9)


def test_ours_differ_where_documented():
    # whitespace collapsed in ours, not in the official edit distance; multiset vs set precision
    metrics = _task("ocr").evaluate([{"solution": {"text": "a b"}, "completion": "a  b a"}])
    assert metrics["edit_distance"] == pytest.approx(2 / 5) and metrics["edit_distance_official"] == pytest.approx(3 / 6)
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["precision_official"] == 1.0


class _NoSynonyms:
    def synsets(self, *args, **kwargs):
        return []


class _NoStems:
    def stem(self, word):
        return word


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_exact_meteor_against_nltk_without_stems_and_synonyms():
    """The official METEOR is nltk's, which also matches Porter stems and WordNet synonyms (its WordNet data
    cannot be downloaded here), so ``meteor`` is exact-match METEOR. With nltk's stem and synonym stages off the
    two agree when no word repeats; with repeats nltk pairs each answer word, last first, with the last unused
    equal truth word, where ours keeps runs together (fewer chunks, a smaller penalty)."""
    pytest.importorskip("nltk")
    from nltk.translate.meteor_score import meteor_score

    from perception_r1.tasks.text_metrics import meteor

    def nltk_exact(pred, gt):
        return meteor_score([gt.split()], pred.split(), stemmer=_NoStems(), wordnet=_NoSynonyms())

    for pred, gt in [("quick brown fox", "the quick brown fox jumps"), ("b a c", "a b c d"), ("x y", "y z"),
                     ("a b c d e f", "a b c d e f"), ("Hello  world", "hello world")]:
        assert meteor(pred.lower(), gt.lower()) == pytest.approx(nltk_exact(pred, gt), abs=1e-9), (pred, gt)
    repeated = ("the quick brown fox", "the quick brown fox jumps over the lazy dog")
    assert nltk_exact(*repeated) == pytest.approx(0.4411764705882353)  # 'the' paired with the second 'the'
    assert meteor(*repeated) > nltk_exact(*repeated)


# -- the coordinate space answers are read in ---------------------------------------------------------------
def test_a_coords_mismatch_is_caught():
    from perception_r1.data.synthetic import synthetic_samples
    from perception_r1.evaluate.evaluation import answers_outside, coords_warning

    task = _task("grounding")
    samples = [{**s, "coords": "norm1000"} for s in synthetic_samples(task, "val", 12, seed=0)]
    records = [{**s, "completion": task.render(s)} for s in samples]  # 0-1000 answers
    assert coords_warning(task, records, "norm1000") is None and answers_outside(task, records) == (0, 12)
    as_pixels = [{**r, "coords": "pixels"} for r in records]  # the same answers read as pixels of smaller images
    outside, counted = answers_outside(task, as_pixels)
    assert counted == 12 and outside > 6
    assert f"{outside} of 12 answers fall outside their image when read as pixels" in coords_warning(task, as_pixels, "pixels")


# -- counting: the official span count ------------------------------------------------------------------------
def official_count(s):
    """PR1's evaluate_counting.py extract_boxes + parse_output, with ast.literal_eval standing in for its eval
    (the same on the literals a model writes; the test never evaluates arbitrary text either)."""
    import ast
    import re

    res = []
    for bbox in re.findall(r"<\|box_start\|>(.*?)<\|box_end\|>", s):
        try:
            (x1, y1), (x2, y2) = ast.literal_eval(bbox.strip())
            res.append(((x1 + x2) / 2, (y1 + y2) / 2))
        except Exception:  # noqa: BLE001 - the official script's own `except Exception: pass`
            pass
    return len(res) if res else None


SPANS = ["(1,2),(3,4)", "[1.5, 2],[3,4]", " ( 10 , 20 ) , ( 30 , 40 ) ", "((1,2),(3,4))", "[(1,2),(3,4)]",
         "((1,2),(3,4),)", "(1,2)", "(1,2),(3,4),(5,6)", "bad", "", "(1,2),(3,x)", "(-1,+2),(3e2,.5)", "(1,2),\n(3,4)"]


@pytest.mark.parametrize("span", SPANS)
def test_official_span_count_equals_the_script(span):
    from perception_r1.tasks.counting import official_span_count

    for text in (f"<|box_start|>{span}<|box_end|>", f"x<|box_start|>{span}<|box_end|>" * 3 + "<|box_start|>(0,0),(1,1)<|box_end|>"):
        assert official_span_count(text) == official_count(text), text


def test_official_accuracy_beside_ours():
    task = _task("counting")
    two = "<|box_start|>(1,1),(5,5)<|box_end|><|box_start|>(10,10),(20,20)<|box_end|>"
    records = [{"solution": {"count": 2}, "completion": two},
               {"solution": {"count": 2}, "completion": two + "<|box_start|>oops<|box_end|>"},  # ours: no parse
               {"solution": {"count": 0}, "completion": "none"}]  # ours: right; official: no span, never right
    metrics = task.evaluate(records)
    assert metrics["accuracy"] == pytest.approx(2 / 3) and metrics["accuracy_official"] == pytest.approx(2 / 3)
    assert task.evaluate(records[1:2])["accuracy"] == 0 and task.evaluate(records[1:2])["accuracy_official"] == 1
    assert task.evaluate(records[2:])["accuracy"] == 1 and task.evaluate(records[2:])["accuracy_official"] == 0


# -- OCR: the official METEOR, nltk's own with WordNet ------------------------------------------------------------
WORDNET = "/usr/share/wordnet"  # Debian's wordnet-base: the WordNet 3.0 dictionary without nltk's lexnames


@pytest.fixture
def debian_wordnet(monkeypatch):
    import os

    from perception_r1.tasks import wordnet

    pytest.importorskip("nltk")
    if not os.path.isfile(os.path.join(WORDNET, "data.noun")):
        pytest.skip("WordNet 3.0 data not installed (apt install wordnet-base)")
    monkeypatch.setenv(wordnet.ENV, WORDNET)
    wordnet.wordnet.cache_clear()
    yield wordnet
    wordnet.wordnet.cache_clear()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_official_meteor_is_nltks_with_wordnet(debian_wordnet):
    from nltk.translate.meteor_score import meteor_score

    reader = debian_wordnet.wordnet()
    assert reader is not None and reader.get_version() == "3.0"
    task = _task("ocr")
    pairs = [("the fast brown foxes", "the quick brown fox"), *OCR_PAIRS[:5]]
    for pred, gt in pairs:
        hyp, ref = pred.split(), gt.split()  # no CJK: the official script's whitespace tokens
        metrics = task.evaluate([{"solution": {"text": gt}, "completion": pred}])
        assert metrics["meteor_official"] == pytest.approx(meteor_score([ref], hyp, wordnet=reader), abs=1e-12)
    synonyms = task.evaluate([{"solution": {"text": "the quick brown fox"}, "completion": "the fast brown foxes"}])
    assert synonyms["meteor_official"] > 0.9 > 0.5 > synonyms["meteor"]  # stems and synonyms match there only


def test_without_wordnet_the_official_meteor_is_left_out(monkeypatch):
    from perception_r1.tasks import wordnet

    monkeypatch.setenv(wordnet.ENV, "/nonexistent-wordnet")
    wordnet.wordnet.cache_clear()
    try:
        assert "meteor_official" not in _task("ocr").evaluate([{"solution": {"text": "a b"}, "completion": "a b"}])
    finally:
        wordnet.wordnet.cache_clear()
