"""Third-party plugins for real: `new-plugin`, and pip-installed distributions seen (and no longer seen)
by the CLI. Installs go into a throw-away virtualenv that shares this environment's packages, so the
environment itself (and anyone using it in parallel) never changes."""

from __future__ import annotations

import ast
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from perception_r1.cli import main
from perception_r1.cli.newplugin import create_plugin, find_template
from perception_r1.errors import UserError
from perception_r1.registry import Registry, hookimpl

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "plugins" / "template"
BUILTINS = {"grounding", "counting", "ocr", "detection"}
JUNK = ["__pycache__/x.cpython-311.pyc", "perception_r1_template.egg-info/PKG-INFO", "build/lib/x.py",
        ".pytest_cache/v/cache", ".hypothesis/examples/x", "perception_r1_template/__pycache__/task.pyc"]


# -- new-plugin, fast ------------------------------------------------------------------------------
def test_default_template_is_found():
    import perception_r1

    packaged = Path(perception_r1.__file__).parent / "plugin_template"  # only in wheel installs
    assert find_template() == (packaged if packaged.is_dir() else TEMPLATE)
    assert 'name = "perception-r1-template"' in (find_template() / "pyproject.toml").read_text()


def test_new_plugin_renames_everything_and_leaves_build_junk_behind(tmp_path):
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", ".*cache", "build"))
    for junk in JUNK:
        (template / junk).parent.mkdir(parents=True, exist_ok=True)
        (template / junk).write_text("junk")
    target = create_plugin("shape-size", tmp_path / "out", template=template)

    assert target == tmp_path / "out" / "perception-r1-shape-size"
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "perception_r1_shape_size/__init__.py",
        "perception_r1_shape_size/task.py",
        "pyproject.toml",
        "tests/test_perception_r1_shape_size.py",
    ]
    for path in target.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "perception_r1_template" not in text and "perception-r1-template" not in text, path
            if path.suffix == ".py":
                ast.parse(text)  # still valid Python
    pyproject = (target / "pyproject.toml").read_text()
    assert 'name = "perception-r1-shape-size"' in pyproject
    assert 'shape-size = "perception_r1_shape_size"' in pyproject
    assert 'TASK_NAME = "shape-size"' in (target / "perception_r1_shape_size" / "task.py").read_text()
    assert "`shape-size.known_color`" in (target / "README.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["Bad_Name"], "must be lowercase"),
        (["a--b"], "must be lowercase"),
        (["x" * 41], "at most 40"),
        (["template"], "template's own name"),
        (["ocr"], "already installed"),
        (["fine", "--template", "/"], "no pyproject.toml"),
    ],
)
def test_new_plugin_refuses_with_one_line(argv, message, tmp_path, capsys):
    assert main(["new-plugin", *argv, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_never_overwrites(tmp_path, capsys):
    (tmp_path / "perception-r1-mine").mkdir()
    assert main(["new-plugin", "mine", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_new_plugin_checks_names_against_the_registry_it_is_given(tmp_path):
    class Plugin:
        @hookimpl
        def register_rewards(self, register):
            register("taken", lambda completions, samples, **kw: [0.0] * len(completions))

    registry = Registry()
    registry.add_plugin(Plugin(), name="p")
    with pytest.raises(UserError, match="'taken' is already installed"):
        create_plugin("taken", tmp_path, template=TEMPLATE, registry=registry)
    assert list(tmp_path.iterdir()) == []


def test_missing_template_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--template"):
        find_template(tmp_path)


# -- installed for real, in a throw-away virtualenv ------------------------------------------------
@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtualenv that sees this environment's packages (perception-r1, torch, ...) and installs into
    its own site-packages: `python -m pip` there uses the shared pip."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(root)], check=True)
    python = root / "bin" / "python"
    assert python.exists()
    if sys.prefix != sys.base_prefix:
        # run from inside a virtualenv: --system-site-packages shows only the *base* interpreter's packages,
        # so the outer environment's (perception-r1's editable install included, through its .pth files)
        # are added behind the throw-away's own site-packages
        own = next(root.glob("lib/python*/site-packages"))
        outer = [d for d in site.getsitepackages() if Path(d).is_dir()]
        (own / "_outer_env.pth").write_text("".join(f"import site; site.addsitedir({d!r})\n" for d in outer))
    return python


def _run(python: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, check: bool = True):
    full_env = {k: v for k, v in os.environ.items() if k != "PERCEPTION_R1_PLUGINS"}
    full_env.update(env or {})
    proc = subprocess.run([str(python), *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600)
    if check:
        assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _pip(python: Path, *args: str):
    """pip as a user runs it: with build isolation, which brings the build requirements (setuptools >= 69)
    whatever the environment has (a fresh virtualenv's own setuptools is too old for the pyproject)."""
    return _run(python, "-m", "pip", "--disable-pip-version-check", "-q", *args)


def _plugins(python: Path, allow: str | None = None) -> dict[str, dict]:
    env = {} if allow is None else {"PERCEPTION_R1_PLUGINS": allow}
    out = _run(python, "-m", "perception_r1.cli", "plugins", env=env).stdout
    return {p["name"]: p for p in json.loads(out)}


def _builtin_tasks(plugins: dict[str, dict]) -> set[str]:
    return {t for p in plugins.values() if p["builtin"] for t in p["tasks"]}


@pytest.mark.slow
def test_new_plugin_installs_passes_its_own_tests_and_uninstalls(venv, tmp_path):
    name = f"tpp-{os.getpid()}"
    dist = f"perception-r1-{name}"
    _run(venv, "-m", "perception_r1.cli", "new-plugin", name, "--dir", str(tmp_path))
    plugin = tmp_path / dist
    before = _plugins(venv)
    assert name not in before
    _pip(venv, "install", "--no-deps", "-e", str(plugin))
    try:
        # the copy's own tests, unchanged, in its own directory
        tests = _run(venv, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=plugin, check=False)
        assert tests.returncode == 0, tests.stdout[-3000:]
        assert " passed" in tests.stdout and "skipped" not in tests.stdout

        installed = _plugins(venv)
        assert installed[name]["distribution"] == dist
        assert installed[name]["tasks"] == [name] and installed[name]["rewards"] == [f"{name}.known_color"]
        assert name in _run(venv, "-m", "perception_r1.cli", "tasks").stdout

        only_builtins = _plugins(venv, allow="")
        assert all(p["builtin"] for p in only_builtins.values())
        assert _builtin_tasks(only_builtins) == _builtin_tasks(installed) and _builtin_tasks(installed)
        assert set(_plugins(venv, allow=name)) - set(only_builtins) == {name}
    finally:
        _pip(venv, "uninstall", "-y", dist)
    assert name not in _plugins(venv)
    assert name not in _run(venv, "-m", "perception_r1.cli", "tasks").stdout


@pytest.mark.slow
def test_real_plugin_distributions_are_found_and_filtered(venv, tmp_path):
    """text-spotting and brevity-reward, built as wheels and installed like any user would."""
    sources = []
    for name in ("text-spotting", "brevity-reward"):
        copy = tmp_path / name  # build from a copy: no build/ or egg-info left in the repository
        shutil.copytree(REPO / "plugins" / name, copy,
                        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", ".*cache", "build"))
        sources.append(str(copy))
    dists = ["perception-r1-text-spotting", "perception-r1-brevity-reward"]
    _pip(venv, "install", "--no-deps", *sources)
    try:
        where = _run(venv, "-c", "import perception_r1_text_spotting as m; print(m.__file__)").stdout
        assert where.startswith(str(venv.parent.parent)), where  # the wheel just built, not a copy elsewhere
        everything = _plugins(venv)
        assert everything["text-spotting"]["distribution"] == "perception-r1-text-spotting"
        assert everything["text-spotting"]["tasks"] == ["text-spotting"]
        assert everything["brevity"]["rewards"] == ["brevity.length_penalty"]
        assert "text-spotting" in _run(venv, "-m", "perception_r1.cli", "tasks").stdout

        only_builtins = _plugins(venv, allow="")
        assert "text-spotting" not in only_builtins and "brevity" not in only_builtins
        assert _builtin_tasks(only_builtins) == _builtin_tasks(everything)
        # an allow-list entry may name the plugin or its distribution
        assert {"brevity"} <= set(_plugins(venv, allow="brevity")) and "text-spotting" not in _plugins(venv, allow="brevity")
        assert "text-spotting" in _plugins(venv, allow="perception-r1-text-spotting")
    finally:
        _pip(venv, "uninstall", "-y", *dists)
