"""Real-size model shapes for benchmarks/memory.py, random init, built locally (nothing is downloaded).

``qwen2_5_vl_3b`` is the exact shape of Qwen/Qwen2.5-VL-3B-Instruct. Every value below is the one in that
checkpoint's published ``config.json`` (Hugging Face Hub, Qwen/Qwen2.5-VL-3B-Instruct; the same values are
quoted in the Qwen2.5-VL model card's architecture print: Conv3d(3, 1280, (2, 14, 14)), 32 vision blocks of
1280 with MLP 3420, 36 decoder layers of 2048). Checked against transformers 5.25's ``Qwen2_5_VLConfig``:
the class defaults describe Qwen2.5-VL-72B's text model (hidden 8192, 80 layers, 64 heads, 8 KV heads,
vocab 152064) and a 7B-style vision tower (hidden 3584, out_hidden 3584), so the 3B's text sizes, vision
``hidden_size`` / ``out_hidden_size``, vocab and tied embeddings must be given; the defaults that do equal
the 3B's are rope_theta 1e6, vision depth 32, intermediate 3420, 16 heads, patch 14, spatial merge 2,
temporal patch 2, window 112 and fullatt_block_indexes [7, 15, 23, 31] (given explicitly anyway).

The tokenizer and processor are the embedded tiny model's (a ~1k-token BPE with Qwen's special tokens,
``perception_r1.model.tiny``): the embedding and LM-head rows beyond it exist (151936 rows, as in the
checkpoint) and are never fed as input; a sampled one decodes to nothing. Images are capped at 56x56 pixels
(4x4 patches of 14, 4 vision tokens after the 2x2 merge) so a CPU step stays short.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Qwen/Qwen2.5-VL-3B-Instruct config.json (top level = the text model in the published flat layout)
TEXT_3B: dict[str, Any] = {
    "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16,
    "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
    "rope_theta": 1e6, "mrope_section": [16, 24, 24],  # sums to head_dim / 2 = 2048 / 16 / 2 = 64
}
VISION_3B: dict[str, Any] = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 2048,
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
}
# The same structure (windowed + full-attention vision blocks, GQA, mrope, tied embeddings, a vocab larger
# than the tokenizer) at widths that build in a second: the smoke run's model. Its numbers mean nothing.
TEXT_SMOKE: dict[str, Any] = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "vocab_size": 4096, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
    "rope_theta": 1e6, "mrope_section": [2, 3, 3],
}
VISION_SMOKE: dict[str, Any] = {**VISION_3B, "depth": 4, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                                "out_hidden_size": 64, "fullatt_block_indexes": [1, 3]}
SHAPES = {"qwen2_5_vl_3b": (TEXT_3B, VISION_3B)}
IMAGE_PIXELS = 56 * 56


def shape_sizes(name: str, layers: int | None = None, smoke: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(text, vision) sizes of shape ``name``; ``layers`` keeps every width and sets the decoder's depth (the
    scaling runs: the same model with fewer decoder layers)."""
    text, vision = (TEXT_SMOKE, VISION_SMOKE) if smoke else SHAPES[name]
    return ({**text, "num_hidden_layers": layers} if layers else dict(text)), dict(vision)


def qwen2_5_vl_config(text: dict[str, Any], vision: dict[str, Any], ids: dict[str, int]):
    """A ``Qwen2_5_VLConfig`` of these sizes, its special-token ids those of the tokenizer it ships with."""
    from transformers import Qwen2_5_VLConfig

    text = dict(text)
    rope = {"rope_type": "default", "rope_theta": text.pop("rope_theta"), "mrope_section": text.pop("mrope_section")}
    return Qwen2_5_VLConfig(
        text_config={**text, "rope_parameters": rope, "bos_token_id": ids["<|endoftext|>"],
                     "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
        vision_config=vision, tie_word_embeddings=True, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )


def build_shape(out: Path, name: str, layers: int | None = None, smoke: bool = False) -> Path:
    """Build the random-init model of shape ``name`` with the tiny tokenizer and save it to ``out`` in bfloat16
    (the published checkpoint's dtype; half the disk and write time): both sides load it as float32, their CPU
    default. Initialised in bfloat16, so building never holds a float32 copy (7.5 GB instead of 15 at 3B)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    from perception_r1.model.processor import make_processor, save_model_dir
    from perception_r1.model.tiny import SPECIAL_TOKENS, build_tokenizer, installed_tasks, task_corpus

    torch.manual_seed(0)
    tokenizer = build_tokenizer(task_corpus(installed_tasks()), 1024)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = qwen2_5_vl_config(*shape_sizes(name, layers, smoke), ids)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    image_processor = Qwen2VLImageProcessorPil(min_pixels=IMAGE_PIXELS, max_pixels=IMAGE_PIXELS)
    return save_model_dir(model, make_processor(image_processor, tokenizer), out)


def skeleton_policy(model_dir: str):
    """The ``Policy`` of a model directory with its weights on the meta device: its processor, answer space and
    module names, without loading the weights. TRL's side needs those and then loads the model itself; a
    loaded ``Policy`` beside it would be a second copy of the model in TRL's peak RSS."""
    import torch
    import transformers

    from perception_r1.model.families import family_of
    from perception_r1.model.policy import Policy, _load_processor

    config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    family = family_of(config.model_type)
    model_cls = getattr(transformers, family.model_class or "AutoModelForImageTextToText")
    with torch.device("meta"):
        model = model_cls._from_config(config)
    return Policy(model, _load_processor(Path(model_dir), family, config.model_type))
