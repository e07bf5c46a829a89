"""The plugin author's reference is generated from the code, and the copy in docs/ is that output."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_cli

from perception_r1 import contract
from perception_r1.cli.docs import reference
from perception_r1.registry import Registry

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugin-api.md"


def _builtins_only() -> Registry:
    registry = Registry()
    registry.load_entry_points(allow=set())
    return registry


def test_docs_copy_is_the_generated_reference():
    assert DOCS.read_text() == reference(_builtins_only()), "regenerate: PERCEPTION_R1_PLUGINS= perception-r1 docs --out docs/plugin-api.md"


def test_every_task_attribute_and_sample_key_is_documented():
    assert set(contract.Task.__annotations__) == set(contract.TASK_ATTRIBUTES)
    text = reference(_builtins_only())
    for key in contract.SAMPLE_KEYS:
        assert f"| `{key}` |" in text
    for name in ("parse", "reward", "evaluate", "render", "synthetic", "load", "draw_solution", "objects"):
        assert f"- `{name}(" in text
    assert "(see the built-in tasks)" not in text  # every method has a docstring


def test_tasks_schema_prints_a_tasks_solution_schema():
    result = run_cli("tasks", "--schema", "grounding", env={"PERCEPTION_R1_PLUGINS": ""})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == _builtins_only().task("grounding").solution_schema
    bad = run_cli("tasks", "--schema", "nope", env={"PERCEPTION_R1_PLUGINS": ""})
    assert bad.returncode == 2 and "unknown task 'nope'" in bad.stderr
