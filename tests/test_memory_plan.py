"""The memory planner: what each part of a GRPO step holds, and `run --dry-run` printing it without a run."""

from __future__ import annotations

import subprocess
import sys

from perception_r1.train.memory_plan import Shape, estimate, lora_parameters, text_shape

SHAPE = Shape(layers=36, hidden=2048, intermediate=11008, heads=16, kv_heads=2, head_dim=128, vocab=151936)
RUN = dict(bytes_per_value=2, prompts=2, group_size=2, prompt_tokens=300, new_tokens=64, beta=0.04)


def test_full_fine_tuning_holds_gradients_two_adam_moments_and_a_reference_copy():
    plan = estimate(SHAPE, 3_000_000_000, lora_rank=None, gradient_checkpointing=False, **RUN)
    assert plan.gradients == plan.weights == plan.reference and plan.optimizer == 2 * plan.weights
    assert plan.peak == 5 * plan.weights + max(plan.kv_cache, plan.activations)


def test_lora_trains_the_adapters_alone_and_needs_no_reference_copy():
    full = estimate(SHAPE, 3_000_000_000, lora_rank=None, gradient_checkpointing=False, **RUN)
    lora = estimate(SHAPE, 3_000_000_000, lora_rank=16, gradient_checkpointing=False, **RUN)
    assert lora.reference == 0 and lora.weights == full.weights
    assert lora.optimizer == 2 * lora.gradients == 2 * 2 * lora_parameters(SHAPE, 16)
    assert lora.peak < full.peak / 2


def test_gradient_checkpointing_keeps_less_and_the_cache_grows_with_the_group():
    kept = estimate(SHAPE, 3_000_000_000, lora_rank=16, gradient_checkpointing=False, **RUN)
    recomputed = estimate(SHAPE, 3_000_000_000, lora_rank=16, gradient_checkpointing=True, **RUN)
    assert recomputed.activations < kept.activations / 4 and recomputed.kv_cache == kept.kv_cache
    bigger = estimate(SHAPE, 3_000_000_000, lora_rank=16, gradient_checkpointing=True, **{**RUN, "group_size": 8})
    assert bigger.kv_cache == 4 * kept.kv_cache


def test_the_shape_is_read_from_a_vlm_config_and_its_text_config():
    config = {"text_config": {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
                              "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 500}}  # fmt: skip
    assert text_shape(config) == Shape(2, 64, 128, 2, 1, 32, 500)
    assert text_shape(config["text_config"]) == text_shape(config)


def test_dry_run_prints_the_estimate_loads_nothing_and_writes_nothing(tmp_path, small_model):
    out = tmp_path / "run"
    code = ("import sys; from perception_r1.cli import main; "
            f"code = main(['run', '--task', 'ocr', '--model', {str(small_model)!r}, '--dry-run', '--out', {str(out)!r}]); "
            "print('torch loaded:', 'torch' in sys.modules); sys.exit(code)")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "estimated peak memory" in proc.stdout and "kv_cache" in proc.stdout
    assert "torch loaded: False" in proc.stdout and not out.exists()
