"""The plugin's tests. The first one checks the plugin is installed: run `pip install -e .` first."""

import random

import numpy as np
import pytest
from perception_r1_template import KNOWN_COLOR_REWARD, TASK_NAME, ColorTask, known_color

from perception_r1.registry import get_registry
from perception_r1.tasks.scenes import BACKGROUND, COLORS
from perception_r1.testing import TaskContract, check_discoverable


def test_plugin_is_installed_and_discovered():
    task = check_discoverable(TASK_NAME)  # found through the entry point, not imported by hand
    assert isinstance(task, ColorTask)
    registry = get_registry()
    assert registry.reward(KNOWN_COLOR_REWARD) is known_color
    [plugin] = [p for p in registry.plugins.values() if TASK_NAME in p.tasks]
    assert plugin.distribution == "perception-r1-template"
    assert plugin.rewards == [KNOWN_COLOR_REWARD]


class TestContract(TaskContract):
    """Every check of the contract kit: fuzzed parse and reward, perfect answers, schema, metrics."""

    task_name = TASK_NAME
    max_examples = 100


TASK = ColorTask()
RED = {"image_size": [112, 112], "query": {"shape": "circle"}, "solution": {"color": "red"}}


@pytest.mark.parametrize(
    ("completion", "total", "accuracy"),
    [
        ("red", 1.0, 1.0),
        (" Red.\n", 1.0, 1.0),
        ("blue", 0.1, 0.0),  # right format, wrong colour: the format part only
        ("red green blue yellow", 0.0, None),  # listing every option is not an answer
        ("", 0.0, None),
        ("red!", 0.0, None),
    ],
)
def test_reward_by_hand(completion, total, accuracy):
    result = TASK.reward(completion, RED)
    assert result.total == pytest.approx(total)
    assert result.components["accuracy"] == accuracy


def test_accuracy_by_hand():
    records = [{**RED, "completion": "red"}, {**RED, "completion": "green"}, {**RED, "completion": "?"}]
    assert TASK.evaluate(records) == {"accuracy": pytest.approx(1 / 3), "parse_rate": pytest.approx(2 / 3)}


def test_extra_reward_by_hand():
    assert known_color(["yellow", "purple", "a b"], [RED] * 3) == [1.0, 0.0, None]


def test_synthetic_image_shows_the_colour():
    for seed in range(5):
        sample = TASK.synthetic(random.Random(seed))
        pixels = np.asarray(sample["image"]).reshape(-1, 3)
        colors = {tuple(int(v) for v in c) for c in np.unique(pixels, axis=0)}
        assert colors == {BACKGROUND, COLORS[sample["solution"]["color"]]}  # one shape, in the answer's colour
    assert sample["query"]["shape"] in TASK.prompt(sample)
