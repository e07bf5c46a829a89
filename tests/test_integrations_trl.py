"""TRL's GRPOTrainer on the embedded base through perception_r1.integrations.trl: every reward value TRL gets
equals what `perception-r1 score` (score_records) gives for the same completion, in both coordinate conventions."""

from __future__ import annotations

import functools
import math

import pytest

from perception_r1.evaluate.scoring import score_file, score_records
from perception_r1.integrations import trl as pr1_trl
from perception_r1.integrations.common import completion_text, sample_from_ground_truth
from perception_r1.integrations.predictions import read_predictions
from perception_r1.model.policy import DEFAULT_MODEL, Policy
from perception_r1.registry import get_registry, reset_registry
from perception_r1.tasks.geometry import smart_resize

trl = pytest.importorskip("trl")


@pytest.fixture
def text_spotting(monkeypatch):
    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "text-spotting")
    reset_registry()
    if "text-spotting" not in get_registry().tasks:
        pytest.skip("the text-spotting plugin is not installed (pip install -e plugins/text-spotting)")
    yield
    reset_registry()


def recording(fn, calls):
    """``fn`` that also keeps every (completions, ground truths, values) TRL called it with."""

    @functools.wraps(fn)  # keeps __name__: TRL logs rewards/<name>
    def wrapped(prompts, completions, completion_ids=None, **kwargs):
        values = fn(prompts, completions, completion_ids, **kwargs)
        calls.append((fn.__name__, completions, kwargs["ground_truth"], values))
        return values

    return wrapped


def run_grpo(task_name, coords, out_dir, steps=2, prompts=2, group=4, tokens=24):
    import torch
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    train = pr1_trl.dataset(task_name, coords=coords, limit=steps * prompts, seed=3)
    calls: list = []
    funcs = [recording(f, calls) for f in pr1_trl.reward_funcs(task_name, coords=coords)]
    config = GRPOConfig(
        output_dir=str(out_dir), report_to="none", use_cpu=True, bf16=False, per_device_train_batch_size=prompts * group,
        num_generations=group, max_completion_length=tokens, temperature=1.0, learning_rate=1e-4, max_steps=steps,
        logging_steps=1, save_strategy="no", seed=0, dataloader_num_workers=0, disable_tqdm=True,
        log_completions=True, num_completions_to_print=0, gradient_checkpointing=False,
    )
    trainer = GRPOTrainer(model=str(DEFAULT_MODEL), reward_funcs=funcs, args=config, train_dataset=train,
                          processing_class=Policy.load(None).processor)
    trainer.train()
    return calls


def check_equal_to_score(task_name, coords, calls, out_dir, varied=False):
    task = get_registry().task(task_name)
    seen = 0
    for name, completions, truths, values in calls:
        assert name == task_name
        records = [{**sample_from_ground_truth(t), "completion": completion_text(c)}
                   for c, t in zip(completions, truths, strict=True)]
        for record in records:
            assert record["coords"] == (coords if task.coord_space != "none" else "none")
            if coords == "resized":
                assert record["resized_size"] == list(smart_resize(*record["image_size"], max_pixels=28 * 28 * 16384))
        scored, _ = score_records(task, records, metrics=False)
        for value, record in zip(values, scored, strict=True):
            assert abs(value - record["reward"]) <= 1e-9
        seen += len(values)
    assert seen >= 8  # TRL called the reward at least once per step for a whole batch
    if varied:  # a task the base was trained on, in its own convention: its answers earn different rewards
        assert len({v for *_, values in calls for v in values}) > 1
    # the completions TRL logged (with the ground truth our reward logged beside them) score the same with
    # `perception-r1 score --from trl`, equal to the float32 values TRL keeps
    logged = read_predictions(out_dir / "completions", "trl")
    scored, _ = score_file(out_dir / "completions", task, rows=logged)
    import pyarrow.parquet as pq

    trl_values = [v for f in sorted((out_dir / "completions").glob("*.parquet"))
                  for v in pq.read_table(f).column(task_name).to_pylist()]
    assert len(trl_values) == len(scored) >= 8
    for trl_value, record in zip(trl_values, scored, strict=True):
        assert math.isclose(trl_value, record["reward"], rel_tol=1e-6, abs_tol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("coords", ["norm1000", "resized"])
def test_grpo_trainer_rewards_equal_score_grounding(tmp_path, coords):
    calls = run_grpo("grounding", coords, tmp_path)
    check_equal_to_score("grounding", coords, calls, tmp_path, varied=coords == "norm1000")


@pytest.mark.slow
@pytest.mark.parametrize("coords", ["norm1000", "resized"])
def test_grpo_trainer_rewards_equal_score_text_spotting(tmp_path, coords, text_spotting):
    calls = run_grpo("text-spotting", coords, tmp_path, tokens=32)
    check_equal_to_score("text-spotting", coords, calls, tmp_path)


# -- fast: the reward functions called exactly as TRL calls them -----------------------------------
FAMILIES = [("qwen2_vl", "norm1000"), ("Qwen2.5-VL", "resized"), ("qwen3_vl", "norm1000")]


@pytest.mark.parametrize("model_family,coords", FAMILIES)
def test_ideal_completion_earns_the_maximum_in_each_family(model_family, coords):
    check_ideal("detection", model_family, coords)


@pytest.mark.parametrize("model_family,coords", FAMILIES[:2])
def test_ideal_completion_earns_the_maximum_text_spotting(model_family, coords, text_spotting):
    check_ideal("text-spotting", model_family, coords)


def check_ideal(task_name, model_family, coords):
    """The task's own ideal answer, rendered in the exported space, scores the maximum through TRL's call."""
    task = get_registry().task(task_name)
    data = pr1_trl.dataset(task_name, model_family=model_family, limit=4)
    truths = data["ground_truth"]
    samples = [sample_from_ground_truth(t) for t in truths]
    assert {s["coords"] for s in samples} == {coords}
    ideal = [[{"role": "assistant", "content": task.render(s)}] for s in samples]
    (reward,) = pr1_trl.reward_funcs(task_name, model_family=model_family)
    values = reward(prompts=data["prompt"], completions=ideal, completion_ids=None, ground_truth=truths)
    assert values == pytest.approx([task.reward_range[1]] * 4)
    wrong = reward(prompts=data["prompt"], completions=["[]"] * 4, ground_truth=truths)  # plain-string form
    assert max(wrong) < task.reward_range[1]


def test_dataset_is_trl_vision_format():
    data = pr1_trl.dataset("counting", limit=3)
    assert set(data.column_names) == {"prompt", "image", "ground_truth"}
    row = data[0]
    (turn,) = row["prompt"]
    assert turn["role"] == "user" and [p["type"] for p in turn["content"]] == ["image", "text"]
    assert turn["content"][1]["text"] == get_registry().task("counting").prompt(sample_from_ground_truth(
        row["ground_truth"]))
    assert row["image"].size == tuple(sample_from_ground_truth(row["ground_truth"])["image_size"])
    from trl.data_utils import prepare_multimodal_messages

    filled = prepare_multimodal_messages(row["prompt"], images=[row["image"]])
    assert filled[0]["content"][0]["image"] is row["image"]


def test_custom_rewards_are_weighted_functions_named_apart(plugin_dir):
    from helpers import make_dist

    make_dist(plugin_dir, "shortness", "shortness_plugin", """
from perception_r1 import hookimpl

@hookimpl
def register_rewards(register):
    register("shortness.len", lambda completions, samples, **kw: [-len(c) / 100 for c in completions])
""")
    funcs = pr1_trl.reward_funcs("ocr", rewards=["shortness.len:0.5"])
    assert [f.__name__ for f in funcs] == ["ocr", "shortness.len"]
    data = pr1_trl.dataset("ocr", limit=2)
    values = funcs[1](prompts=data["prompt"], completions=["abcd", "ab"], ground_truth=data["ground_truth"])
    assert values == pytest.approx([-0.02, -0.01])
    dropped = pr1_trl.reward_funcs("ocr", rewards={"ocr": 0, "shortness.len": 1.0})
    assert [f.__name__ for f in dropped] == ["shortness.len"]


def test_reward_refuses_rows_exported_for_another_space():
    data = pr1_trl.dataset("grounding", coords="norm1000", limit=1)
    (reward,) = pr1_trl.reward_funcs("grounding", model_family="qwen2_5_vl")
    with pytest.raises(Exception, match="exported for coords 'norm1000'.*'resized'"):
        reward(prompts=data["prompt"], completions=["(1,2),(3,4)"], ground_truth=data["ground_truth"])
