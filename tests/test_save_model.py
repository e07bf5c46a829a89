"""A run is a model: `save-model RUN OUT` writes the trained policy (any checkpoint) as a model directory."""

from __future__ import annotations

import torch
from helpers import cli_in_process
from safetensors.torch import load_file, save_file

from perception_r1.model.policy import Policy

SMALL_RUN = ["--set", "prompts_per_step=1", "--set", "group_size=2", "--set", "max_new_tokens=4",
             "--set", "eval_samples=0", "--set", "checkpoint_every=1", "--threads", "1"]


def test_a_full_weight_run_saved_at_its_latest_and_at_a_given_step(tmp_path, small_model):
    run = tmp_path / "run"
    done = cli_in_process("run", "--task", "ocr", "--model", str(small_model), "--out", str(run), "--steps", "2",
                          "--lr", "0.01", *SMALL_RUN)
    assert done.returncode == 0, done.stderr[-2000:]
    for step in (1, 2):  # mark each checkpoint's weights: what is saved must come from it, not from the base
        path = run / "checkpoints" / f"step-{step}" / "model.safetensors"
        weights = load_file(path)
        first = sorted(k for k in weights if ".mlp." in k)[0]  # not a tied embedding: its twin would differ
        weights[first] = weights[first] + step
        save_file(weights, path)
    for source, step in ((run, 2), (run / "checkpoints" / "step-1", 1)):
        out = tmp_path / f"model-{step}"
        saved = cli_in_process("save-model", str(source), str(out))
        assert saved.returncode == 0 and f"--model {out}" in saved.stdout, saved.stderr
        trained = load_file(run / "checkpoints" / f"step-{step}" / "model.safetensors")
        loaded = Policy.load(out).model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in trained.items())
    base = Policy.load(small_model).model.state_dict()
    assert not torch.equal(base[first], trained[first])


def test_what_is_not_a_run_or_not_saved_yet_is_one_line(tmp_path, small_model):
    assert "neither a run directory" in cli_in_process("save-model", str(small_model), str(tmp_path / "a")).stderr
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(f"task: ocr\nmodel: {small_model}\n")
    result = cli_in_process("save-model", str(run / "checkpoints" / "step-9"), str(tmp_path / "b"))
    assert result.returncode == 2 and "no complete checkpoint at step 9" in result.stderr
    result = cli_in_process("save-model", str(run), str(tmp_path / "c"))
    assert result.returncode == 2 and "no complete checkpoint yet" in result.stderr


def test_eval_evaluates_a_run_in_place(tmp_path, small_model):
    """`eval --model RUN` (and RUN/checkpoints/step-N) scores the trained policy: the same numbers as the model
    directory `save-model` writes of it."""
    run = tmp_path / "run"
    done = cli_in_process("run", "--task", "ocr", "--model", str(small_model), "--out", str(run), "--steps", "2",
                          "--lr", "0.05", *SMALL_RUN)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = tmp_path / "saved"
    assert cli_in_process("save-model", str(run / "checkpoints" / "step-2"), str(saved)).returncode == 0
    scored = {}
    for name, model in (("run", run), ("step", run / "checkpoints" / "step-2"), ("saved", saved)):
        result = cli_in_process("eval", "--task", "ocr", "--model", str(model), "--limit", "4", "--json",
                                "--max-new-tokens", "8", "--threads", "1")
        assert result.returncode == 0, result.stderr
        scored[name] = result.stdout.strip().splitlines()[-1]
    assert scored["run"] == scored["step"] == scored["saved"]


def test_a_run_without_checkpoints_is_one_line(tmp_path):
    (tmp_path / "config.yaml").write_text("task: ocr\n")
    result = cli_in_process("eval", "--task", "ocr", "--model", str(tmp_path), "--limit", "2")
    assert result.returncode == 2 and "no complete checkpoint yet" in result.stderr
    import pytest

    from perception_r1.errors import UserError

    with pytest.raises(UserError, match=f"save-model {tmp_path} OUT"):  # where a run is no model (run, sft)
        Policy.load(tmp_path)


def test_config_yaml_records_the_model_path_absolutely(tmp_path, small_model, monkeypatch):
    import yaml

    monkeypatch.chdir(small_model.parent)
    run = tmp_path / "run"
    done = cli_in_process("run", "--task", "ocr", "--model", small_model.name, "--out", str(run), "--steps", "1",
                          *SMALL_RUN)
    assert done.returncode == 0, done.stderr[-2000:]
    assert yaml.safe_load((run / "config.yaml").read_text())["model"] == str(small_model.absolute())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the README's re-run, from a directory where the relative model name means nothing
    again = cli_in_process("run", "--config", str(run / "config.yaml"), "--out", "again")
    assert again.returncode == 0, again.stderr[-2000:]
    assert yaml.safe_load((elsewhere / "again" / "config.yaml").read_text())["model"] == str(small_model.absolute())
