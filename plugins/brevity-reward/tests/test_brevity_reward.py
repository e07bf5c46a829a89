import math

import pytest
from perception_r1_brevity_reward import REWARD_NAME, length_penalty

from perception_r1.registry import get_registry, reset_registry


def test_installed_and_discovered():
    reset_registry()
    registry = get_registry()
    assert registry.reward(REWARD_NAME) is length_penalty
    owner = [p for p in registry.plugins.values() if REWARD_NAME in p.rewards]
    assert [p.distribution for p in owner] == ["perception-r1-brevity-reward"]


def test_hand_computed_values():
    sample = {}
    completions = ["a" * 10, "a" * 12, "a" * 15, "a" * 20, "a" * 100, "  " + "a" * 10 + "\n\n"]
    got = length_penalty(completions, [sample] * len(completions), budget=10)
    # excess / budget: 0, 2/10, 5/10, 10/10, capped at 1; surrounding whitespace is not counted
    assert got == [0.0, -0.2, -0.5, -1.0, -1.0, 0.0]


def test_per_sample_budget_and_not_applicable():
    samples = [{"brevity_budget": 4}, {"brevity_budget": True}, {"brevity_budget": -3}, {}]
    got = length_penalty(["abcdef", "abcdef", "abcdef", None], samples, budget=5)
    assert got[0] == pytest.approx(-0.5)  # own budget 4: excess 2
    assert got[1] == pytest.approx(-0.2)  # bool is not a budget: default 5
    assert got[2] == pytest.approx(-0.2)  # negative is not a budget
    assert got[3] is None


def test_bounded_on_huge_input():
    [value] = length_penalty(["x" * 5_000_000], [{}])
    assert value == -1.0 and math.isfinite(value)


def test_rejects_bad_budget_and_mismatched_batches():
    with pytest.raises(ValueError, match="budget"):
        length_penalty(["a"], [{}], budget=0)
    with pytest.raises(ValueError, match="samples"):
        length_penalty(["a", "b"], [{}])
