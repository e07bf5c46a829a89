"""The shuffled-image control: same samples, same order, every image moved to another sample."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

from perception_r1.data.control import shuffle_images
from perception_r1.data.synthetic import synthetic_samples
from perception_r1.registry import get_registry


@pytest.mark.parametrize("n", [2, 3, 17])
def test_every_sample_keeps_its_truth_and_gets_another_image(n):
    samples = synthetic_samples(get_registry().task("counting"), "val", n, seed=0)
    shuffled = shuffle_images(samples, seed=0)
    assert [s["id"] for s in shuffled] == [s["id"] for s in samples]
    assert [s["solution"] for s in shuffled] == [s["solution"] for s in samples]
    assert all(a["image"] is not b["image"] for a, b in zip(shuffled, samples, strict=True))
    assert sorted(id(s["image"]) for s in shuffled) == sorted(id(s["image"]) for s in samples)  # each used once
    donors = {s["id"]: s["image"] for s in samples}
    assert all(s["image"] is donors[s["shown_image_of"]] for s in shuffled)
    assert all("shown_image_of" not in s for s in samples)  # the input is not touched


def test_the_shuffle_is_seeded():
    samples = synthetic_samples(get_registry().task("ocr"), "val", 8, seed=0)
    first = [s["shown_image_of"] for s in shuffle_images(samples, seed=3)]
    assert first == [s["shown_image_of"] for s in shuffle_images(samples, seed=3)]
    assert first != [s["shown_image_of"] for s in shuffle_images(samples, seed=4)]


def test_one_sample_cannot_be_shuffled():
    with pytest.raises(ValueError, match="at least 2"):
        shuffle_images(synthetic_samples(get_registry().task("ocr"), "val", 1))


@pytest.mark.slow  # an end-to-end model run: `pytest -m slow` and CI run it
def test_eval_with_shuffled_images_records_whose_image_was_shown(tmp_path):
    out = tmp_path / "control"
    result = run_cli("eval", "--task", "counting", "--limit", "4", "--batch-size", "4", "--threads", "1",
                     "--shuffle-images", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [f"counting-heldout-0-{i}" for i in range(4)]  # same samples, same order
    assert all(r["shown_image_of"] != r["id"] for r in records)
    assert sorted(r["shown_image_of"] for r in records) == sorted(r["id"] for r in records)
    result = run_cli("eval", "--task", "counting", "--limit", "1", "--shuffle-images")
    assert result.returncode == 2 and "at least 2 samples" in result.stderr


def test_the_report_draws_the_image_a_shuffled_sample_was_shown():
    from perception_r1.evaluate.report import Images

    task = get_registry().task("counting")
    samples = synthetic_samples(task, "val", 3, seed=0)
    record = {**shuffle_images(samples, seed=0)[0], "image": None}
    donor = next(s for s in samples if s["id"] == record["shown_image_of"])
    image, note = Images().get(task, record, record["id"])
    assert note == "" and list(image.getdata()) == list(donor["image"].convert("RGB").getdata())
