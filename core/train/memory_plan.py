"""The memory a run will need at its peak, estimated from numbers known before anything loads.

Pure arithmetic on the language model's shape (``config.json``), the parameter count (safetensors headers)
and the run's settings, so ``run --dry-run`` can print it in well under a second. It is an estimate for one
process holding the whole model (DDP, one process): it has not been checked against measured peaks yet, and
image tokens per prompt are an assumption the caller passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

#: prompt tokens per sample assumed by ``run --dry-run`` (text and image tokens; the image's vary with its size)
ASSUMED_PROMPT_TOKENS = 300


@dataclass(frozen=True)
class Shape:
    """A decoder's sizes (the text model of a VLM)."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int


def text_shape(config: Mapping[str, Any]) -> Shape:
    """The decoder's sizes from a model's ``config.json`` (VLMs keep them under ``text_config``)."""
    text = config.get("text_config") or config
    heads = int(text["num_attention_heads"])
    return Shape(layers=int(text["num_hidden_layers"]), hidden=int(text["hidden_size"]),
                 intermediate=int(text["intermediate_size"]), heads=heads,
                 kv_heads=int(text.get("num_key_value_heads") or heads),
                 head_dim=int(text.get("head_dim") or int(text["hidden_size"]) // heads),
                 vocab=int(text["vocab_size"]))


def lora_parameters(shape: Shape, rank: int) -> int:
    """Parameters of rank-``rank`` adapters on every projection of every decoder layer (A: in x r, B: r x out)."""
    h, q, kv, i = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.intermediate
    per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)  # q, k, v, o, gate, up, down
    return shape.layers * rank * per_layer


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes, per component; ``peak``: what is held at once (generation's cache and the update's activations
    come one after the other, so the larger of the two counts)."""

    weights: int
    gradients: int
    optimizer: int
    reference: int
    kv_cache: int
    activations: int

    @property
    def peak(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.reference + max(self.kv_cache, self.activations)

    def lines(self) -> list[str]:
        gib = 1024**3
        return [f"  {f.name:<12}{getattr(self, f.name) / gib:8.2f} GiB" for f in fields(self)] + [
            f"  {'peak':<12}{self.peak / gib:8.2f} GiB"]


def estimate(shape: Shape, num_params: int, *, bytes_per_value: int, prompts: int, group_size: int,
             prompt_tokens: int, new_tokens: int, lora_rank: int | None, beta: float,
             gradient_checkpointing: bool) -> MemoryPlan:
    """The peak of a GRPO step: weights, their gradients and AdamW's two moments (trainable weights only),
    the frozen reference copy (full fine-tuning with beta > 0; LoRA's reference is the adapter switched off),
    the KV cache of ``prompts * group_size`` rollouts and the update's activations and completion logits (the
    update runs each prompt once per group, then its G completions: ``Policy.token_logprobs``)."""
    b = bytes_per_value
    trainable = lora_parameters(shape, lora_rank) if lora_rank else num_params
    sequences = prompts * group_size
    kv_cache = 2 * shape.layers * shape.kv_heads * shape.head_dim * (prompt_tokens + new_tokens) * sequences * b
    tokens = prompts * prompt_tokens + sequences * new_tokens
    # kept for backward per token and layer: without checkpointing the norms' inputs, q/k/v, attention and MLP
    # intermediates; with it only each layer's input (plus one layer recomputed at a time)
    per_token_layer = 6 * shape.hidden + 3 * shape.intermediate + 2 * shape.kv_heads * shape.head_dim
    kept = tokens * shape.hidden * shape.layers + tokens * per_token_layer if gradient_checkpointing else (
        tokens * per_token_layer * shape.layers)
    logits = 2 * sequences * new_tokens * shape.vocab * 4  # completion logits and log-softmax, float32
    return MemoryPlan(
        weights=num_params * b, gradients=trainable * b, optimizer=2 * trainable * b,
        reference=num_params * b if beta > 0 and not lora_rank else 0,
        kv_cache=kv_cache, activations=kept * b + logits,
    )


def dry_run_lines(config: Mapping[str, Any], shape: Shape, num_params: int, cpu: bool) -> list[str]:
    """What ``run --dry-run`` prints for a resolved run ``config``."""
    plan = estimate(shape, num_params, bytes_per_value=4 if cpu else 2,  # Policy.load: float32 on CPU, else bf16
                    prompts=config["prompts_per_step"], group_size=config["group_size"], prompt_tokens=ASSUMED_PROMPT_TOKENS,
                    new_tokens=config["max_new_tokens"], lora_rank=config.get("lora_rank"), beta=config["beta"],
                    gradient_checkpointing=bool(config.get("gradient_checkpointing")))
    return [f"estimated peak memory of one process holding the whole model ({num_params / 1e6:.1f}M parameters, "
            f"{'float32 on CPU' if cpu else 'bfloat16'}, {ASSUMED_PROMPT_TOKENS} prompt tokens assumed; not yet "
            f"checked against measured peaks):", *plan.lines()]
