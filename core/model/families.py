"""Model families: what the policy adapter must know of a VLM architecture, one row per family.

A family declares the coordinate space its model answers boxes in, which fast paths its forward supports
(``fast_paths``: one vision-tower pass per distinct image through ``mm_encoder_outputs`` and the prompt
once per group on a shared KV cache, the Qwen2-VL style), how to build its processor without torchvision,
and which modules LoRA adapts. Any other ``AutoModelForImageTextToText`` with a chat template is served by
:data:`GENERIC`: one full forward per row, no fast path.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

#: the embedded tiny default (``--model`` unset)
DEFAULT_MODEL = Path(__file__).parent.parent / "assets" / "tiny-base"


@dataclass(frozen=True)
class Family:
    model_type: str
    coord_space: str  # what its model card documents for boxes
    model_class: str | None = None  # transformers class; None: AutoModelForImageTextToText
    processor: str | None = None  # "qwen": our image-only Qwen processors; else a transformers processor class
    fast_paths: bool = False  # shared vision pass + prompt once per group (needs mm_encoder_outputs, M-RoPE)
    end_of_turn: str | None = None  # the token that ends an assistant turn (SFT appends it)
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    vision_prefixes: tuple[str, ...] = ("visual", "vision_tower", "vision_model", "multi_modal_projector",
                                        "connector")


FAMILIES = {
    f.model_type: f
    for f in (
        # Qwen2-VL answers boxes in 0-1000 of the image; Qwen2.5-VL in pixels of the image it was fed
        Family("qwen2_vl", "norm1000", "Qwen2VLForConditionalGeneration", "qwen", True, "<|im_end|>"),
        Family("qwen2_5_vl", "resized", "Qwen2_5_VLForConditionalGeneration", "qwen", True, "<|im_end|>"),
        # Qwen3-VL went back to 0-1000 relative coordinates (its model card's grounding examples)
        Family("qwen3_vl", "norm1000", "Qwen3VLForConditionalGeneration", "qwen", True, "<|im_end|>"),
        # SmolVLM / Idefics3 and LLaVA-1.5 document no pixel format; LLaVA-1.5 was trained on [0, 1] boxes
        Family("idefics3", "norm1", "Idefics3ForConditionalGeneration", "Idefics3Processor", False,
               "<end_of_utterance>"),
        Family("llava", "norm1", "LlavaForConditionalGeneration", "LlavaProcessor", False),
    )
}
#: any other image-text-to-text model: 0-1000 (InternVL's and most recent VLMs' convention); --coords overrides
GENERIC = Family("generic", "norm1000")


def family_of(model_type: str | None) -> Family | None:
    """The family of a ``config.json`` model type: its own row, the generic one, or None (not a VLM)."""
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return GENERIC if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES else None


def count_parameters(model: str | Path | None) -> int | None:
    """Parameters of a model directory's weights, read from the safetensors headers alone (no torch, no
    weights loaded), so a run's size-dependent settings are known before anything heavy starts; tied weights
    are stored once, as ``model.parameters()`` counts them. None when the directory has no readable
    safetensors file (the loader then says what is wrong)."""
    from safetensors import SafetensorError, safe_open

    path = Path(model) if model is not None else DEFAULT_MODEL
    index = path / "model.safetensors.index.json"
    try:
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else [
            "model.safetensors"]
        total = 0
        for name in files:
            with safe_open(path / name, framework="numpy") as weights:  # the header only: nothing is read
                total += sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())
        return total
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError):
        return None
