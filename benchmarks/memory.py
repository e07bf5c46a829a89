"""Peak memory and step time of one GRPO step: full fine-tuning vs LoRA vs gradient checkpointing, this
project's ``Trainer.train_step`` beside TRL's ``GRPOTrainer`` with the same settings, on a randomly
initialised Qwen2-VL-architecture model of about 100M parameters.

Both sides load the same saved model, run the same task (counting, this project's reward on both sides),
batch (P prompts x G completions), sampling (temperature 1.0, fixed completion length), beta 0.04 (both
compute reference log-probs: ours with the adapter switched off under LoRA, TRL likewise), one update,
AdamW, grad-norm clip 1.0. LoRA: rank 16, alpha 32, the same target modules on both sides (the language
model's attention and MLP projections). Each (side, setting) runs in its own subprocess, so peak RSS
(``ru_maxrss``) is its alone; it includes the process's Python, torch and model (the same on both sides).

    python benchmarks/memory.py                     # 2 x 4 completions of 16 tokens, 1 warm-up + 2 timed steps
    python benchmarks/memory.py --settings full,lora --sides ours
    python benchmarks/memory.py --smoke             # a 2-layer model, 2 x 2 of 4 tokens, 1 step: checks it runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _common import installed, machine, parse_args, run_child, smoke_model, table, trl_grpo_config
from grpo_step import peak_rss_mb

SETTINGS = {"full": "full fine-tuning", "lora": "LoRA r=16", "checkpointing": "full + gradient checkpointing"}
SIDES = {"ours": "perception-r1", "trl": "TRL GRPOTrainer"}
LORA_RANK = 16
SMOKE = {"prompts": 2, "group": 2, "tokens": 4, "steps": 1, "warmup": 0}


def build_model(out: Path) -> Path:
    """A ~100M-parameter Qwen2-VL (random init) with the tiny tokenizer, saved once for both sides."""
    from perception_r1.model.tiny import TinyConfig, build_tiny

    cfg = TinyConfig(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                     num_key_value_heads=4, vision_embed_dim=384, vision_depth=8, vision_heads=6)
    return build_tiny(out, cfg=cfg)


def run_ours(args: argparse.Namespace, setting: str) -> dict[str, Any]:
    import torch

    from perception_r1.registry import get_registry
    from perception_r1.train.config import resolve
    from perception_r1.train.plan import plan_run
    from perception_r1.train.trainer import Trainer

    torch.manual_seed(0)
    config = resolve(overrides={
        "task": "counting", "model": args.model, "prompts_per_step": args.prompts, "group_size": args.group,
        "max_new_tokens": args.tokens, "learning_rate": 1e-4, "beta": 0.04, "eval_samples": 0,
        "log_completions_every": 10**9, "checkpoint_every": 0, "threads": args.threads,
        "lora_rank": LORA_RANK if setting == "lora" else None, "gradient_checkpointing": setting == "checkpointing",
    })
    trainer = Trainer(plan_run(config, get_registry()), Path(tempfile.mkdtemp(prefix="bench-mem-ours-")))
    trainer.policy.model.generation_config.min_new_tokens = args.tokens
    seconds = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        trainer.train_step(step)
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
    trainable = sum(p.numel() for p in trainer.policy.model.parameters() if p.requires_grad)
    return {"step_seconds": seconds, "peak_rss_mb": peak_rss_mb(), "trainable": trainable}


def _lora_targets(model_dir: str) -> list[str]:
    from perception_r1.model.lora import target_modules
    from perception_r1.model.policy import Policy

    policy = Policy.load(model_dir)
    return target_modules(policy.model, policy.family.lora_targets, policy.family.vision_prefixes, vision=False)


def run_trl(args: argparse.Namespace, setting: str) -> dict[str, Any]:
    import datasets
    import torch
    import transformers
    from peft import LoraConfig
    from trl import GRPOTrainer

    from perception_r1.data.prepare import prepare_sample
    from perception_r1.data.synthetic import synthetic_samples
    from perception_r1.model.policy import Policy
    from perception_r1.registry import get_registry

    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    task = get_registry().task("counting")
    loader = Policy.load(args.model)
    total = args.warmup + args.steps
    samples = [prepare_sample(s, loader, task) for s in synthetic_samples(task, "train", total * args.prompts, seed=0)]
    dataset = datasets.Dataset.from_dict({
        "prompt": [[{"role": "user", "content": task.prompt(s)}] for s in samples],
        "image": [s["image"] for s in samples], "idx": list(range(len(samples)))})

    def reward(completions: list[Any], idx: list[int], **_: Any) -> list[float]:
        return [task.reward(c[0]["content"], samples[i]).total for c, i in zip(completions, idx, strict=True)]

    peft_config = None
    if setting == "lora":
        peft_config = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.0,
                                 target_modules=_lora_targets(args.model))
    config = trl_grpo_config(args, total, setting == "checkpointing", "bench-mem-trl-")
    trainer = GRPOTrainer(model=args.model, reward_funcs=reward, args=config, train_dataset=dataset,
                          processing_class=loader.processor, peft_config=peft_config)
    marks: list[float] = []

    class Clock(transformers.TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            marks.append(time.perf_counter())

        def on_step_end(self, *_: Any, **__: Any) -> None:
            marks.append(time.perf_counter())

    trainer.add_callback(Clock())
    trainer.train()
    seconds = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)][args.warmup:]
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {"step_seconds": seconds, "peak_rss_mb": peak_rss_mb(), "trainable": trainable}


def child(side: str, setting: str, args: argparse.Namespace) -> dict[str, Any]:
    return run_child(__file__, f"{side} {setting}", [
        "--child", f"{side}:{setting}", "--model", args.model, "--prompts", str(args.prompts), "--group",
        str(args.group), "--tokens", str(args.tokens), "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--threads", str(args.threads)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--model", help="model directory (default: a ~100M random-init Qwen2-VL built to a temp dir)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parse_args(parser, SMOKE)
    if args.child:
        side, setting = args.child.split(":")
        print(json.dumps((run_ours if side == "ours" else run_trl)(args, setting)))
        return

    print(f"machine: {machine()}")
    if args.model is None:
        build = smoke_model if args.smoke else build_model
        args.model = str(build(Path(tempfile.mkdtemp(prefix="bench-mem-")) / "model"))
    sides, settings = args.sides.split(","), args.settings.split(",")
    if "trl" in sides and not installed("trl", "the TRL side"):
        sides.remove("trl")
    if "lora" in settings and not installed("peft", "the LoRA setting"):
        settings.remove("lora")

    print(f"model {args.model}; counting; {args.prompts} prompts x G={args.group} completions of {args.tokens} "
          f"tokens; TRL {version('trl') if 'trl' in sides else 'not run'}; {args.warmup} warm-up + {args.steps} "
          "timed steps, each run its own process\n")
    rows, results = [], {}
    for setting in settings:
        for side in sides:
            r = results[side, setting] = child(side, setting, args)
            rows.append([SETTINGS[setting], SIDES[side], f"{r['trainable'] / 1e6:.2f}M",
                         f"{statistics.median(r['step_seconds']):.2f}", f"{r['peak_rss_mb']:.0f}"])
            print(f"  {SETTINGS[setting]}, {SIDES[side]}: done", file=sys.stderr)
    print(table(["setting", "side", "trainable", "s/step (median)", "peak RSS MB"], rows))
    for setting in settings:
        if ("ours", setting) in results and ("trl", setting) in results:
            ours, theirs = results["ours", setting], results["trl", setting]
            speed = statistics.median(theirs["step_seconds"]) / statistics.median(ours["step_seconds"])
            print(f"{SETTINGS[setting]}: ours {speed:.2f}x TRL's throughput at "
                  f"{ours['peak_rss_mb'] / theirs['peak_rss_mb']:.2f}x its peak RSS")


if __name__ == "__main__":
    main()
