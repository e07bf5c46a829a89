"""LoRA through peft on tiny models: what trains, the reference as the adapter switched off, adapter-only
checkpoints, exact resume, and merge-lora to a full model directory."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import run_cli
from PIL import Image
from safetensors.torch import load_file

from perception_r1.errors import UserError
from perception_r1.model.lora import adapter_off, apply_lora
from perception_r1.model.policy import Policy
from perception_r1.model.tiny_families import FAMILIES, build_family

pytest.importorskip("peft")
PROMPTS = ["Output the bounding box of the red circle in the image.", "How many?"]


def images() -> list[Image.Image]:
    return [Image.new("RGB", (200, 150), "red"), Image.new("RGB", (90, 120), "blue")]


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return build_family("qwen2_vl", tmp_path_factory.mktemp("qwen2_vl"))


def _perturb_adapter(policy) -> None:
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05 * torch.randn_like(p))


@pytest.mark.parametrize("family", FAMILIES)
def test_adapter_trains_alone_and_switched_off_is_the_base(family, tmp_path):
    base = Policy.load(build_family(family, tmp_path / family))
    policy = Policy.load(tmp_path / family)
    apply_lora(policy, rank=4)
    trainable = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert not any(part in n for n in trainable for part in ("visual", "vision_tower", "vision_model"))
    _perturb_adapter(policy)
    torch.manual_seed(0)
    r = policy.generate(PROMPTS, images(), num_generations=2, max_new_tokens=6, return_logprobs=True)
    with torch.no_grad():
        on = policy.token_logprobs(r)
        with adapter_off(policy):
            off = policy.token_logprobs(r)
        want = base.token_logprobs(r)
    m = r.completion_mask
    assert torch.allclose(on * m, r.sampler_logprobs, atol=1e-4)  # sampler == scorer with the adapter on
    assert torch.allclose(off * m, want * m, atol=1e-5)  # adapter off == the base model, no copy needed
    assert not torch.allclose(on * m, off * m, atol=1e-4)


def test_vision_tower_gets_adapters_when_asked(qwen_dir):
    policy = Policy.load(qwen_dir)
    apply_lora(policy, rank=2, vision=True)
    trainable = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert any(".visual." in n for n in trainable) and all("lora_" in n for n in trainable)


def test_missing_peft_is_a_one_line_hint(qwen_dir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(UserError, match=r"pip install 'perception-r1\[lora\]'"):
        apply_lora(Policy.load(qwen_dir), rank=2)


def _run(out, model, steps, *extra):
    return run_cli("run", "--task", "ocr", "--model", str(model), "--steps", str(steps), "--eval-samples", "0",
                   "--threads", "1", "--lora-rank", "4", "--lr", "0.01", "--set", "group_size=2",
                   "--set", "prompts_per_step=2", "--set", "max_new_tokens=8", "--set", "checkpoint_every=1",
                   "--out", str(out), *extra)


def _metrics(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "generation_seconds", "peak_rss_mb")} for r in rows]


@pytest.mark.slow
def test_lora_run_checkpoints_adapter_resumes_exactly_and_merges(qwen_dir, tmp_path):
    straight = tmp_path / "straight"
    done = _run(straight, qwen_dir, 3)
    assert done.returncode == 0, done.stderr[-2000:]
    step = straight / "checkpoints" / "step-3"
    assert {"adapter_model.safetensors", "adapter_config.json"} <= {p.name for p in step.iterdir()}
    assert not (step / "model.safetensors").exists()  # the frozen base is not copied into checkpoints
    adapter = load_file(step / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    assert any(m["kl"] > 0 for m in _metrics(straight))  # the adapter moved away from the base

    interrupted = tmp_path / "interrupted"
    assert _run(interrupted, qwen_dir, 1).returncode == 0
    again = run_cli("run", "--resume", str(interrupted), "--steps", "3")
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = load_file(interrupted / "checkpoints" / "step-3" / "adapter_model.safetensors")
    assert all(torch.equal(adapter[k], resumed[k]) for k in adapter)
    assert _metrics(interrupted) == _metrics(straight)

    merged = run_cli("merge-lora", str(straight), str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stderr[-2000:]
    policy = Policy.load(qwen_dir)
    wrapped = apply_lora(policy, rank=4)
    from perception_r1.model.lora import load_adapter

    load_adapter(wrapped, step)
    full = Policy.load(tmp_path / "merged")
    assert not any("lora" in k for k in full.model.state_dict())
    r = policy.teacher_forced(PROMPTS, images(), ["(1,2),(3,4)", "3"])
    with torch.no_grad():
        assert torch.allclose(policy.token_logprobs(r), full.token_logprobs(r), atol=1e-5)
    bad = run_cli("merge-lora", str(tmp_path / "nowhere"), str(tmp_path / "m2"))
    assert bad.returncode == 2 and "neither a run directory" in bad.stderr


@pytest.mark.slow
def test_lora_under_ddp_on_cpu(qwen_dir, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "ddp"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "perception_r1.cli", "run",
         "--task", "ocr", "--model", str(qwen_dir), "--steps", "2", "--eval-samples", "0", "--threads", "1",
         "--lora-rank", "2", "--set", "group_size=2", "--set", "prompts_per_step=1", "--set", "max_new_tokens=6",
         "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [m["processes"] for m in _metrics(out)] == [2, 2]
    assert (out / "checkpoints" / "step-2" / "adapter_model.safetensors").is_file()
