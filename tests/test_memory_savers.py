"""Memory savers: gradient checkpointing (same numbers), bf16 mixed precision through accelerate, and no
reference forward when beta is 0."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import run_cli
from PIL import Image

from perception_r1.model.policy import Policy
from perception_r1.model.tiny_families import build_family

PROMPTS = ["Output the bounding box of the red circle in the image.", "How many?"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return build_family("qwen2_vl", tmp_path_factory.mktemp("qwen2_vl"))


def _logprobs_and_grads(policy, r):
    policy.model.zero_grad()
    logprobs = policy.token_logprobs(r)
    (logprobs * r.completion_mask).sum().backward()
    grads = {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}
    policy.model.zero_grad()
    return logprobs.detach(), grads


def test_gradient_checkpointing_gives_the_same_log_probs_and_gradients(tiny_dir):
    policy = Policy.load(tiny_dir)
    images = [Image.new("RGB", (200, 150), "red"), Image.new("RGB", (90, 120), "blue")]
    torch.manual_seed(0)
    r = policy.generate(PROMPTS, images, num_generations=3, max_new_tokens=6)
    policy.model.train()
    plain, plain_grads = _logprobs_and_grads(policy, r)
    policy.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert policy.model.is_activation_checkpointing
    saved, saved_grads = _logprobs_and_grads(policy, r)
    mask = r.completion_mask.bool()
    assert torch.allclose(plain[mask], saved[mask], atol=1e-5)
    assert plain_grads.keys() == saved_grads.keys()
    for name in plain_grads:
        assert torch.allclose(plain_grads[name], saved_grads[name], rtol=1e-3, atol=1e-6), name


def test_beta_zero_runs_no_reference_forward(tiny_dir, tmp_path, monkeypatch):
    from perception_r1.registry import get_registry
    from perception_r1.train import config as cfg
    from perception_r1.train.plan import plan_run
    from perception_r1.train.trainer import Trainer

    config = cfg.resolve(None, {"task": "ocr", "model": str(tiny_dir), "beta": 0.0, "group_size": 2,
                                "prompts_per_step": 1, "max_new_tokens": 4, "eval_samples": 0, "threads": 1})
    trainer = Trainer(plan_run(config, get_registry()), tmp_path / "run")
    assert trainer.reference is None
    calls = []
    original = trainer.policy.token_logprobs

    def counted(rollout, model=None, temperature=1.0):
        calls.append(torch.is_grad_enabled())
        return original(rollout, model=model, temperature=temperature)

    monkeypatch.setattr(trainer.policy, "token_logprobs", counted)
    trainer.train_step(0)
    assert calls == [True]  # the policy's own forward only: no reference pass


@pytest.mark.slow
def test_run_with_lora_checkpointing_and_bf16(tiny_dir, tmp_path):
    done = run_cli("run", "--task", "ocr", "--model", str(tiny_dir), "--steps", "2", "--eval-samples", "0",
                   "--threads", "1", "--lora-rank", "2", "--set", "gradient_checkpointing=true",
                   "--set", "mixed_precision=bf16", "--set", "group_size=2", "--set", "prompts_per_step=2",
                   "--set", "max_new_tokens=8", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(row["loss"] == row["loss"] for row in rows)  # finite, not NaN


@pytest.mark.parametrize(("name", "kind"), [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("zero2", "DEEPSPEED"),
                                            ("zero3", "DEEPSPEED")])
def test_shipped_accelerate_configs_load(name, kind):
    from pathlib import Path

    from accelerate.commands.config.config_args import load_config_from_file

    path = Path(__file__).parent.parent / "configs" / "accelerate" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert config.distributed_type.name == kind and config.mixed_precision == "bf16"
    if name.startswith("zero"):
        assert config.deepspeed_config["zero_stage"] == int(name[-1])
