"""Test helpers: throw-away plugin distributions in a temp dir, and the CLI run as a user runs it."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace


def make_dist(root: Path, dist: str, module: str, source: str, version: str = "1.0") -> Path:
    """Write ``module.py`` and a ``dist-info`` whose entry point names it in the ``perception_r1`` group."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[perception_r1]\n{module} = {module}\n")
    sys.modules.pop(module, None)  # an in-process CLI call imports this source, not an earlier test's
    importlib.invalidate_caches()
    allowed = [p for p in os.environ.get("PERCEPTION_R1_PLUGINS", "").split(",") if p]
    os.environ["PERCEPTION_R1_PLUGINS"] = ",".join([*allowed, dist])  # the plugin_dir fixture restores it
    return root


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed console entry point in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "perception_r1.cli", *args],
        capture_output=True, text=True, env=full_env, cwd=cwd, timeout=600,
    )


def cli_in_process(*args: str) -> SimpleNamespace:
    """The CLI's ``main`` called in this process (no interpreter start-up), as ``run_cli`` reports it:
    ``returncode``, ``stdout``, ``stderr``. For errors found before training; one subprocess test per
    command keeps the console entry point's exit-code contract."""
    from perception_r1.cli import main
    from perception_r1.registry import reset_registry

    reset_registry()  # plugins installed by the test are found, as a fresh process would
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    reset_registry()
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
