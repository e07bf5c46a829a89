"""The policy adapter: one object that loads a vision-language model, samples groups of completions and
scores completion tokens. The GRPO trainer, SFT and evaluation talk only to this.

What differs between architectures is one row of ``families.FAMILIES`` (coordinate space, fast paths,
processor, LoRA targets); any other ``AutoModelForImageTextToText`` with a chat template takes the generic
path: each row its own image copy and one full forward, no fast path.

One load path for the embedded tiny model and for real checkpoints (``--model /path/to/Qwen2-VL-2B``):
the image processor, tokenizer and chat template are read explicitly from the directory and put together
into an image-only processor, because ``AutoProcessor`` silently returns a bare tokenizer here and the
stock Qwen2-VL processor requires torchvision (for its video processor). Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from perception_r1.contract import MODEL_COORD_SPACES
from perception_r1.errors import UserError
from perception_r1.model.families import DEFAULT_MODEL, FAMILIES, Family, family_of
from perception_r1.model.processor import (
    PerceptionProcessor,
    load_stock_processor,
    make_processor,
    read_chat_template,
    save_model_dir,
)

log = logging.getLogger(__name__)

# model_type -> (model class name in transformers, coordinate space the model answers in); any other
# AutoModelForImageTextToText is served too (``families.GENERIC``)
SUPPORTED = {t: (f.model_class, f.coord_space) for t, f in FAMILIES.items()}
# Chat-control tokens are stripped from decoded completions; box/ref tokens are kept only if the
# tokenizer does not mark them special (Qwen marks them special, so they are stripped like in the paper's code).
#: the processor outputs with one row per prompt (or completion) and a token axis
_TEXT_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")
#: placeholder tokens a processor may name; none may be sampled (the next forward would count it as an image slot)
_VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
_PROCESSOR_TOKENS = ("image_token", "video_token", "fake_image_token", "global_image_tag", "boi_token", "eoi_token")


@dataclass
class Rollout:
    """B prompts x G completions. Row ``i*G + g`` is prompt ``i``'s ``g``-th completion."""

    # input_ids/attention_mask/mm_token_type_ids (N, P) and image_grid_thw (N, 3): one row per completion;
    # pixel_values: each prompt's image once (the G rows of a group share it)
    prompt_inputs: dict[str, torch.Tensor]
    completion_ids: torch.Tensor  # (N, T) long, padded after EOS
    completion_mask: torch.Tensor  # (N, T) float: 1 up to and including EOS, 0 after
    texts: list[str]  # decoded completions, special tokens stripped
    num_generations: int = 1
    # (N, T) log-probs of the sampled tokens under the sampling distribution, when asked for
    sampler_logprobs: torch.Tensor | None = None
    # (N,) bool: rows that used all of max_new_tokens without an end-of-turn token (cut off, not finished)
    truncated: torch.Tensor | None = None

    @property
    def num_prompts(self) -> int:
        return self.completion_ids.shape[0] // self.num_generations


#: seconds a model's chat template may take to render one prompt (it takes milliseconds)
TEMPLATE_SECONDS = 10.0


def pure_sampling(greedy: bool, temperature: float) -> dict[str, Any]:
    """``generate`` settings for greedy search or pure sampling at ``temperature``: no top-k / top-p / min-p,
    penalties or beams, whatever the model's generation_config says (GRPO's log-probs assume pure sampling)."""
    return {"do_sample": not greedy, "temperature": temperature if not greedy else None,
            "top_k": 0 if not greedy else None, "top_p": 1.0 if not greedy else None, "min_p": None,
            "typical_p": 1.0, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "num_beams": 1}


class Policy:
    """A multimodal LLM as a policy: ``generate`` groups of completions, ``token_logprobs`` to train."""

    def __init__(self, model, processor: PerceptionProcessor, name: str = "policy", coords: str | None = None,
                 fast: bool | None = None) -> None:
        """``coords`` overrides the family's coordinate space (a fine-tuned checkpoint that answers in another);
        ``fast=False`` turns the family's fast paths off (the generic per-row path, e.g. to compare)."""
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.name = name
        self.peft: Any = None  # the PeftModel around ``model`` once LoRA is applied (model/lora.py)
        model_type = model.config.model_type
        family = family_of(model_type)
        if family is None:
            raise UserError(f"model type '{model_type}' is not supported (supported: {', '.join(SUPPORTED)}, "
                            "or any AutoModelForImageTextToText)")
        self.family: Family = family
        if coords is not None and coords not in MODEL_COORD_SPACES:
            raise UserError(f"--coords {coords}: not a coordinate space (one of {', '.join(MODEL_COORD_SPACES)})")
        self.coord_space = coords or family.coord_space
        self.fast = family.fast_paths if fast is None else fast and family.fast_paths
        self.eos_ids = self._eos_ids()
        # vision placeholders must never be sampled: the next forward would count them as image slots
        names = {*_VISION_TOKENS, *(getattr(processor, a, None) for a in _PROCESSOR_TOKENS)}
        ids = {self.tokenizer.convert_tokens_to_ids(t) for t in names if isinstance(t, str)}
        self.suppressed_ids = sorted(i for i in ids if i is not None and i != self.tokenizer.unk_token_id)

    # -- loading and saving ----------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu", dtype: torch.dtype | None = None,
             coords: str | None = None) -> Policy:
        """Load a processor + model directory; ``None`` = the embedded tiny default; ``coords`` as in ``__init__``."""
        if path is None:
            if not (DEFAULT_MODEL / "config.json").is_file():
                log.warning("embedded model %s is missing: building a fresh, untrained tiny model", DEFAULT_MODEL)
                from perception_r1.model.tiny import build_tiny

                path = build_tiny(Path(tempfile.mkdtemp(prefix="perception-r1-tiny-")))
            else:
                path = DEFAULT_MODEL
        return cls._load_dir(Path(path), device, dtype, coords)

    @classmethod
    def _load_dir(cls, path: Path, device: str, dtype: torch.dtype | None, coords: str | None = None) -> Policy:
        import transformers

        transformers.utils.logging.disable_progress_bar()  # our commands show their own progress

        if not path.is_dir():
            raise UserError(f"model directory '{path}' does not exist")
        missing = [f for f in ("config.json",) if not (path / f).is_file()]
        if not any((path / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")):
            missing.append("preprocessor_config.json")
        if missing and ((path / "config.yaml").is_file() or (path / "state.json").is_file()):
            raise UserError(f"'{path}' is a run (or one of its checkpoints), not a model directory: "
                            f"`perception-r1 save-model {path} OUT` writes its policy as one")
        if missing:
            raise UserError(f"'{path}' is not a processor + model directory (missing {', '.join(missing)})")
        model_type = _model_type(path / "config.json")
        family = family_of(model_type)
        if family is None:
            raise UserError(f"'{path}': model type '{model_type}' is not supported (supported: {', '.join(SUPPORTED)}, "
                            "or any AutoModelForImageTextToText)")
        processor = _load_processor(path, family, model_type)
        if dtype is None:  # CPU training wants float32; accelerators bfloat16
            dtype = torch.float32 if device == "cpu" else torch.bfloat16
        model_cls = getattr(transformers, family.model_class or "AutoModelForImageTextToText")
        try:
            # safetensors only: a pickled pytorch_model.bin is never loaded
            model = model_cls.from_pretrained(path, dtype=dtype, local_files_only=True, use_safetensors=True)
        except Exception as exc:  # corrupt or foreign weight files raise library-specific errors
            raise UserError(
                f"'{path}': cannot load the model weights ({type(exc).__name__}: {exc})".replace("\n", " ")
            ) from exc
        name = "tiny-base" if path.resolve() == DEFAULT_MODEL.resolve() else path.name
        policy = cls(model.to(device), processor, name=name, coords=coords)
        policy.chat_text("Check the chat template.")  # a broken or endless template: refused now, not mid-run
        return policy

    def save(self, out_dir: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Save model (safetensors), processor, tokenizer and chat template; ``load`` reads it back.

        ``dtype`` (e.g. ``torch.bfloat16``) stores a smaller copy without touching the live model.
        """
        return save_model_dir(self.model, self.processor, out_dir, dtype)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def num_parameters(self) -> int:
        """All parameters of the model (what the size-dependent run defaults look at)."""
        return sum(p.numel() for p in self.model.parameters())

    def _eos_ids(self) -> list[int]:
        names = ("<|im_end|>", "<|endoftext|>", self.family.end_of_turn, self.tokenizer.eos_token)
        ids = {self.tokenizer.convert_tokens_to_ids(t) for t in names if t}
        gen_eos = self.model.generation_config.eos_token_id
        ids |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
        return sorted(i for i in ids if i is not None and i != self.tokenizer.unk_token_id)

    def resized_size(self, width: int, height: int) -> list[int]:
        """The ``[w, h]`` the processor resizes an image of this size to (what ``resized`` coordinates are in)."""
        from perception_r1.tasks.geometry import smart_resize

        ip = self.processor.image_processor
        if not hasattr(ip, "merge_size"):
            raise UserError(f"coordinate space 'resized' needs a Qwen-style image processor, not {type(ip).__name__}")
        return list(smart_resize(width, height, factor=ip.patch_size * ip.merge_size,
                                 min_pixels=ip.size["shortest_edge"], max_pixels=ip.size["longest_edge"]))

    # -- prompts ---------------------------------------------------------------------------------
    def chat_text(self, prompt: str, with_image: bool = True) -> str:
        """The chat-formatted prompt text (ends with the assistant header)."""
        from perception_r1.contract import BudgetExceeded, time_budget

        content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": prompt}]
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        try:
            with time_budget(TEMPLATE_SECONDS):  # a template is data from the model directory: bounded time
                return self.processor.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
        except BudgetExceeded:
            raise UserError(f"model '{self.name}': its chat template took more than {TEMPLATE_SECONDS:g} s "
                            "to render one prompt (a loop in chat_template?)") from None
        except Exception as exc:  # noqa: BLE001 - jinja's sandbox raises TemplateError, OverflowError (range), ...
            raise UserError(f"model '{self.name}': its chat template cannot be used "
                            f"({type(exc).__name__}: {str(exc)[:200]})".replace("\n", " ")) from exc

    def encode_prompts(
        self, prompts: Sequence[str], images: Sequence[Image.Image] | None, repeat: int = 1
    ) -> dict[str, torch.Tensor]:
        """Process B prompts once; with ``repeat`` G, each prompt's text rows and image grid appear G times
        in a row (B*G rows, left-padded) while ``pixel_values`` keep each image ONCE: the vision tower
        encodes an image once for its whole group (see :meth:`image_features`). Without fast paths every row
        gets its own copy of its image."""
        if repeat > 1 and images is not None and not self.fast:
            prompts = [p for p in prompts for _ in range(repeat)]
            images, repeat = [im for im in images for _ in range(repeat)], 1
        texts = [self.chat_text(p, with_image=images is not None) for p in prompts]
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images is not None:
            if len(images) != len(prompts):
                raise ValueError(f"{len(prompts)} prompts but {len(images)} images")
            kwargs["images"] = list(images)
        inputs = dict(self.processor(**kwargs))
        if repeat > 1:
            inputs = _repeat_rows(inputs, repeat)
        return {k: v.to(self.device) for k, v in inputs.items() if isinstance(v, torch.Tensor)}

    def image_features(self, model, prompt_inputs: Mapping[str, torch.Tensor], group_size: int, repeat: bool = True):
        """The vision tower run once per image of ``prompt_inputs`` (whose rows come in groups of ``group_size``),
        as transformers' ``mm_encoder_outputs["image"]``: one entry per row, or per group with ``repeat=False``.

        Gradients from every row that shares an image reach its one vision forward.
        """
        grid = prompt_inputs["image_grid_thw"][::group_size]  # one row per distinct image
        model = getattr(model, "module", model)  # DDP wraps the policy in training
        features = model.get_image_features(prompt_inputs["pixel_values"], grid, return_dict=True)
        if repeat:
            features.pooler_output = tuple(f for f in features.pooler_output for _ in range(group_size))
        return features

    def _each_prompt_once(self, model, prompt_inputs: Mapping[str, torch.Tensor], group_size: int) -> dict[str, Any]:
        """Model inputs for the first row of each group of ``group_size`` rows: every prompt and image once."""
        once: dict[str, Any] = {k: prompt_inputs[k][::group_size] for k in _TEXT_KEYS if k in prompt_inputs}
        if "pixel_values" in prompt_inputs:
            once["image_grid_thw"] = prompt_inputs["image_grid_thw"][::group_size]
            once["mm_encoder_outputs"] = {"image": self.image_features(model, prompt_inputs, group_size, repeat=False)}
        return once

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        images: Sequence[Image.Image] | None,
        num_generations: int = 1,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        greedy: bool = False,
        return_logprobs: bool = False,
    ) -> Rollout:
        """Sample ``num_generations`` completions per prompt (pure sampling: no top-k/top-p/penalties)."""
        inputs = self.encode_prompts(prompts, images)  # B rows, each image once
        # greedy search's G answers are one answer repeated: it decodes B rows; sampling decodes B*G rows
        expand = 1 if greedy else num_generations
        was_training = self.model.training
        self.model.eval()
        try:
            if expand > 1 and "pixel_values" in inputs and self.fast:
                start = self._shared_prompt_cache(inputs, expand)
            else:  # text-only prompts are cheap: decode their rows as they are
                start = self._group_rows(inputs, prompts, images, expand)
            out = self.model.generate(
                **start,
                max_new_tokens=max_new_tokens,
                **pure_sampling(greedy, temperature),
                suppress_tokens=self.suppressed_ids or None,
                eos_token_id=self.eos_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                return_dict_in_generate=True,
                output_scores=return_logprobs,
                # weights are whole here (the trainer gathers sharded ones first, train.engine): no process waits
                # for the others token by token (transformers' default under FSDP / ZeRO-3)
                synced_gpus=False,
            )
        finally:
            self.model.train(was_training)
        completion_ids = out.sequences[:, inputs["input_ids"].shape[1] :]  # (B*expand, T), a group's rows together
        if expand < num_generations:
            completion_ids = completion_ids.repeat_interleave(num_generations // expand, dim=0)
        if num_generations > 1:
            inputs = start if expand == num_generations and not self.fast else \
                self._group_rows(inputs, prompts, images, num_generations)
        mask = completion_mask(completion_ids, self.eos_ids)
        sampler_logprobs = None
        if return_logprobs:
            scores = torch.stack(out.scores, dim=1).float()  # (N, T, V) logits after temperature
            if expand < num_generations:
                scores = scores.repeat_interleave(num_generations // expand, dim=0)
            sampler_logprobs = scores.log_softmax(-1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
            sampler_logprobs = sampler_logprobs * mask
        truncated = truncated_rows(completion_ids, self.eos_ids, max_new_tokens)
        return Rollout(inputs, completion_ids, mask, self.decode(completion_ids, mask), num_generations, sampler_logprobs,
                       truncated)

    def _group_rows(self, inputs: dict[str, torch.Tensor], prompts, images, g: int) -> dict[str, torch.Tensor]:
        """``inputs`` (one row per prompt) as G rows per prompt; without fast paths each row has its own image."""
        if g == 1 or self.fast or "pixel_values" not in inputs:
            return _repeat_rows(inputs, g)
        return self.encode_prompts(prompts, images, repeat=g)

    def _shared_prompt_cache(self, inputs: dict[str, torch.Tensor], g: int) -> dict[str, Any]:
        """generate() arguments for G samples of each prompt that run the prompt once, not G times.

        All but the last prompt token go through one forward per prompt (image included); its KV cache,
        repeated G times, starts the decoding of the G rows. The forward also leaves the rows' M-RoPE
        offsets on the model, which decoding steps read; they are repeated for the G rows like the cache.
        """
        head = self._each_prompt_once(self.model, inputs, 1)
        head.update({k: head[k][:, :-1] for k in _TEXT_KEYS if k in head})  # the last token starts decoding
        cache = self.model(**head, use_cache=True, logits_to_keep=1).cache
        cache.batch_repeat_interleave(g)
        base = self.model.model  # generate continues from the rope offsets of "an earlier call": one per row
        base.rope_deltas = base.rope_deltas.repeat_interleave(g, dim=0)
        rows = _repeat_rows(inputs, g)
        return {"input_ids": rows["input_ids"], "attention_mask": rows["attention_mask"], "cache": cache}

    def decode(self, completion_ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
        rows = [ids[: int(m.sum())].tolist() for ids, m in zip(completion_ids, mask, strict=True)]
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def teacher_forced(
        self, prompts: Sequence[str], images: Sequence[Image.Image] | None, answers: Sequence[str]
    ) -> Rollout:
        """A Rollout whose completions are given answers (+ <|im_end|>): what SFT trains on."""
        inputs = self.encode_prompts(prompts, images)
        end = self.family.end_of_turn
        eos = self.tokenizer.convert_tokens_to_ids(end) if end else self.tokenizer.eos_token_id
        rows = [self.tokenizer(a, add_special_tokens=False)["input_ids"] + [eos] for a in answers]
        t = max(len(r) for r in rows)
        ids = torch.full((len(rows), t), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(rows), t)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1.0
        return Rollout(inputs, ids.to(self.device), mask.to(self.device), list(answers), 1)

    # -- scoring ---------------------------------------------------------------------------------
    def token_logprobs(self, rollout: Rollout, model=None, temperature: float = 1.0) -> torch.Tensor:
        """(N, T) log-prob of every completion token under ``model`` (default: this policy's).

        Keeps the graph: call under ``torch.no_grad()`` for reference/old log-probs.
        """
        model = self.model if model is None else model
        ids = rollout.completion_ids  # (N, T)
        # the shared prompt cache needs use_cache, which gradient checkpointing turns off in training
        checkpointing = model.training and getattr(getattr(model, "module", model), "is_activation_checkpointing", False)
        if self.fast and not checkpointing and rollout.num_generations > 1 and "pixel_values" in rollout.prompt_inputs:
            logits = self._group_logits(model, rollout)
        else:
            logits = self._full_logits(model, rollout)
        logits = logits.float()  # (N, T, V): position j predicts completion token j
        if temperature != 1.0:
            logits = logits / temperature
        if self.suppressed_ids:  # the same distribution the sampler draws from
            banned = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
            banned[self.suppressed_ids] = True
            logits = logits.masked_fill(banned, float("-inf"))
        picked = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # (N, T)
        return picked - logits.logsumexp(-1)

    def _full_inputs(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        """Prompt + completion as one (N, P+T) text input, completion tokens typed as text."""
        p, ids = rollout.prompt_inputs, rollout.completion_ids
        full = {
            "input_ids": torch.cat([p["input_ids"], ids], dim=1),
            "attention_mask": torch.cat([p["attention_mask"], rollout.completion_mask.to(p["attention_mask"].dtype)], 1),
        }
        for key in ("mm_token_type_ids", "token_type_ids"):
            if key in p:
                full[key] = torch.cat([p[key], torch.zeros_like(ids)], dim=1)
        return full

    def _full_logits(self, model, rollout: Rollout) -> torch.Tensor:
        """One forward over prompt + completion for every row."""
        p, t = rollout.prompt_inputs, rollout.completion_ids.shape[1]
        extra: dict[str, Any] = {}
        if "pixel_values" in p and not self.fast:  # the generic path: the processor's image inputs as they are
            extra = {k: v for k, v in p.items() if k not in _TEXT_KEYS}
        elif "pixel_values" in p:
            extra["image_grid_thw"] = p["image_grid_thw"]
            extra["mm_encoder_outputs"] = {"image": self.image_features(model, p, rollout.num_generations)}
        out = model(**self._full_inputs(rollout), use_cache=False, logits_to_keep=t + 1, **extra)
        return out.logits[:, :-1]

    def _group_logits(self, model, rollout: Rollout) -> torch.Tensor:
        """The G rows of a group share their prompt: run it once per group, then the completions on its cache.

        Same numbers as :meth:`_full_logits` (tested); the prompt's forward and backward work shrink G-fold.
        The positions of the completion tokens (Qwen's 3-D M-RoPE) are those of the full sequence.
        """
        p, ids, g = rollout.prompt_inputs, rollout.completion_ids, rollout.num_generations
        inner = getattr(model, "module", model)  # the prompt pass goes around DDP: one wrapped forward per step
        head = inner(**self._each_prompt_once(model, p, g), use_cache=True, logits_to_keep=1)  # use_cache: never with gradient checkpointing
        first = head.logits[:, -1:].repeat_interleave(g, dim=0)  # predicts completion token 0
        if ids.shape[1] == 1:  # one-token completions: nothing runs on the cache
            return first
        cache = head.cache
        cache.batch_repeat_interleave(g)
        full = self._full_inputs(rollout)
        positions, _ = inner.model.get_rope_index(
            full["input_ids"],
            mm_token_type_ids=full.get("mm_token_type_ids", torch.zeros_like(full["input_ids"])),
            image_grid_thw=p.get("image_grid_thw"),
            attention_mask=full["attention_mask"],
        )  # (3, N, P+T)
        start = p["input_ids"].shape[1]
        tail = model(
            input_ids=ids[:, :-1],
            attention_mask=full["attention_mask"][:, :-1],
            position_ids=positions[:, :, start:-1],
            cache=cache,
            use_cache=True,
        )
        return torch.cat([first, tail.logits], dim=1)


def _model_type(config: Path) -> Any:
    """``model_type`` of a model directory's ``config.json``; UserError naming the file when it is not a
    UTF-8 JSON object (a list, stray bytes, a truncated write)."""
    from perception_r1.data.io import read_json_object

    return read_json_object(config).get("model_type")


def _load_processor(path: Path, family: Family, model_type: str):
    """The image-only processor of a model directory: tokenizer + PIL image processor + chat template."""
    from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        template = read_chat_template(path) or getattr(tokenizer, "chat_template", None)
        if not template:
            raise UserError(f"'{path}' has no chat template (chat_template.jinja/json or in tokenizer_config.json)")
        if family.processor == "qwen":
            image_processor = Qwen2VLImageProcessorPil.from_pretrained(path, local_files_only=True)
            return make_processor(image_processor, tokenizer, template, family=model_type)
        return load_stock_processor(path, family.processor or _processor_class(path), tokenizer, template)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - broken tokenizer/processor files raise any library error
        raise UserError(f"'{path}': cannot load the tokenizer/processor ({type(exc).__name__}: {exc})"[:400]
                        .replace("\n", " ")) from exc


def _processor_class(path: Path) -> str:
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        if (path / name).is_file() and (found := json.loads((path / name).read_text()).get("processor_class")):
            return found
    raise ValueError("no processor_class in processor_config.json or preprocessor_config.json")


def completion_mask(completion_ids: torch.Tensor, eos_ids: Sequence[int]) -> torch.Tensor:
    """(N, T) float: 1 up to and including the first EOS of each row, 0 after (all 1 if no EOS)."""
    is_eos = torch.isin(completion_ids, torch.tensor(list(eos_ids), device=completion_ids.device))
    # number of EOS strictly before position j; keep positions with none before them
    before = is_eos.long().cumsum(1) - is_eos.long()
    return (before == 0).float()


def truncated_rows(completion_ids: torch.Tensor, eos_ids: Sequence[int], max_new_tokens: int) -> torch.Tensor:
    """(N,) bool: rows without any EOS that filled the whole ``max_new_tokens`` budget (the answer was cut off).

    generate stops before the budget only once every row has ended, so a shorter batch has none cut off."""
    if completion_ids.shape[1] < max_new_tokens:
        return torch.zeros(completion_ids.shape[0], dtype=torch.bool, device=completion_ids.device)
    is_eos = torch.isin(completion_ids, torch.tensor(list(eos_ids), device=completion_ids.device))
    return ~is_eos.any(dim=1)


def _repeat_rows(inputs: dict[str, Any], g: int) -> dict[str, Any]:
    """Each prompt's text rows and image grid G times in a row; ``pixel_values`` (each image once) unchanged."""
    out = dict(inputs)
    for key in (*_TEXT_KEYS, "image_grid_thw"):
        if key in out:
            out[key] = out[key].repeat_interleave(g, dim=0)
    return out
