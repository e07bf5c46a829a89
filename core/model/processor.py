"""An image-only processor for the Qwen2-VL family (the stock one requires torchvision, for its video
processor) and the model directory it is saved in, as real checkpoints ship."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import ProcessorMixin
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

_CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


class PerceptionProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor for images and text only: no video processor, so no torchvision needed."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


class Qwen3PerceptionProcessor(Qwen3VLProcessor):
    """Qwen3-VL's processor for images and text only (its stock one needs a torchvision video processor)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.vision_start_token, self.vision_end_token = "<|vision_start|>", "<|vision_end|>"
        for name in ("image", "video", "vision_start", "vision_end"):
            setattr(self, f"{name}_token_id", tokenizer.convert_tokens_to_ids(getattr(self, f"{name}_token")))
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


_QWEN_PROCESSORS = {"qwen3_vl": Qwen3PerceptionProcessor}


def make_processor(image_processor, tokenizer, chat_template: str | None = None, family: str = "qwen2_vl"):
    """The image-only processor of a Qwen-family model (``family`` = its model type)."""
    template = chat_template or getattr(tokenizer, "chat_template", None)
    tokenizer.padding_side = "left"  # generation appends on the right
    return _QWEN_PROCESSORS.get(family, PerceptionProcessor)(image_processor, tokenizer, chat_template=template)


def load_stock_processor(path: Path, class_name: str, tokenizer, chat_template: str):
    """Another family's own processor class (e.g. ``LlavaProcessor``) around a PIL image processor: no torchvision."""
    import inspect

    import transformers
    from transformers import AutoImageProcessor

    image_processor = AutoImageProcessor.from_pretrained(path, backend="pil", local_files_only=True)
    cls = getattr(transformers, class_name)
    stored: dict[str, Any] = {}
    for name in ("processor_config.json", "preprocessor_config.json"):
        if (path / name).is_file():
            stored = {**json.loads((path / name).read_text()), **stored}
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "image_processor", "tokenizer", "chat_template"}
    if "video_processor" in accepted:
        raise ValueError(f"{class_name} needs a video processor (torchvision); no image-only variant here")
    tokenizer.padding_side = "left"
    extra = {k: v for k, v in stored.items() if k in accepted}
    return cls(image_processor, tokenizer, chat_template=chat_template, **extra)


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
    try:
        model.save_pretrained(out)
        processor.save_pretrained(out)
        processor.image_processor.save_pretrained(out)  # preprocessor_config.json, as real checkpoints ship
        (out / "chat_template.jinja").write_text(str(processor.chat_template))
    except BaseException:  # disk full, Ctrl-C: no .tmp-* directory is left beside --out
        if fresh:
            shutil.rmtree(out, ignore_errors=True)
        raise
    if fresh:
        os.replace(out, final)  # onto the empty directory
    return final
