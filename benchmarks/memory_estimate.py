"""A rough estimate of one GRPO step's peak RSS on CPU, for benchmarks/memory.py to set beside the measured peak.

Labelled "bench estimate" wherever it prints: it is this benchmark's own arithmetic, not the project's memory
planner (issue 26 item 5 puts that in ``perception_r1.train.memory_plan``; memory.py prefers it where it
exists). Everything is float32, as both sides train on CPU. The sum, in bytes:

    runtime                    Python, torch, transformers, the tokenizer and the trainer's imports (a constant)
  + weights                    parameters x 4
  + reference copy             parameters x 4, full fine-tuning with beta > 0 only (LoRA's reference is the
                               same weights with the adapter off)
  + trainable state            trainable x 16: the weights (LoRA's are new), gradients, AdamW's two moments
  + max(generation, scoring)   the KV cache of N sequences, or the scoring pass: saved activations (all of
                               them, or one hidden state per layer plus one layer's under gradient
                               checkpointing) and the (N, T, vocab) log-probability tensors
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024
RUNTIME_MB = 450  # an idle child after its imports, as ru_maxrss reports it on this machine (smoke-size models)
LOGIT_COPIES = 4  # logits, / temperature, masked, logsumexp's work space (policy.token_logprobs)


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of the model (its config.json) and of the batch."""

    parameters: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    sequences: int  # N = prompts x G
    prompt_tokens: int  # per sequence, vision tokens included
    completion_tokens: int


def lora_parameters(shape: Shape, rank: int) -> int:
    """LoRA's trainable parameters on every attention and MLP projection of the decoder: r x (in + out) each."""
    head_dim = shape.hidden // shape.heads
    kv = shape.kv_heads * head_dim
    per_layer = (shape.hidden + shape.hidden) * 2 + (shape.hidden + kv) * 2 + (shape.hidden + shape.intermediate) * 3
    return rank * per_layer * shape.layers


def scoring_bytes(shape: Shape, checkpointing: bool) -> int:
    """Saved activations of the scoring forward plus its log-probability tensors."""
    tokens = shape.sequences * (shape.prompt_tokens + shape.completion_tokens)
    # one decoder layer keeps ~ its input, norms, q/k/v/o, attention output (8 x hidden) and the MLP's
    # gate, up, activation and product (4 x intermediate) per token
    per_layer = tokens * (8 * shape.hidden + 4 * shape.intermediate) * 4
    saved = tokens * shape.hidden * 4 * shape.layers + per_layer if checkpointing else per_layer * shape.layers
    logits = shape.sequences * shape.completion_tokens * shape.vocab * 4 * LOGIT_COPIES
    return saved + logits


def kv_cache_bytes(shape: Shape) -> int:
    head_dim = shape.hidden // shape.heads
    positions = shape.sequences * (shape.prompt_tokens + shape.completion_tokens)
    return positions * shape.layers * 2 * shape.kv_heads * head_dim * 4


def estimate_peak_mb(shape: Shape, lora_rank: int | None, checkpointing: bool, beta: float) -> float:
    """The estimated peak RSS of one process taking GRPO steps, in MB (MiB, as ru_maxrss is read)."""
    weights = shape.parameters * 4
    trainable = lora_parameters(shape, lora_rank) if lora_rank else shape.parameters
    reference = weights if lora_rank is None and beta > 0 else 0
    state = trainable * 16 - (weights if lora_rank is None else 0)  # full: the weights are already counted
    working = max(kv_cache_bytes(shape), scoring_bytes(shape, checkpointing))
    return RUNTIME_MB + (weights + reference + state + working) / MB


def shape_of(config: dict, parameters: int, sequences: int, prompt_tokens: int, completion_tokens: int) -> Shape:
    """A ``Shape`` from a model directory's config.json (text sizes nested or flat) and the batch."""
    text = config.get("text_config") or config
    return Shape(parameters=parameters, hidden=text["hidden_size"], intermediate=text["intermediate_size"],
                 layers=text["num_hidden_layers"], heads=text["num_attention_heads"],
                 kv_heads=text.get("num_key_value_heads") or text["num_attention_heads"], vocab=text["vocab_size"],
                 sequences=sequences, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
