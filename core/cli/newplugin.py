"""`perception-r1 new-plugin NAME`: start a task plugin from a renamed copy of the plugin template.

The one source of the template is ``plugins/template`` in the repository (a real distribution whose
tests CI runs). It is found, in order: ``--template DIR``; a copy shipped inside the package at
``perception_r1/plugin_template`` (installs from a wheel, when pyproject maps that package to
``plugins/template``); the repository checkout next to an editable install (``pip install -e .``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import click

from perception_r1.errors import UserError

if TYPE_CHECKING:
    from perception_r1.registry import Registry

#: tokens of the template that name it; each becomes the new plugin's own name
DIST_TOKEN = "perception-r1-template"
MODULE_TOKEN = "perception_r1_template"
TASK_TOKEN = "template"
CLASS_TOKEN = "ColorTask"  # the template's task class: the new plugin's is named after it (QuadrantTask)

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
MAX_NAME = 40
#: build and cache leftovers of an installed or tested template: never part of a new plugin
JUNK = {"__pycache__", "build", "dist", ".pytest_cache", ".hypothesis", ".ruff_cache", ".eggs"}
TEXT_SUFFIXES = {".py", ".toml", ".md", ".txt", ".cfg", ".ini", ".json", ".yaml", ".yml", ""}


def find_template(explicit: Path | None = None) -> Path:
    if explicit is not None:
        if not (explicit / "pyproject.toml").is_file():
            raise UserError(f"--template {explicit}: no pyproject.toml there (expected a copy of plugins/template)")
        return explicit
    import perception_r1

    package = Path(perception_r1.__file__).resolve().parent
    for candidate in (package / "plugin_template", package.parent / "plugins" / "template"):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    raise UserError(
        "the plugin template was not found next to this perception-r1 install; "
        "clone the perception-r1 repository and pass --template <repo>/plugins/template"
    )


def _skip(path: Path) -> bool:
    return any(part in JUNK or part.endswith(".egg-info") for part in path.parts) or path.suffix in {".pyc", ".pyo"}


def rename(text: str, name: str, *, is_pyproject: bool = False) -> str:
    """The template's names -> ``name``: distribution, import package, entry point and task name."""
    module = "perception_r1_" + name.replace("-", "_")
    text = text.replace(DIST_TOKEN, f"perception-r1-{name}").replace(MODULE_TOKEN, module)
    if is_pyproject:  # the entry-point key, the one unquoted use of the task name
        text = re.sub(rf"^{TASK_TOKEN} = ", f"{name} = ", text, flags=re.MULTILINE)
    for quote, end in (('"', '"'), ("`", "`"), ("`", ".")):  # "template", `template`, `template.reward`
        text = text.replace(f"{quote}{TASK_TOKEN}{end}", f"{quote}{name}{end}")
    return re.sub(rf"\b{CLASS_TOKEN}\b", "".join(part.title() for part in name.split("-")) + "Task", text)


def create_plugin(name: str, parent: Path, template: Path | None = None, registry: Registry | None = None) -> Path:
    """Write ``parent/perception-r1-NAME``, a renamed copy of the template. Returns its path.

    ``registry``: the installed tasks and rewards the new name must not clash with (``None``: no check).
    """
    if not NAME_RE.match(name) or len(name) > MAX_NAME:
        raise UserError(
            f"plugin name '{name}' must be lowercase letters, digits and single hyphens, starting with a "
            f"letter, at most {MAX_NAME} characters (e.g. 'shape-color')"
        )
    if name == TASK_TOKEN:
        raise UserError(f"'{TASK_TOKEN}' is the template's own name; pick another")
    if registry is not None and (name in registry.tasks or name in registry.rewards):
        raise UserError(f"a task or reward named '{name}' is already installed; pick another name")
    source = find_template(template)
    target = parent / f"perception-r1-{name}"
    if target.exists():
        raise UserError(f"{target} already exists; remove it or pick another --dir")
    files = sorted(p for p in source.rglob("*") if p.is_file() and not _skip(p.relative_to(source)))
    try:
        for path in files:
            rel = Path(rename(str(path.relative_to(source)), name))
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix in TEXT_SUFFIXES:
                text = path.read_text(encoding="utf-8")
                out.write_text(rename(text, name, is_pyproject=path.name == "pyproject.toml"), encoding="utf-8")
            else:
                shutil.copyfile(path, out)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # never leave a half-written plugin behind
        raise
    return target


@click.command("new-plugin")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Parent directory; the plugin is written to DIR/perception-r1-NAME.",
)
@click.option(
    "--template",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Template to copy (default: the repository's plugins/template).",
)
def command(name: str, directory: Path, template: Path | None) -> None:
    """Create a new task plugin NAME from the plugin template, renamed and ready to pip-install."""
    from perception_r1.registry import PluginError, get_registry

    try:
        registry = get_registry()
    except PluginError:  # a broken installed plugin must not stop anyone from starting a new one
        registry = None
    target = create_plugin(name, directory, template, registry)
    click.echo(f"created {target}")
    click.echo(f"its task is still the template's example (name the colour of one shape; reward '{name}.known_color'):"
               " make it yours in task.py, keeping the tests green")
    click.echo(f"next: pip install -e {target} && (cd {target} && pytest)")
