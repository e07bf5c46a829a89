"""Shared fixtures."""

from __future__ import annotations

import os

import pytest

from perception_r1.registry import reset_registry


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A directory on sys.path (and PYTHONPATH for subprocesses) for throw-away plugin dists."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    reset_registry()
    yield root
    reset_registry()
