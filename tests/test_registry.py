"""Plugin discovery: built-ins through their own entry points, third parties, the allow-list, clear errors."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import pytest
from helpers import make_dist, run_cli

from perception_r1.contract import task_rewards
from perception_r1.registry import (
    PluginError,
    PluginWarning,
    Registry,
    get_registry,
    hookimpl,
    reset_registry,
)

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
    echo = registry.task("echo")
    assert [r.total for r in task_rewards(echo, ["cat"], [{"solution": {"text": "cat"}}])] == [1.0]
    with pytest.raises(PluginError, match="unknown reward 'echo'"):  # a task's reward is reached through the task
        registry.reward("echo")


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


# -- hooks are called through pluggy, one plugin at a time ------------------------------------------------------
def test_hookimpl_that_takes_no_register_argument_is_called():
    """pluggy passes a hookimpl only the arguments it names; one that names none is still called."""
    calls = []

    class Quiet:
        @hookimpl
        def register_tasks(self):
            calls.append("tasks")

        @hookimpl
        def register_rewards(self):
            calls.append("rewards")

    info = Registry().add_plugin(Quiet(), name="quiet")
    assert calls == ["tasks", "rewards"] and info.tasks == [] and info.rewards == []


def test_what_each_plugin_registers_is_traced_to_it():
    calls = []

    def plugin(reward: str):
        class Plugin:
            @hookimpl
            def register_rewards(self, register):
                calls.append(reward)
                register(reward, lambda completions, samples, **kw: [1.0] * len(completions))

        return Plugin()

    registry = Registry()
    registry.add_plugin(plugin("first.r"), name="first")
    registry.add_plugin(plugin("second.r"), name="second")
    assert calls == ["first.r", "second.r"]  # adding the second plugin does not call the first one again
    assert registry.plugins["first"].rewards == ["first.r"] and registry.plugins["second"].rewards == ["second.r"]
    assert registry.reward("second.r")(["a", "b"], [{}, {}]) == [1.0, 1.0]


def test_plugin_that_raises_in_its_hook_names_itself():
    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            raise KeyError("oops")

    with pytest.raises(PluginError, match=r"^plugin 'raiser' raised in register_tasks: KeyError: 'oops'"):
        Registry().add_plugin(Plugin(), name="raiser")


def test_registry_imports_only_the_contract():
    """The registry sits right above the contract: it imports only itself and the contract."""
    for path in Path(get_registry.__code__.co_filename).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, f"{path.name}: relative import leaves the registry"
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                assert name.split(".")[0] != "perception_r1" or name.startswith(("perception_r1.registry", "perception_r1.contract")), (
                    f"{path.name} imports {name}"
                )


# -- the allow-list says what it does -------------------------------------------------------------------------
def test_allow_list_name_that_matches_no_plugin_warns(plugin_dir, monkeypatch):
    make_dist(plugin_dir, "echo-plugin", "echo_plugin", GOOD_PLUGIN)
    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "echo-plugin,nosuch")
    with pytest.warns(PluginWarning, match=r'^PERCEPTION_R1_PLUGINS="echo-plugin,nosuch": nosuch matches no '
                      r"installed plugin \(third-party plugins: .*echo_plugin \(echo-plugin\)"):
        registry = get_registry()
    assert "echo" in registry.tasks


def test_allow_list_of_installed_names_does_not_warn(plugin_dir, monkeypatch):
    make_dist(plugin_dir, "echo-plugin", "echo_plugin", GOOD_PLUGIN)
    for allow in ("echo-plugin", "echo_plugin", "", "ocr,echo_plugin"):
        monkeypatch.setenv("PERCEPTION_R1_PLUGINS", allow)
        reset_registry()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            get_registry()


def test_unknown_task_names_the_filter_that_hid_it(plugin_dir, monkeypatch):
    make_dist(plugin_dir, "echo-plugin", "echo_plugin", GOOD_PLUGIN)
    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "")
    registry = get_registry()
    hid = r'; PERCEPTION_R1_PLUGINS="" is set and hides the plugins .*echo_plugin \(echo-plugin\)'
    with pytest.raises(PluginError, match=r"^unknown task 'echo' \(installed tasks: counting, .*\)" + hid):
        registry.task("echo")
    with pytest.raises(PluginError, match=r"^unknown reward 'echo.shout' \(known rewards: .*\)" + hid):
        registry.reward("echo.shout")


def test_unknown_task_without_a_filter_says_nothing_of_it():
    registry = Registry()
    registry.load_entry_points(allow=None)
    with pytest.raises(PluginError) as caught:
        registry.task("nope")
    assert "PERCEPTION_R1_PLUGINS" not in str(caught.value)


def test_cli_filter_warning_is_one_line_and_the_command_runs(plugin_dir):
    result = run_cli("tasks", env={"PERCEPTION_R1_PLUGINS": "nosuch"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith('perception-r1: warning: PERCEPTION_R1_PLUGINS="nosuch": nosuch matches no')
    assert result.stderr.count("\n") == 1 and "ocr" in result.stdout


def test_cli_unknown_task_hidden_by_the_filter(plugin_dir):
    make_dist(plugin_dir, "echo-plugin", "echo_plugin", GOOD_PLUGIN)
    result = run_cli("score", "--task", "echo", "nothing.jsonl", env={"PERCEPTION_R1_PLUGINS": ""})
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "unknown task 'echo'" in result.stderr
    assert 'PERCEPTION_R1_PLUGINS="" is set and hides the plugins' in result.stderr and "echo_plugin" in result.stderr


def test_task_corpus_reads_only_the_tasks_it_is_given():
    from perception_r1.model.tiny import task_corpus

    counting = get_registry().task("counting")
    texts = task_corpus([counting], n_per_task=2)
    assert len(texts) == 2 * 3  # per sample: the prompt, the answer in norm1000 and in the task's own space
    assert texts[0].startswith(counting.prompt_template.split("{")[0])


def test_the_default_task_is_the_one_a_task_marks_not_a_name_in_core():
    from perception_r1 import Task as BaseTask

    registry = get_registry()
    marked = [name for name, task in registry.tasks.items() if task.is_default]
    assert len(marked) == 1 and registry.default_task() == marked[0] and registry.plugins[marked[0]].builtin

    class Mine(BaseTask):
        name, prompt_template, primary_metric, is_default = "mine", "say it", "accuracy", True
        solution_schema = {"type": "object"}

    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            register(Mine())

    empty = Registry()
    with pytest.raises(PluginError, match="no task is installed"):
        empty.default_task()
    empty.add_plugin(Plugin(), name="mine-plugin")  # a third-party default, with no built-in marked
    assert empty.default_task() == "mine"


def test_task_spec_names_each_task_once():
    from perception_r1.contract import task_names
    from perception_r1.errors import UserError

    assert task_names(" ocr, grounding ,") == ["ocr", "grounding"]
    with pytest.raises(UserError, match="named twice"):
        task_names("ocr,ocr")
    with pytest.raises(UserError, match="no task given"):
        task_names(" , ")
