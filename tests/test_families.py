"""Every supported model family on a tiny random-init model built from its config: processor without
torchvision, coordinate space, sampler == scorer log-probs, fast path == generic path, and the CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from helpers import run_cli
from PIL import Image

from perception_r1.errors import UserError
from perception_r1.model.policy import Policy
from perception_r1.model.tiny_families import FAMILIES, build_family

SPACES = {"qwen2_vl": "norm1000", "qwen2_5_vl": "resized", "qwen3_vl": "norm1000", "idefics3": "norm1",
          "llava": "norm1"}
FAST = {"qwen2_vl", "qwen2_5_vl", "qwen3_vl"}
PROMPTS = ["Output the bounding box of the red circle in the image.", "How many?"]


def images() -> list[Image.Image]:
    return [Image.new("RGB", (200, 150), "red"), Image.new("RGB", (90, 120), "blue")]


@pytest.fixture(scope="module", params=FAMILIES)
def family_dir(request, tmp_path_factory):
    torch.set_num_threads(1)
    return request.param, build_family(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def policy(family_dir):
    return Policy.load(family_dir[1])


def test_the_size_a_run_plans_with_is_the_loaded_models(family_dir, policy):
    """`run` picks size-dependent defaults from the safetensors headers before loading anything."""
    from perception_r1.model.families import count_parameters

    assert count_parameters(family_dir[1]) == policy.num_parameters


def test_torchvision_is_not_needed():
    with pytest.raises(ImportError):
        import torchvision  # noqa: F401  (the point: every family below loads without it)


def test_family_declares_its_space_and_fast_paths(family_dir, policy):
    family, _ = family_dir
    assert policy.coord_space == SPACES[family]
    assert policy.fast == (family in FAST)
    assert "Pil" in type(policy.processor.image_processor).__name__


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_and_scorer_log_probs_agree(policy, temperature):
    torch.manual_seed(1)
    r = policy.generate(PROMPTS, images(), num_generations=3, max_new_tokens=8, temperature=temperature,
                        return_logprobs=True)
    with torch.no_grad():
        ours = policy.token_logprobs(r, temperature=temperature)
    assert r.completion_ids.shape[0] == 6 and len(r.texts) == 6
    assert torch.allclose(ours * r.completion_mask, r.sampler_logprobs, atol=1e-4)
    assert (ours * r.completion_mask).sum() < 0


def test_fast_path_equals_the_generic_path(family_dir, policy):
    if not policy.fast:
        pytest.skip(f"{family_dir[0]} has no fast path")
    generic = Policy(policy.model, policy.processor, fast=False)
    torch.manual_seed(2)
    r = policy.generate(PROMPTS, images(), num_generations=3, max_new_tokens=6)
    fast = policy.token_logprobs(r)
    per_row = generic.token_logprobs(dataclasses.replace(r, prompt_inputs=generic.encode_prompts(PROMPTS, images(), 3)))
    mask = r.completion_mask.bool()
    assert torch.allclose(fast[mask], per_row[mask], atol=1e-5)
    grads = []
    for logprobs in (fast, per_row):
        policy.model.zero_grad()
        (logprobs * r.completion_mask).sum().backward()
        grads.append({n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None})
    policy.model.zero_grad()
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], rtol=1e-3, atol=1e-6), name


def test_teacher_forced_ends_the_turn_and_greedy_groups_agree(policy):
    r = policy.teacher_forced(PROMPTS, images(), ["(1,2),(3,4)", "3"])
    assert policy.decode(r.completion_ids, r.completion_mask) == ["(1,2),(3,4)", "3"]
    assert all(int(row[int(m.sum()) - 1]) in policy.eos_ids for row, m in zip(r.completion_ids, r.completion_mask,
                                                                              strict=True))
    g = policy.generate(PROMPTS, images(), num_generations=2, max_new_tokens=5, greedy=True)
    assert g.texts[0] == g.texts[1] and g.texts[2] == g.texts[3]
    assert g.prompt_inputs["input_ids"].shape[0] == 4


def test_save_round_trip_and_coords_override(family_dir, policy, tmp_path):
    policy.save(tmp_path / "copy")
    again = Policy.load(tmp_path / "copy", coords="pixels")
    assert again.coord_space == "pixels" and type(again.processor) is type(policy.processor)
    a, b = policy.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(UserError, match="not a coordinate space"):
        Policy(policy.model, policy.processor, coords="inches")


def test_a_text_model_is_one_line_user_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "preprocessor_config.json").write_text("{}")
    with pytest.raises(UserError, match="AutoModelForImageTextToText"):
        Policy.load(tmp_path)


@pytest.mark.slow
def test_run_and_eval_on_grounding(family_dir, tmp_path):
    family, model = family_dir
    run = run_cli("run", "--task", "grounding", "--model", str(model), "--steps", "2", "--eval-samples", "2",
                  "--threads", "1", "--set", "group_size=2", "--set", "prompts_per_step=2",
                  "--set", "max_new_tokens=8", "--out", str(tmp_path / "run"))
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    sample = json.loads((tmp_path / "run" / "completions.jsonl").read_text().splitlines()[0])
    assert sample["coords"] == SPACES[family]
    lora = run_cli("run", "--task", "grounding", "--model", str(model), "--steps", "2", "--eval-samples", "2",
                   "--threads", "1", "--set", "group_size=2", "--set", "prompts_per_step=2", "--set", "max_new_tokens=8",
                   "--lora-rank", "2", "--out", str(tmp_path / "lora"))
    assert lora.returncode == 0, lora.stderr[-2000:]
    assert (tmp_path / "lora" / "checkpoints" / "step-2" / "adapter_model.safetensors").is_file()
    ev = run_cli("eval", "--task", "grounding", "--model", str(model), "--limit", "2", "--threads", "1",
                 "--max-new-tokens", "8", "--coords", "pixels", "--json")
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "miou" in json.loads(ev.stdout.strip().splitlines()[-1])


def test_a_model_without_a_family_row_takes_the_generic_path(tmp_path, monkeypatch):
    """LLaVA with its row removed: AutoModelForImageTextToText, the processor class its directory names."""
    from perception_r1.model import families

    path = build_family("llava", tmp_path / "llava")
    monkeypatch.delitem(families.FAMILIES, "llava")
    policy = Policy.load(path)
    assert policy.family is families.GENERIC and not policy.fast and policy.coord_space == "norm1000"
    assert type(policy.processor).__name__ == "LlavaProcessor"
    torch.manual_seed(3)
    r = policy.generate(PROMPTS, images(), num_generations=2, max_new_tokens=6, return_logprobs=True)
    with torch.no_grad():
        ours = policy.token_logprobs(r)
    assert torch.allclose(ours * r.completion_mask, r.sampler_logprobs, atol=1e-4)
