"""benchmarks/shapes.py builds the real-size shape the memory benchmark measures: checked on the meta device
(no weights allocated) against Qwen2.5-VL-3B-Instruct's architecture as its model card prints it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
shapes = pytest.importorskip("shapes")


def meta_model(layers: int | None = None):
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from perception_r1.model.tiny import SPECIAL_TOKENS

    ids = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    with torch.device("meta"):
        return Qwen2_5_VLForConditionalGeneration(shapes.qwen2_5_vl_config(*shapes.shape_sizes("qwen2_5_vl_3b", layers), ids))


def test_the_3b_shape_is_qwen2_5_vl_3b_instruct() -> None:
    model = meta_model()
    visual, text = model.model.visual, model.model.language_model
    assert tuple(visual.patch_embed.proj.weight.shape) == (1280, 3, 2, 14, 14)
    assert len(visual.blocks) == 32 and visual.blocks[0].mlp.gate_proj.out_features == 3420
    assert visual.fullatt_block_indexes == [7, 15, 23, 31] and visual.window_size == 112
    assert visual.merger.mlp[-1].out_features == 2048  # projects into the language model's width
    assert len(text.layers) == 36
    attn = text.layers[0].self_attn
    assert (attn.q_proj.out_features, attn.k_proj.out_features) == (2048, 256)  # 16 heads, 2 KV heads of 128
    assert text.layers[0].mlp.up_proj.out_features == 11008
    assert tuple(text.embed_tokens.weight.shape) == (151936, 2048)
    assert model.lm_head.weight is text.embed_tokens.weight  # tied, as the 3B checkpoint is
    total = sum(p.numel() for p in model.parameters())
    assert 3.7e9 < total < 3.8e9  # "3.75B params" on the checkpoint's Hub page


def test_layers_sets_only_the_decoders_depth() -> None:
    text = meta_model(layers=4).model.language_model
    assert len(text.layers) == 4 and text.layers[0].mlp.up_proj.out_features == 11008


def test_the_planner_counts_loras_parameters_as_peft_makes_them(tmp_path: Path) -> None:
    """The planner's LoRA count is the trainable count of the adapter the trainer applies (language model
    only), on the smoke stand-in of the 3B architecture; and a bigger batch never lowers its estimate."""
    pytest.importorskip("peft")
    import json

    from perception_r1.model.lora import apply_lora
    from perception_r1.model.policy import Policy
    from perception_r1.train import memory_plan

    model_dir = shapes.build_shape(tmp_path / "model", "qwen2_5_vl_3b", smoke=True)
    policy = Policy.load(model_dir)
    apply_lora(policy, rank=16)
    trainable = sum(p.numel() for p in policy.model.parameters() if p.requires_grad)
    shape = memory_plan.text_shape(json.loads((model_dir / "config.json").read_text()))
    assert memory_plan.lora_parameters(shape, 16) == trainable

    def peak(prompts: int, prompt_tokens: int, rank: int | None, ckpt: bool) -> int:
        return memory_plan.estimate(shape, policy.num_parameters, bytes_per_value=4, prompts=prompts, group_size=2,
                                    prompt_tokens=prompt_tokens, new_tokens=8, lora_rank=rank, beta=0.04,
                                    gradient_checkpointing=ckpt).peak

    for rank, ckpt in ((16, True), (None, False)):
        assert peak(32, 400, rank, ckpt) > peak(2, 40, rank, ckpt)
