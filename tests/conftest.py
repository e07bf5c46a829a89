"""Shared fixtures.

The project's tests see the built-in plugins only, unless a test allows more: third-party plugins
installed on the machine (perhaps from another checkout) must not change what the tests measure.
"""

from __future__ import annotations

import os

import pytest

from perception_r1.registry import reset_registry

os.environ.setdefault("PERCEPTION_R1_PLUGINS", "")


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A directory on sys.path (and PYTHONPATH for subprocesses) for throw-away plugin dists.

    ``helpers.make_dist`` adds each dist it writes there to the allow-list.
    """
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PERCEPTION_R1_PLUGINS", "")
    reset_registry()
    yield root
    reset_registry()


@pytest.fixture(scope="session")
def small_model(tmp_path_factory):
    """A very small tiny-Qwen2-VL directory built from a config (seconds), for fast end-to-end runs."""
    from perception_r1.model.tiny import TinyConfig, build_tiny

    cfg = TinyConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                     num_key_value_heads=1, vision_embed_dim=32, vision_heads=2)
    corpus = ["OCR this image.", "hello world chair paper brown fox", "(12,34),(56,78) <|box_start|>"]
    return build_tiny(tmp_path_factory.mktemp("small-model"), corpus=corpus, cfg=cfg)
