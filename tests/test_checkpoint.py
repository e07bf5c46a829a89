"""Checkpoints restore weights, optimizer and RNG exactly; a half-written one is never picked up."""

from __future__ import annotations

import random

import pytest
import torch

from perception_r1.train import checkpoint


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    model[1].weight = torch.nn.Parameter(model[1].weight)  # a plain parameter
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss = model(torch.randn(3, 4)).pow(2).sum()
    loss.backward()
    optimizer.step()
    return model, optimizer


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path):
    model, optimizer = _model_and_optimizer()
    torch.manual_seed(123)
    random.seed(7)
    path = checkpoint.save(tmp_path, 5, model, optimizer, {"note": "x"})
    expected_torch, expected_py = torch.rand(3), random.random()

    fresh = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    torch.manual_seed(999)
    state = checkpoint.load(path, fresh, fresh_opt)
    assert state["step"] == 5 and state["note"] == "x"
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    sa, sb = optimizer.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert all(torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) for k in sa)
    assert torch.equal(torch.rand(3), expected_torch) and random.random() == expected_py


def test_latest_ignores_incomplete_writes(tmp_path):
    model, optimizer = _model_and_optimizer()
    checkpoint.save(tmp_path, 2, model, optimizer, {})
    (tmp_path / ".tmp-step-4-123").mkdir()  # a kill mid-write leaves only a temp dir
    (tmp_path / "step-6").mkdir()  # or a directory without its state file
    assert checkpoint.latest(tmp_path).name == "step-2"


def test_mismatched_checkpoint_is_refused(tmp_path):
    model, optimizer = _model_and_optimizer()
    path = checkpoint.save(tmp_path, 1, model, optimizer, {})
    with pytest.raises(ValueError, match="does not match the model"):
        checkpoint.load(path, torch.nn.Linear(4, 2), None)


def test_no_pickle_anywhere_in_a_checkpoint(tmp_path):
    model, optimizer = _model_and_optimizer()
    path = checkpoint.save(tmp_path, 1, model, optimizer, {})
    assert sorted(p.suffix for p in path.iterdir()) == [".json", ".safetensors", ".safetensors", ".safetensors"]
