"""An image-only processor for the Qwen2-VL family (the stock one requires torchvision, for its video
processor) and the model directory it is saved in, as real checkpoints ship."""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import ProcessorMixin
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor

_CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


class PerceptionProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor for images and text only: no video processor, so no torchvision needed."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


def make_processor(image_processor, tokenizer, chat_template: str | None = None) -> PerceptionProcessor:
    template = chat_template or getattr(tokenizer, "chat_template", None)
    tokenizer.padding_side = "left"  # generation appends on the right
    return PerceptionProcessor(image_processor, tokenizer, chat_template=template)


def read_chat_template(path: Path) -> str | None:
    jinja, as_json = (path / f for f in _CHAT_TEMPLATE_FILES)
    if jinja.is_file():
        return jinja.read_text()
    if as_json.is_file():
        return json.loads(as_json.read_text()).get("chat_template")
    return None


def save_model_dir(model, processor: PerceptionProcessor, out_dir: str | Path, dtype=None) -> Path:
    """Save model (safetensors), processor, tokenizer and chat template to ``out_dir``; ``dtype`` stores a
    converted copy without touching the live model."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    final = Path(out_dir)
    final.mkdir(parents=True, exist_ok=True)
    # a new (empty) directory is written beside and renamed into place: a kill never leaves half a model
    fresh = not any(final.iterdir())
    out = final.parent / f".tmp-{final.name}-{os.getpid()}" if fresh else final
    out.mkdir(exist_ok=True)
    if dtype is not None and dtype != next(model.parameters()).dtype:
        import copy

        model = copy.deepcopy(model).to(dtype)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    processor.image_processor.save_pretrained(out)  # preprocessor_config.json, as real checkpoints ship
    (out / "chat_template.jinja").write_text(processor.chat_template)
    if fresh:
        os.replace(out, final)  # onto the empty directory
    return final
