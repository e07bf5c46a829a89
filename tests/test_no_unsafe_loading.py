"""Nothing a file gives is unpickled: crafted pickles in place of weights or checkpoints are refused."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
import torch

from perception_r1.errors import UserError
from perception_r1.model.policy import Policy
from perception_r1.train import checkpoint


class _Payload:
    """Unpickling this runs a command that creates a marker file: proof that code executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _pickle_bytes(marker):
    return pickle.dumps({"weight": _Payload(marker)})


def test_model_dir_with_pickled_weights_is_refused(tmp_path, small_model):
    model_dir = tmp_path / "model"
    shutil.copytree(small_model, model_dir)
    marker = tmp_path / "pwned"
    (model_dir / "model.safetensors").write_bytes(_pickle_bytes(marker))
    with pytest.raises(UserError, match="cannot load the model weights"):
        Policy.load(model_dir)
    assert not marker.exists()


def test_model_dir_with_only_a_pytorch_bin_is_refused(tmp_path, small_model):
    model_dir = tmp_path / "model"
    shutil.copytree(small_model, model_dir)
    marker = tmp_path / "pwned"
    (model_dir / "model.safetensors").unlink()
    (model_dir / "pytorch_model.bin").write_bytes(_pickle_bytes(marker))
    with pytest.raises(UserError):
        Policy.load(model_dir)
    assert not marker.exists()


def test_checkpoint_with_pickled_tensors_is_refused(tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    path = checkpoint.save(tmp_path, 1, model, optimizer, {})
    marker = tmp_path / "pwned"
    for name in ("model.safetensors", "optimizer.safetensors", "rng.safetensors"):
        original = (path / name).read_bytes()
        (path / name).write_bytes(_pickle_bytes(marker))
        with pytest.raises(ValueError, match=r"not a valid safetensors file \(.*\); refusing"):
            checkpoint.load(path, model, optimizer)
        (path / name).write_bytes(original)
    assert not marker.exists()
