"""Run config validation and reward combination: what users get wrong, and what must never be silent."""

from __future__ import annotations

import math

import pytest

from perception_r1.errors import UserError
from perception_r1.train import config as cfg
from perception_r1.train.rewards import (
    RewardError,
    WeightedReward,
    component_means,
    parse_reward_flags,
    score,
)


def test_defaults_follow_the_paper():
    c = cfg.resolve()
    assert (c["group_size"], c["beta"], c["clip_eps"], c["temperature"]) == (8, 0.04, 0.2, 1.0)


def test_learning_rate_and_answer_budget_follow_the_model_size_unless_given():
    small, real = cfg.resolve(), cfg.resolve(overrides={"model": "/some/tiny-sft"})
    assert cfg.fill_model_defaults(small, 2_500_000) == ["learning_rate", "max_new_tokens", "threads"]
    assert (small["learning_rate"], small["max_new_tokens"]) == (cfg.TINY_LEARNING_RATE, cfg.TINY_MAX_NEW_TOKENS)
    cfg.fill_model_defaults(real, 2_000_000_000)  # a model path says nothing: the size decides
    assert (real["learning_rate"], real["max_new_tokens"]) == (1e-6, 768)
    given = cfg.resolve(overrides={"learning_rate": 3e-5})
    assert cfg.fill_model_defaults(given, 2_500_000) == ["max_new_tokens", "threads"] and given["learning_rate"] == 3e-5


def test_set_reads_values_as_yaml_and_names_bad_items():
    assert cfg.parse_set(["group_size=4", "scale_rewards=false", "max_new_tokens="]) == {
        "group_size": 4, "scale_rewards": False, "max_new_tokens": None}
    with pytest.raises(UserError, match="use KEY=VALUE"):
        cfg.parse_set(["group_size"])
    with pytest.raises(UserError, match="key 'group_size'"):
        cfg.resolve(overrides=cfg.parse_set(["group_size=many"]))


def test_file_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("steps: 7\nseed: 3\nrewards: {counting: 1.0, brevity.length_penalty: 0.1}\n")
    c = cfg.resolve(path, {"seed": 9, "steps": None})
    assert (c["steps"], c["seed"], c["rewards"]["brevity.length_penalty"]) == (7, 9, 0.1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: -1\n", "key 'steps': -1 is less than the minimum of 1"),
        ("stpes: 3\n", "'stpes' was unexpected"),
        ("loss_aggregation: mean\n", "key 'loss_aggregation'"),
        ("rewards: {counting: high}\n", "key 'rewards.counting'"),
        ("- a\n- b\n", "must be a mapping"),
        ("steps: [\n", "is not valid YAML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match="bad.yaml") as err:
        cfg.resolve(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_reward_flags():
    assert parse_reward_flags(["detection:1.0", "brevity.length_penalty:0.1", "ocr"]) == {
        "detection": 1.0, "brevity.length_penalty": 0.1, "ocr": 1.0,
    }
    with pytest.raises(UserError, match="not a number"):
        parse_reward_flags(["ocr:lots"])


def _const(values):
    return lambda completions, samples, **kw: list(values)


def test_weighted_sum_skips_none():
    rewards = [WeightedReward("a", 1.0, fn=_const([1.0, None])), WeightedReward("b", 0.5, fn=_const([2.0, 4.0]))]
    totals, components = score(rewards, ["x", "y"], [{}, {}])
    assert totals == [2.0, 2.0]
    assert component_means(components) == {"a": 1.0, "b": 3.0}


@pytest.mark.parametrize("bad", [math.nan, math.inf, "1", True])
def test_non_finite_reward_stops_the_run_naming_it(bad):
    with pytest.raises(RewardError, match="reward 'plug.bad' returned"):
        score([WeightedReward("plug.bad", 1.0, fn=_const([0.0, bad]))], ["x", "y"], [{}, {}])


def test_raising_reward_is_not_silently_zero():
    def boom(completions, samples, **kw):
        raise KeyError("solution")

    with pytest.raises(RewardError, match="reward 'plug.boom' raised KeyError"):
        score([WeightedReward("plug.boom", 1.0, fn=boom)], ["x"], [{}])
    with pytest.raises(RewardError, match="returned 1 values for 2 completions"):
        score([WeightedReward("plug.short", 1.0, fn=_const([1.0]))], ["x", "y"], [{}, {}])


def test_a_custom_reward_adds_to_the_task_reward_and_weight_zero_drops_it():
    from types import SimpleNamespace

    from perception_r1.train.rewards import build_rewards, describe

    task = SimpleNamespace(name="ocr")
    registry = SimpleNamespace(tasks={"ocr": task}, reward=lambda name: _const([0.0]))
    added = build_rewards(registry, [task], {"brevity.length_penalty": 0.1})
    assert describe(added) == "ocr x1 + brevity.length_penalty x0.1"
    assert describe(build_rewards(registry, [task], {"ocr": 0, "brevity.length_penalty": 1})) == "brevity.length_penalty x1"
    with pytest.raises(UserError, match="nothing to train on"):
        build_rewards(registry, [task], {"ocr": 0})


def test_a_tasks_small_model_defaults_fill_only_what_the_user_did_not_set(tmp_path):
    from types import SimpleNamespace

    task = SimpleNamespace(name="ocr", tiny_run_defaults={"steps": 120, "temperature": 0.7, "max_new_tokens": 16})
    path = tmp_path / "run.yaml"
    path.write_text("steps: 7\n")
    overrides = {"learning_rate": 3e-5, "seed": None}
    config, given = cfg.resolve(path, overrides), cfg.explicit_keys(cfg.read_config_file(path), overrides)
    assert given == {"steps", "learning_rate"}
    # the task's own keys, and the small-model settings for any task (SMALL_TASK_DEFAULTS) for the rest
    assert sorted(cfg.apply_task_defaults(config, [task], given, 2_500_000)) == sorted(
        ["temperature", "max_new_tokens", "prompts_per_step", "eval_samples", "eval_batch_size"])
    assert (config["steps"], config["temperature"], config["max_new_tokens"], config["learning_rate"]) == (7, 0.7, 16, 3e-5)
    assert (config["prompts_per_step"], config["eval_samples"]) == (8, 256)
    big = cfg.resolve()
    assert cfg.apply_task_defaults(big, [task], set(), 2_000_000_000) == [] and big["temperature"] == 1.0  # real models: paper
    assert cfg.apply_task_defaults(cfg.resolve(), [task, task], set(), 2_500_000) == []  # a task mix: the shared defaults
    bad = SimpleNamespace(name="ocr", tiny_run_defaults={"stepz": 3})
    with pytest.raises(UserError, match="task 'ocr' tiny_run_defaults"):
        cfg.apply_task_defaults(cfg.resolve(), [bad], set(), 2_500_000)


def test_the_run_schema_states_the_python_constants():
    """The JSON Schema repeats facts for its validator; this keeps each equal to its one Python home."""
    from perception_r1.contract import MODEL_COORD_SPACES
    from perception_r1.train.config import _schema
    from perception_r1.train.grpo import LOSS_AGGREGATIONS

    props = _schema()["properties"]
    assert sorted(props["coords"]["enum"], key=str) == sorted([*MODEL_COORD_SPACES, None], key=str)
    assert props["loss_aggregation"]["enum"] == list(LOSS_AGGREGATIONS)
    assert "default" not in props["task"]  # the registry picks the default task (Registry.default_task)
