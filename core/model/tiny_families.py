"""Tiny random-init models of every supported family, built from configs with the local tokenizer.

What the tests (and anyone trying a family without a download) load exactly like a real checkpoint:
``build_family("llava", OUT)`` writes config, safetensors, image processor, processor and chat template.
The sizes are a few hundred thousand parameters: they check plumbing, not perception.
"""

from __future__ import annotations

from pathlib import Path

from perception_r1.model.tiny import CHAT_TEMPLATE, build_tokenizer

#: Idefics3 / SmolVLM chat format (one image part expands to the processor's image tokens)
SMOL_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)
#: LLaVA-1.5's chat format
LLAVA_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | upper }}: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% if message['role'] == 'assistant' %}<|im_end|>{% else %} {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
         "num_key_value_heads": 1, "max_position_embeddings": 2048}


def build_family(family: str, out_dir: str | Path, corpus: list[str] | None = None, seed: int = 0) -> Path:
    """A tiny random-init model of ``family`` (one of :data:`FAMILIES`) saved as a model directory."""
    import torch

    from perception_r1.model.processor import save_model_dir

    if family not in FAMILIES:
        raise ValueError(f"no tiny builder for '{family}' (have: {', '.join(FAMILIES)})")
    torch.manual_seed(seed)
    corpus = corpus or ["Output the bounding box of the red circle in the image.", "(120,340),(560,780) 0.5"]
    tokenizer = build_tokenizer(corpus, vocab_size=400)
    model, processor = _BUILDERS[family](tokenizer)
    ids = _ids(tokenizer, "<|im_end|>", "<|endoftext|>")
    model.generation_config.eos_token_id = [ids["<|im_end|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    return save_model_dir(model.to(torch.float32), processor, out_dir)


def _ids(tokenizer, *tokens: str) -> dict[str, int]:
    return {t: tokenizer.convert_tokens_to_ids(t) for t in tokens}


def _qwen_text(tokenizer) -> dict:
    ids = _ids(tokenizer, "<|im_end|>", "<|endoftext|>")
    return {**_TEXT, "vocab_size": len(tokenizer), "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"]}


def _qwen_ids(tokenizer) -> dict[str, int]:
    ids = _ids(tokenizer, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    return {"image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
            "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"]}


def _qwen2_vl(tokenizer):
    from transformers import Qwen2VLImageProcessorPil

    from perception_r1.model.processor import make_processor
    from perception_r1.model.tiny import TinyConfig, build_model

    cfg = TinyConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=2, num_key_value_heads=1, vision_embed_dim=32, vision_depth=1, vision_heads=2)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    return build_model(tokenizer, cfg), make_processor(image_processor, tokenizer)


def _qwen2_5_vl(tokenizer):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    from perception_r1.model.processor import make_processor

    config = Qwen2_5_VLConfig(
        text_config={**_qwen_text(tokenizer),
                     "rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "mrope_section": [4, 6, 6]}},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                       "window_size": 56, "fullatt_block_indexes": [1]},
        tie_word_embeddings=True, **_qwen_ids(tokenizer),
    )
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=224 * 224)
    return Qwen2_5_VLForConditionalGeneration(config), make_processor(image_processor, tokenizer)


def _qwen3_vl(tokenizer):
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from perception_r1.model.processor import make_processor

    rope = {"rope_type": "default", "rope_theta": 1e4, "mrope_section": [4, 6, 6], "mrope_interleaved": True}
    config = Qwen3VLConfig(
        text_config={**_qwen_text(tokenizer), "head_dim": 32, "rope_parameters": rope},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                       "patch_size": 16, "deepstack_visual_indexes": [0], "num_position_embeddings": 64},
        tie_word_embeddings=True, **_qwen_ids(tokenizer),
    )
    image_processor = Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, min_pixels=64 * 64, max_pixels=256 * 256)
    processor = make_processor(image_processor, tokenizer, family="qwen3_vl")
    return Qwen3VLForConditionalGeneration(config), processor


def _idefics3(tokenizer):
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    tokenizer.add_special_tokens({"additional_special_tokens": [
        "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]})
    tokenizer.padding_side = "left"
    config = Idefics3Config(
        text_config={**_TEXT, "model_type": "llama", "vocab_size": len(tokenizer),
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 64, "patch_size": 16},
        scale_factor=2, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    image_processor = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 64},
                                                max_image_size={"longest_edge": 64})
    processor = Idefics3Processor(image_processor, tokenizer, image_seq_len=4, chat_template=SMOL_TEMPLATE)
    return Idefics3ForConditionalGeneration(config), processor


def _llava(tokenizer):
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tokenizer.padding_side = "left"
    config = LlavaConfig(
        text_config={**_TEXT, "model_type": "llama", "vocab_size": len(tokenizer),
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
                       "projection_dim": 32},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1, image_seq_length=16,
    )
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(image_processor, tokenizer, patch_size=8, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, chat_template=LLAVA_TEMPLATE)
    return LlavaForConditionalGeneration(config), processor


__all__ = ["CHAT_TEMPLATE", "FAMILIES", "build_family"]


#: family -> its tiny builder (model, processor); FAMILIES lists them for tests/test_families.py and test_lora.py
_BUILDERS = {"qwen2_vl": _qwen2_vl, "qwen2_5_vl": _qwen2_5_vl, "qwen3_vl": _qwen3_vl, "idefics3": _idefics3,
             "llava": _llava}
FAMILIES = tuple(_BUILDERS)
