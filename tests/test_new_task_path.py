"""The path of a new task, as the README tells it: plugin -> `sft` (default output, printed) -> `run --model`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import run_cli

TEMPLATE = Path(__file__).resolve().parents[1] / "plugins" / "template" / "perception_r1_template"


def _install_template(site: Path) -> None:
    """The template plugin as an installed distribution on ``site`` (the plugin_dir fixture's path)."""
    shutil.copytree(TEMPLATE, site / TEMPLATE.name, ignore=shutil.ignore_patterns("__pycache__"))
    info = site / "perception_r1_template-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: perception-r1-template\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[perception_r1]\ntemplate = perception_r1_template\n")


@pytest.mark.slow
def test_template_task_goes_through_sft_then_run_and_improves(plugin_dir, tmp_path, monkeypatch):
    _install_template(plugin_dir)
    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "template")
    sft = run_cli("sft", "--task", "template", "--steps", "12", cwd=tmp_path)  # the embedded base, default --out
    assert sft.returncode == 0, sft.stderr[-2000:]
    command = re.search(r"perception-r1 run --task template --model (\S+)\)", sft.stdout)
    assert command, sft.stdout[-500:]
    model = tmp_path / command.group(1)
    run = run_cli("run", "--task", "template", "--model", str(model), "--steps", "20", "--eval-samples", "32",
                  "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "lr 0.0001 (default for a model of 2.5M parameters" in run.stdout + run.stderr  # not the paper's 1e-6
    results = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert results["before"]["parse_rate"] == 1.0  # SFT taught the answer format
    assert results["after"]["mean_reward"] > results["before"]["mean_reward"] + 0.1  # measured 0.30 -> 0.89 (0.75 at temperature 1.0, 4 prompts)
