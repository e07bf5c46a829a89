"""README "Use the tasks from your trainer": its export commands run, print the configuration lines it shows,
and its TRL lines build what it says."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from perception_r1.cli import main

README = (Path(__file__).parent.parent / "README.md").read_text()
SECTION = README.split("## Use the tasks from your trainer", 1)[1].split("\n## ", 1)[0]


def test_export_commands_run_and_print_the_readme_lines(tmp_path, capsys, monkeypatch):
    commands = re.findall(r"^perception-r1 export .*$", SECTION, flags=re.M)
    assert {shlex.split(c)[5] for c in commands} == {"verl", "easyr1", "trl"}
    monkeypatch.chdir(tmp_path)
    for command in commands:
        argv = shlex.split(command)[1:]
        out = Path(argv[argv.index("--out") + 1]).resolve()
        assert main([*argv, "--limit", "2"]) == 0
        printed = capsys.readouterr().out.replace(str(out), "DIR")
        if argv[4] != "trl":
            for line in printed.splitlines()[2:]:  # each printed setting, with DIR for the out directory
                for setting in line.split():
                    assert setting.split("=")[0] in SECTION, setting
                    if setting.startswith(("custom_reward_function", "worker.reward", "data.image_dir",
                                           "data.format_prompt", "data.train_files")):
                        assert setting in SECTION.replace("\n  ", " "), setting


def test_trl_lines_build_what_the_readme_says(plugin_dir):
    pytest.importorskip("trl")
    from helpers import make_dist

    make_dist(plugin_dir, "brevity-like", "brevity_like", """
from perception_r1 import hookimpl

@hookimpl
def register_rewards(register):
    register("brevity.length_penalty", lambda completions, samples, **kw: [-len(c) / 1000 for c in completions])
""")
    from perception_r1.integrations import trl as pr1

    assert 'pr1.dataset("grounding", model_family="qwen2_5_vl", limit=512)' in SECTION
    train = pr1.dataset("grounding", model_family="qwen2_5_vl", limit=4)
    assert set(train.column_names) == {"prompt", "image", "ground_truth"}
    assert 'reward_funcs("grounding", model_family="qwen2_5_vl", rewards=["brevity.length_penalty:0.1"])' in SECTION
    rewards = pr1.reward_funcs("grounding", model_family="qwen2_5_vl", rewards=["brevity.length_penalty:0.1"])
    assert [f.__name__ for f in rewards] == ["grounding", "brevity.length_penalty"]
    assert rewards[1](prompts=None, completions=["x" * 100], ground_truth=train["ground_truth"][:1]) == \
        pytest.approx([-0.01])
