"""perception_r1.integrations.common: the answer space of a model family, the ground-truth JSON, completions."""

from __future__ import annotations

import pytest

from perception_r1.errors import UserError
from perception_r1.integrations.common import (
    answer_space,
    completion_text,
    ground_truth,
    prepare,
    sample_from_ground_truth,
    task_samples,
)
from perception_r1.model.policy import DEFAULT_MODEL, Policy
from perception_r1.registry import get_registry

SIZES = [(112, 112), (640, 480), (37, 1200), (4000, 3000)]


@pytest.fixture(scope="module")
def qwen2_5_dir(tmp_path_factory):
    from perception_r1.model.tiny_families import build_family

    return build_family("qwen2_5_vl", tmp_path_factory.mktemp("qwen2_5"))


def test_model_directory_gives_the_policys_resize(qwen2_5_dir):
    """A Qwen2.5-VL directory: `resized` coordinates, and the very size its policy resizes each image to."""
    task = get_registry().task("grounding")
    space = answer_space(task, model_family=str(qwen2_5_dir))
    policy = Policy.load(qwen2_5_dir)
    assert space.coord_space == policy.coord_space == "resized"
    for w, h in SIZES:
        assert space.resized_size(w, h) == policy.resized_size(w, h)


def test_prepared_like_the_policy_prepares(qwen2_5_dir):
    from perception_r1.data.prepare import prepare_sample

    task = get_registry().task("detection")
    policy = Policy.load(qwen2_5_dir)
    space = answer_space(task, model_family=str(qwen2_5_dir))
    for sample in task_samples(task, limit=3):
        ours, theirs = prepare(task, sample, space), prepare_sample(sample, policy, task)
        assert {k: ours.get(k) for k in ("coords", "resized_size")} == {k: theirs.get(k) for k in ("coords", "resized_size")}


@pytest.mark.parametrize("name,coords", [("qwen2_vl", "norm1000"), ("Qwen2.5-VL", "resized"), ("qwen3-vl", "norm1000"),
                                         ("llava", "norm1"), (str(DEFAULT_MODEL), "norm1000")])
def test_family_names_and_directories(name, coords):
    assert answer_space(get_registry().task("counting"), model_family=name).coord_space == coords


def test_spaces_without_coordinates_and_bad_requests():
    ocr, grounding = get_registry().task("ocr"), get_registry().task("grounding")
    assert answer_space(ocr, model_family="qwen2_5_vl").coord_space == "none"
    assert answer_space(grounding).coord_space == grounding.coord_space
    with pytest.raises(UserError, match="unknown model family 'gpt-9'"):
        answer_space(grounding, model_family="gpt-9")
    with pytest.raises(UserError, match="not both"):
        answer_space(grounding, coords="pixels", model_family="qwen2_vl")


def test_ground_truth_round_trip_carries_what_the_reward_reads():
    task = get_registry().task("grounding")
    sample = prepare(task, task_samples(task, limit=1)[0], answer_space(task, coords="resized"))
    back = sample_from_ground_truth(ground_truth(sample))
    assert "image" not in back
    for key in ("task", "id", "solution", "image_size", "query", "coords", "resized_size"):
        assert back[key] == sample[key]
    completion = task.render(sample)
    assert task.reward(completion, back) == task.reward(completion, sample)


@pytest.mark.parametrize("bad,message", [("not json", "not a perception-r1 ground-truth"), ("[1, 2]", "JSON list"),
                                         ('{"task": "ocr"}', "lacks solution, image_size")])
def test_bad_ground_truth_is_one_clear_error(bad, message):
    with pytest.raises(UserError, match=message):
        sample_from_ground_truth(bad)


def test_completion_text_forms():
    assert completion_text("abc") == "abc"
    assert completion_text([{"role": "assistant", "content": "abc"}]) == "abc"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"},
                                                              {"type": "text", "text": "bc"}]}]) == "abc"
