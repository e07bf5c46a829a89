"""The house rules, read from the code's syntax trees: one order of layers, no task named by core, size limits.

The order is written once, in :data:`LAYERS` (CONTRIBUTING.md shows it): a module imports only modules of
its own room or of a lower layer. Function-level imports count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: folder -> import package (pyproject's package-dir)
PACKAGES = {"core": "perception_r1", "registry": "perception_r1.registry", "tasks": "perception_r1.tasks"}
#: bottom first; each entry is a layer of rooms (a room: a top-level module or subpackage of perception_r1)
LAYERS: list[tuple[str, ...]] = [
    ("perception_r1.contract",),
    ("perception_r1.errors", "perception_r1.registry"),
    ("perception_r1", "perception_r1.data", "perception_r1.display", "perception_r1.testing"),
    ("perception_r1.tasks",),
    ("perception_r1.model",),
    ("perception_r1.evaluate",),
    ("perception_r1.train",),
    ("perception_r1.recipe",),
    ("perception_r1.integrations",),
    ("perception_r1.cli",),
]
BUILTIN_TASKS = ("grounding", "counting", "ocr", "detection")
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 500
MAX_HOOKSPEC_LINES = 60
MAX_MANAGER_LINES = 150


def module_files() -> dict[str, Path]:
    files = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join([package, *parts])] = path
    return files


FILES = module_files()


def imported(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import of ``perception_r1`` in a file, at any depth, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base]) if base else ".".join(up)
            # `from perception_r1.data import io` names the module perception_r1.data.io
            found += [(node.lineno, f"{base}.{a.name}" if f"{base}.{a.name}" in FILES else base) for a in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "perception_r1"]


def room_of(module: str) -> str:
    """The room a module belongs to: the longest layer entry that is a prefix of it."""
    rooms = [room for layer in LAYERS for room in layer if module == room or module.startswith(room + ".")]
    assert rooms, f"{module} is in no layer: add its room to LAYERS in tests/test_layout.py and CONTRIBUTING.md"
    return max(rooms, key=len)


def layer_of(room: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if room in layer)


def violations(files: dict[str, Path]) -> list[str]:
    found = []
    for module, path in files.items():
        room = room_of(module)
        for line, target in imported(path, module):
            target_room = room_of(target)
            if target_room != room and layer_of(target_room) >= layer_of(room):
                found.append(f"{path.name}:{line}: {room} imports {target} ({target_room} is not below it)")
    return found


def test_every_import_goes_down_the_layers():
    assert violations(FILES) == []


def test_a_planted_upward_import_is_caught(tmp_path):
    planted = tmp_path / "contract.py"
    planted.write_text("from perception_r1.train.grpo import group_advantages\n")
    (tmp_path / "lazy.py").write_text("def f():\n    from perception_r1.cli import main\n")
    found = violations({"perception_r1.contract": planted, "perception_r1.model.lazy": tmp_path / "lazy.py"})
    assert len(found) == 2 and "perception_r1.contract imports perception_r1.train.grpo" in found[0]
    assert "perception_r1.model imports perception_r1.cli" in found[1]


def test_the_contract_imports_nothing_of_the_package():
    assert imported(FILES["perception_r1.contract"], "perception_r1.contract") == []


def _strings_outside_docstrings(tree: ast.AST) -> list[ast.Constant]:
    docs = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            docs.add(id(body[0].value))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_core_never_names_or_imports_a_builtin_task():
    core = {m: p for m, p in FILES.items() if room_of(m) not in ("perception_r1.tasks",)}
    for module, path in core.items():
        for node in _strings_outside_docstrings(ast.parse(path.read_text())):
            assert node.value.strip().lower() not in BUILTIN_TASKS, f"{path.relative_to(ROOT)}:{node.lineno} names a task"
        for line, target in imported(path, module):
            assert target.split(".")[-1] not in BUILTIN_TASKS, f"{path.relative_to(ROOT)}:{line} imports {target}"
    for schema in (ROOT / "registry" / "schemas").glob("*.json"):
        text = json.dumps(json.loads(schema.read_text()))
        named = [t for t in BUILTIN_TASKS if re.search(rf'"{t}"', text)]
        assert named == [], f"{schema.relative_to(ROOT)} names built-in task(s) {named}"


def test_no_task_imports_another_task():
    for task in BUILTIN_TASKS:
        module = f"perception_r1.tasks.{task}"
        for line, target in imported(FILES[module], module):
            other = target.split(".")[-1]
            assert other not in BUILTIN_TASKS or other == task, f"tasks/{task}.py:{line} imports {target}"


@pytest.mark.parametrize("module", sorted(FILES))
def test_sizes(module):
    path = FILES[module]
    text = path.read_text()
    lines = len(text.splitlines())
    assert lines <= MAX_FILE_LINES, f"{path.relative_to(ROOT)} has {lines} lines (> {MAX_FILE_LINES}): split it"
    if "HookspecMarker(" in text:
        assert lines < MAX_HOOKSPEC_LINES
    if "PluginManager(" in text:
        assert lines < MAX_MANAGER_LINES
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines"


def test_contributing_map_names_every_module_and_the_layers():
    """CONTRIBUTING.md's map is checked against the tree: every module file is named there, and so is each layer."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    map_text = text[text.index("## The map"):text.index("## Adding a task")]
    missing = sorted({p.name for p in FILES.values() if p.name != "__init__.py" and p.name not in map_text}
                     | {f"{p.parent.name}/" for p in FILES.values() if p.name == "__init__.py"
                        and p.parent.name not in PACKAGES and f"{p.parent.name}/" not in map_text})
    assert missing == [], f"CONTRIBUTING.md's map does not mention {missing}"
    order = " < ".join(" ".join(room.removeprefix("perception_r1.") for room in layer) for layer in LAYERS)
    assert order in text, f"CONTRIBUTING.md should state the layer order exactly as: {order}"
