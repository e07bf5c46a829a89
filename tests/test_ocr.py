"""OCR task: reward, metrics (hand-computed values), parser properties, synthetic rendering, contract."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from perception_r1 import ParseError
from perception_r1.tasks.ocr import MAX_CHARS, OCRTask, collapse_whitespace, reward_cap
from perception_r1.tasks.text_metrics import bag_of_words_prf, meteor, normalized_edit_distance, sentence_bleu
from perception_r1.tasks.text_render import WORDS, random_text, render_text
from perception_r1.testing import check_discoverable, check_task

TASK = OCRTask()


def sample(text: str) -> dict:
    return {"image_size": [224, 56], "query": {}, "solution": {"text": text}}


# -- contract ------------------------------------------------------------------------------------
def test_contract() -> None:
    check_task(TASK, max_examples=150)


def test_discoverable_through_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "")  # built-ins only: other plugins may be half-installed
    assert isinstance(check_discoverable("ocr"), OCRTask)


def test_prompt_is_the_papers() -> None:
    assert TASK.prompt(sample("x")) == "OCR this image."


# -- reward --------------------------------------------------------------------------------------
def test_reward_hand_computed() -> None:
    # kitten -> sitting: 3 edits, longer text has 7 characters
    result = TASK.reward("kitten", sample("sitting"))
    assert result.total == pytest.approx(1 - 3 / 7)
    assert result.components == {"format": 1.0, "edit_similarity": pytest.approx(1 - 3 / 7)}


def test_reward_collapses_whitespace() -> None:
    assert TASK.reward("  hello\n\n\tworld ", sample("hello world")).total == 1.0
    assert TASK.reward("helloworld", sample("hello world")).total == pytest.approx(1 - 1 / 11)


@pytest.mark.parametrize("empty", ["", " ", "\n\t  \n"])
def test_empty_answer_scores_nothing(empty: str) -> None:
    result = TASK.reward(empty, sample("hello"))
    assert result.total == 0.0
    assert result.components == {"format": 0.0, "edit_similarity": None}


def test_long_answer_is_capped_and_scores_low() -> None:
    gt = "abc"
    result = TASK.reward("abc" + "x" * 1_000_000, sample(gt))
    cap = reward_cap(gt)  # 76 characters compared: 73 insertions over 76
    assert result.total == pytest.approx(3 / cap)
    assert result.total < 0.25


def test_repeating_the_text_does_not_pay() -> None:
    gt = "quick brown fox"
    assert TASK.reward(" ".join([gt] * 10), sample(gt)).total < 0.15


def test_wrong_text_clips_at_zero() -> None:
    result = TASK.reward("zzzzzzzz", sample("ab"))
    assert result.total == 0.0


# -- metric pieces -------------------------------------------------------------------------------
def test_normalized_edit_distance_edges() -> None:
    assert normalized_edit_distance("", "") == 0.0
    assert normalized_edit_distance("", "abc") == 1.0
    assert normalized_edit_distance("abcd", "abxd") == 0.25


def test_bag_of_words_hand_computed() -> None:
    precision, recall, f1 = bag_of_words_prf("a b b c", "a b d")
    assert (precision, recall) == (pytest.approx(2 / 4), pytest.approx(2 / 3))
    assert f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert bag_of_words_prf("", "a") == (0.0, 0.0, 0.0)
    assert bag_of_words_prf("", "") == (1.0, 1.0, 1.0)


def test_meteor_hand_computed() -> None:
    # 6 matches in one chunk: penalty 0.5 * (1/6)^3
    assert meteor("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1 - 0.5 / 216)
    # 3 matches (a, b, c), P = 3/4, R = 1, chunks: "a b" and "c" -> 2
    fmean = 0.75 / (0.9 * 0.75 + 0.1)
    assert meteor("a b x c", "a b c") == pytest.approx(fmean * (1 - 0.5 * (2 / 3) ** 3))
    # swapped words: two chunks of one match each
    assert meteor("b a", "a b") == pytest.approx(0.5)
    assert meteor("x y", "a b") == 0.0
    assert meteor("", "a") == 0.0


def test_meteor_prefers_contiguous_alignment() -> None:
    # "the" occurs twice in the reference; the second hypothesis "the" must continue the chunk
    assert meteor("on the mat", "the cat on the mat") == pytest.approx(
        (3 / 3) * (3 / 5) / (0.9 * 1 + 0.1 * 0.6) * (1 - 0.5 * (1 / 3) ** 3)
    )


def test_bleu_bounds() -> None:
    assert sentence_bleu("hello world", "hello world") == 1.0
    assert sentence_bleu("", "hello world") == 0.0
    assert sentence_bleu("foo bar", "hello world") == 0.0
    assert 0.0 < sentence_bleu("the cat sat on a mat", "the cat sat on the mat") < 1.0


def test_evaluate_hand_computed() -> None:
    records = [
        {**sample("sitting"), "completion": "kitten"},  # ned 3/7, tokens disjoint
        {**sample("hello world"), "completion": "hello world"},  # perfect
        {**sample("abc"), "completion": "   "},  # unparseable -> empty -> ned 1
    ]
    metrics = TASK.evaluate(records)
    official = {"edit_distance_official", "f1_official", "precision_official", "recall_official", "bleu_official"}
    assert set(metrics) == {"edit_distance", "f1", "precision", "recall", "bleu", "meteor"} | official
    assert metrics["edit_distance"] == pytest.approx((3 / 7 + 0 + 1) / 3)
    assert metrics["f1"] == pytest.approx(1 / 3)
    assert metrics["precision"] == pytest.approx(1 / 3)
    assert metrics["recall"] == pytest.approx(1 / 3)
    assert metrics["bleu"] == pytest.approx(1 / 3)
    assert metrics["meteor"] == pytest.approx((1 - 0.5 / 8) / 3)
    # the official script's: raw "   " vs "abc" is 3 edits of 3; nltk's unsmoothed BLEU of a 2-word answer is ~0
    assert metrics["edit_distance_official"] == pytest.approx((3 / 7 + 0 + 1) / 3)
    assert metrics["f1_official"] == metrics["precision_official"] == metrics["recall_official"] == pytest.approx(1 / 3)
    assert metrics["bleu_official"] < 1e-100


def test_evaluate_empty_records() -> None:
    assert TASK.evaluate([]) == {}


# -- parser properties ---------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parse_is_total_and_idempotent(text: str) -> None:
    try:
        answer = TASK.parse(text)
    except ParseError as exc:
        assert exc.reason and not text.strip()
        return
    assert answer and answer == collapse_whitespace(answer)
    assert TASK.parse(answer) == answer


def test_parse_caps_length() -> None:
    assert len(TASK.parse("y" * (3 * MAX_CHARS))) == MAX_CHARS


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.text(alphabet=st.characters(min_codepoint=33), min_size=1, max_size=60))
def test_reward_is_one_minus_edit_distance(completion: str, gt: str) -> None:
    assume(gt.strip())  # the schema requires a non-blank ground truth
    result = TASK.reward(completion, sample(gt))
    assert 0.0 <= result.total <= 1.0
    if collapse_whitespace(completion) == collapse_whitespace(gt):
        assert result.total == 1.0
    elif not completion.strip():
        assert result.total == 0.0
    else:
        assert result.total < 1.0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.text(max_size=80))
def test_metric_pieces_bounded_and_symmetric(a: str, b: str) -> None:
    assert normalized_edit_distance(a, b) == normalized_edit_distance(b, a)
    assert 0.0 <= normalized_edit_distance(a, b) <= 1.0
    p, r, f = bag_of_words_prf(a, b)
    p2, r2, f2 = bag_of_words_prf(b, a)
    assert all(0.0 <= v <= 1.0 for v in (p, r, f))
    if a.split() and b.split():
        assert (p, r, f) == pytest.approx((r2, p2, f2))
    assert 0.0 <= meteor(a, b) <= 1.0


# -- synthetic images ----------------------------------------------------------------------------
def test_random_text_uses_word_list_and_is_seeded() -> None:
    texts = [random_text(random.Random(7)) for _ in range(3)]
    assert len(set(texts)) == 1
    for word in random_text(random.Random(3), max_words=5).split():
        assert word in WORDS and word.islower()


def test_rendered_text_is_dark_on_white_and_inside() -> None:
    image = render_text("quick brown", (224, 56)).convert("L")
    assert image.size == (224, 56)
    dark = image.point(lambda v: 255 if v < 128 else 0)
    box = dark.getbbox()
    assert box is not None, "no text drawn"
    left, top, right, bottom = box
    assert left > 0 and top > 0 and right < 224 and bottom < 56
    assert bottom - top >= 12, "text too small to read"


def test_synthetic_sample_matches_its_image() -> None:
    s = TASK.synthetic(random.Random(0))
    assert s["image_size"] == list(s["image"].size)
    TASK.validate_solution(s["solution"])
    assert render_text(s["solution"]["text"], s["image"].size).tobytes() == s["image"].tobytes()
