"""Plugin discovery: built-ins through their own entry points, third parties, the allow-list, clear errors."""

from __future__ import annotations

import json

import pytest
from helpers import make_dist, run_cli

from perception_r1.registry import PluginError, Registry, get_registry, hookimpl, reset_registry

BUILTINS = {"grounding", "counting", "ocr", "detection"}

GOOD_PLUGIN = """
import random
from perception_r1 import ParseError, RewardResult, Task, hookimpl

class EchoTask(Task):
    name = "echo"
    description = "repeat the word"
    prompt_template = "Say {word}."
    solution_schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    primary_metric = "accuracy"

    def parse(self, text):
        if not text.strip():
            raise ParseError("empty")
        return text.strip()[:100]

    def reward(self, completion, sample):
        try:
            ok = float(self.parse(completion) == sample["solution"]["text"])
        except ParseError:
            return RewardResult(0.0, {"format": 0.0, "match": None})
        return RewardResult(ok, {"format": 1.0, "match": ok})

    def evaluate(self, records):
        return {"accuracy": sum(self.reward(r["completion"], r).total for r in records) / len(records)}

    def render(self, sample):
        return sample["solution"]["text"]

    def synthetic(self, rng):
        word = rng.choice(["cat", "dog"])
        return {"image": None, "image_size": [8, 8], "query": {"word": word}, "solution": {"text": word}}

@hookimpl
def register_tasks(register):
    register(EchoTask())

@hookimpl
def register_rewards(register):
    register("echo.shout", lambda completions, samples, **kw: [float(c.isupper()) for c in completions])
"""


def test_builtins_are_found_through_entry_points():
    reset_registry()
    registry = get_registry()
    assert BUILTINS <= set(registry.tasks)
    for name in BUILTINS:
        info = registry.plugins[name]
        assert info.builtin and info.distribution == "perception-r1" and name in info.tasks


def test_third_party_task_and_reward_appear(plugin_dir):
    make_dist(plugin_dir, "echo-plugin", "echo_plugin", GOOD_PLUGIN)
    registry = get_registry()
    assert "echo" in registry.tasks
    assert registry.plugins["echo_plugin"].distribution == "echo-plugin"
    assert registry.reward("echo.shout")(["HI", "hi"], [{}, {}]) == [1.0, 0.0]
    assert registry.reward("echo")(["cat"], [{"solution": {"text": "cat"}}]) == [1.0]


def test_allow_list_empty_keeps_builtins_only(plugin_dir, monkeypatch):
    make_dist(plugin_dir, "echo-plugin", "echo_plugin", GOOD_PLUGIN)
    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "")
    registry = get_registry()
    assert "echo" not in registry.tasks and BUILTINS <= set(registry.tasks)
    reset_registry()
    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "echo-plugin")
    assert "echo" in get_registry().tasks


def test_plugin_that_fails_to_import_names_itself(plugin_dir):
    make_dist(plugin_dir, "broken-plugin", "broken_plugin", "raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match=r"^plugin 'broken_plugin' \(broken-plugin\) failed to import: RuntimeError: boom"):
        get_registry()


def test_duplicate_task_name_is_refused(plugin_dir):
    make_dist(plugin_dir, "dupe-plugin", "dupe_plugin", GOOD_PLUGIN.replace('name = "echo"', 'name = "ocr"'))
    with pytest.raises(PluginError, match="registers task 'ocr', already registered by plugin 'ocr'"):
        get_registry()


def test_task_that_breaks_the_contract_is_refused():
    class NotATask:
        name = "bad task"

    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            register(NotATask())

    with pytest.raises(PluginError, match="plugin 'badplug' registered a task that breaks the contract"):
        Registry().add_plugin(Plugin(), name="badplug")


def test_unknown_hook_is_refused():
    class Plugin:
        @hookimpl
        def register_everything(self, register):
            pass

    with pytest.raises(PluginError, match="plugin 'typo'"):
        Registry().add_plugin(Plugin(), name="typo")


def test_unknown_task_lists_installed_ones():
    reset_registry()
    with pytest.raises(PluginError, match=r"unknown task 'nope' \(installed tasks: .*counting"):
        get_registry().task("nope")


def test_cli_plugins_json_and_tasks_table(plugin_dir):
    make_dist(plugin_dir, "echo-plugin", "echo_plugin", GOOD_PLUGIN, version="2.5")
    result = run_cli("plugins")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["echo_plugin"] == {
        "name": "echo_plugin", "distribution": "echo-plugin", "version": "2.5", "builtin": False,
        "tasks": ["echo"], "rewards": ["echo.shout"],
    }
    assert BUILTINS <= set(plugins)
    table = run_cli("tasks", env={"PERCEPTION_R1_PLUGINS": ""})
    assert table.returncode == 0 and "echo" not in table.stdout.split()
    assert all(name in table.stdout for name in BUILTINS)


def test_cli_broken_plugin_is_one_line_exit_2(plugin_dir):
    make_dist(plugin_dir, "broken-plugin", "broken_plugin", "import not_a_module_anywhere\n")
    result = run_cli("tasks")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "plugin 'broken_plugin'" in result.stderr and "No module named 'not_a_module_anywhere'" in result.stderr


def test_cli_usage_errors_are_one_line_exit_2():
    for args in (["nonsense"], ["tasks", "--bogus"], ["score"]):
        result = run_cli(*args)
        assert result.returncode == 2, args
        assert result.stderr.startswith("perception-r1: error:") and result.stderr.count("\n") == 1, result.stderr
