"""The embedded default: a tiny Qwen2-VL-architecture model with a locally built tokenizer.

Nothing is downloaded. ``build_tiny`` trains a byte-level BPE tokenizer on in-memory text (the built-in
tasks' prompts and answers), wraps it with the Qwen special tokens and chat template, builds a
randomly initialised ``Qwen2VLForConditionalGeneration`` from a config and saves everything to a
directory that ``Policy.load`` reads exactly like a real Qwen2-VL checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perception_r1.contract import Task

# The special tokens of Qwen2-VL, in its order (the processor looks several of them up by name).
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL-Instruct's chat template (string or list-of-parts content, image parts as vision tokens).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Always in the BPE corpus, so chat scaffolding and answer punctuation get their own merges.
BASE_CORPUS = [
    "system\nYou are a helpful assistant.",
    "user\n",
    "assistant\n",
    '[{"bbox_2d": [12, 34, 56, 78], "label": "circle"}]',
    "(120,340),(560,780) 0123456789 , . : ; ( ) [ ] { } \" ' - _ / ? !",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG.",
]


@dataclass(frozen=True)
class TinyConfig:
    """Sizes of the tiny model. Defaults: ~4M parameters, a few MB in bf16, trains on 2 CPU cores."""

    vocab_size: int = 1024  # BPE target, special tokens included
    hidden_size: int = 192
    intermediate_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 4  # head_dim 48 -> mrope_section sums to 24
    num_key_value_heads: int = 2
    vision_embed_dim: int = 128
    vision_depth: int = 2
    vision_heads: int = 4
    # Images are resized by the processor to at most max_pixels: 224x224 -> 16x16 patches -> 64 tokens.
    min_pixels: int = 56 * 56
    max_pixels: int = 224 * 224
    max_position_embeddings: int = 2048

    @property
    def mrope_section(self) -> list[int]:
        half = self.hidden_size // self.num_attention_heads // 2
        t = half // 4  # Qwen2-VL splits head_dim/2 as [16, 24, 24] of 64: time gets a quarter
        hw = (half - t) // 2
        return [t, hw, half - t - hw]


def task_corpus(tasks: Iterable[Task], n_per_task: int = 64, seed: int = 0) -> list[str]:
    """Prompts and rendered answers of the tasks' synthetic samples (in name order), in the default space."""
    from perception_r1.data.synthetic import synthetic_samples

    texts: list[str] = []
    for task in sorted(tasks, key=lambda t: t.name):
        for sample in synthetic_samples(task, "train", n_per_task, seed=seed):
            texts.append(task.prompt(sample))
            for coords in ("norm1000", task.coord_space):  # the tiny model answers in norm1000
                texts.append(task.render({**sample, "coords": coords}))
    return texts


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 1024):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with Qwen's special tokens and chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Qwen splits every digit into its own token: coordinates become sequences of learnable digits.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: any text encodes
        show_progress=False,
    )
    tok.train_from_iterator([*BASE_CORPUS, *corpus], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        padding_side="left",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(tokenizer, cfg: TinyConfig):
    """A randomly initialised Qwen2-VL whose special-token ids match ``tokenizer``."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size,
            "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads,
            "max_position_embeddings": cfg.max_position_embeddings,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": cfg.mrope_section},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": cfg.vision_depth,
            "embed_dim": cfg.vision_embed_dim,
            "hidden_size": cfg.hidden_size,  # the merger projects straight into the LM's width
            "num_heads": cfg.vision_heads,
            "mlp_ratio": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,  # halves the embedding parameters of a tiny model
    )
    model = Qwen2VLForConditionalGeneration(config)
    gen = model.generation_config
    gen.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    gen.pad_token_id = ids["<|endoftext|>"]
    gen.bos_token_id = ids["<|endoftext|>"]
    return model.float()


def build_tiny(
    out_dir: str | Path,
    corpus: list[str] | None = None,
    cfg: TinyConfig | None = None,
    seed: int = 0,
    tasks: Iterable[Task] | None = None,
) -> Path:
    """Build tokenizer + processor + model (random init) and save them to ``out_dir``.

    ``corpus`` defaults to :func:`task_corpus` of ``tasks``; with neither given, of the installed tasks
    (the embedded default, built when it is missing).
    """
    import torch
    from transformers import Qwen2VLImageProcessorPil

    from perception_r1.model.processor import make_processor, save_model_dir

    cfg = cfg or TinyConfig()
    if corpus is None:
        corpus = task_corpus(installed_tasks() if tasks is None else tasks)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(corpus, cfg.vocab_size)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    processor = make_processor(image_processor, tokenizer)
    model = build_model(tokenizer, cfg)
    out = Path(out_dir)
    save_model_dir(model, processor, out)
    (out / "tiny_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    return out


def installed_tasks() -> list[Task]:
    """The tasks of the process-wide registry: the default only where nobody hands tasks in."""
    from perception_r1.registry import get_registry

    return list(get_registry().tasks.values())


if __name__ == "__main__":  # python -m perception_r1.model.tiny OUT_DIR  (corpus: the registered tasks)
    import sys

    print(build_tiny(sys.argv[1], tasks=installed_tasks()))
