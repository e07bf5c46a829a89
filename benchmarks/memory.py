"""Peak memory and step time of one GRPO step: full fine-tuning vs LoRA vs gradient checkpointing, this
project's ``Trainer.train_step`` beside TRL's ``GRPOTrainer`` with the same settings, on a randomly
initialised Qwen2-VL-architecture model of about 100M parameters.

Both sides load the same saved model, run the same task (counting, this project's reward on both sides),
batch (P prompts x G completions), sampling (temperature 1.0, fixed completion length), beta 0.04 (both
compute reference log-probs: ours with the adapter switched off under LoRA, TRL likewise), one update,
AdamW, grad-norm clip 1.0. LoRA: rank 16, alpha 32, the same target modules on both sides (the language
model's attention and MLP projections). Each (side, setting) runs in its own subprocess, so peak RSS
(``ru_maxrss``) is its alone; it includes the process's Python, torch and model (the same on both sides).
Our update always runs, as TRL's does: a random model's rewards tie, and our trainer would skip the backward.

    python benchmarks/memory.py                     # 2 x 4 completions of 16 tokens, 1 warm-up + 2 timed steps
    python benchmarks/memory.py --settings full,lora --sides ours
    python benchmarks/memory.py --smoke             # a 2-layer model, 2 x 2 of 4 tokens, 1 step: checks it runs

``--shape qwen2_5_vl_3b`` measures a real-size model instead: a random-init model with the exact shape of
Qwen2.5-VL-3B-Instruct (3.75B parameters, benchmarks/shapes.py says where each size comes from), saved once
in bfloat16 and loaded as float32 by both sides, LoRA r=16 + gradient checkpointing, 2 prompts x G=2
completions of 8 tokens on 56x56 images, 1 timed step with no warm-up. ``--layers N`` keeps every width and
sets the decoder's depth (the scaling runs when 36 layers do not fit a machine's time or memory). Where
``perception_r1.train.memory_plan``'s estimate (``run --dry-run``) is printed beside each measured peak.

    nice python benchmarks/memory.py --shape qwen2_5_vl_3b               # ~15 GB RAM, minutes per side on 1 thread
    python benchmarks/memory.py --shape qwen2_5_vl_3b --smoke            # the same path on a 4-layer model
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _common import installed, machine, parse_args, run_child, smoke_model, table, trl_grpo_config
from grpo_step import peak_rss_mb
from shapes import SHAPES, build_shape, skeleton_policy

from perception_r1.model.families import count_parameters

SETTINGS = {"full": "full fine-tuning", "lora": "LoRA r=16", "checkpointing": "full + gradient checkpointing",
            "lora_ckpt": "LoRA r=16 + gradient checkpointing"}
SIDES = {"ours": "perception-r1", "trl": "TRL GRPOTrainer"}
LORA_RANK = 16
BETA = 0.04  # both sides (trl_grpo_config sets TRL's)
SMOKE = {"prompts": 2, "group": 2, "tokens": 4, "steps": 1, "warmup": 0}
# --shape: one step of a real-size model (issue 26 item 4); flags given still win
SHAPE_RUN = {"prompts": 2, "group": 2, "tokens": 8, "steps": 1, "warmup": 0, "settings": "lora_ckpt"}


Estimate = Callable[[str], float]  # setting -> estimated peak MB


def estimators(args: argparse.Namespace, parameters: int) -> tuple[dict[str, Estimate], str]:
    """{label: setting -> estimated peak MB}, decided before any side runs: the project's planner
    (``perception_r1.train.memory_plan``, what ``run --dry-run`` prints), float32 as both sides load on CPU."""
    from perception_r1.train import memory_plan

    config = json.loads((Path(args.model) / "config.json").read_text())
    prompt = prompt_tokens(args)

    def planned(setting: str) -> float:
        plan = memory_plan.estimate(
            memory_plan.text_shape(config), parameters, bytes_per_value=4, prompts=args.prompts,
            group_size=args.group, prompt_tokens=prompt, new_tokens=args.tokens,
            lora_rank=LORA_RANK if lora(setting) else None, beta=BETA, gradient_checkpointing=checkpointing(setting))
        return plan.peak / 2**20

    return {"planner": planned}, f"planner: perception_r1.train.memory_plan.estimate; prompt {prompt} tokens (vision included)"


def prompt_tokens(args: argparse.Namespace) -> int:
    """Tokens of the longest prompt row of the first batch, vision tokens included (weights never loaded)."""
    from perception_r1.data.prepare import prepare_sample
    from perception_r1.data.synthetic import synthetic_samples
    from perception_r1.registry import get_registry

    task, policy = get_registry().task("counting"), skeleton_policy(args.model)
    samples = [prepare_sample(s, policy, task) for s in synthetic_samples(task, "train", args.prompts, seed=0)]
    inputs = policy.encode_prompts([task.prompt(s) for s in samples], [s["image"] for s in samples])
    return int(inputs["input_ids"].shape[1])


def reset_peak() -> bool:
    """Start the kernel's peak-RSS count (VmHWM) afresh, so it measures the training steps alone: loading a
    checkpoint maps its file, and those pages count in RSS until the loader lets go of them (Linux only)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def steps_peak_mb(reset: bool) -> float | None:
    """VmHWM in MB since :func:`reset_peak`; None where it could not be reset."""
    if not reset:
        return None
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def lora(setting: str) -> bool:
    return setting in ("lora", "lora_ckpt")


def checkpointing(setting: str) -> bool:
    return setting in ("checkpointing", "lora_ckpt")


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
        "max_new_tokens": args.tokens, "learning_rate": 1e-4, "beta": BETA, "eval_samples": 0,
        "log_completions_every": 10**9, "checkpoint_every": 0, "threads": args.threads,
        "lora_rank": LORA_RANK if lora(setting) else None, "gradient_checkpointing": checkpointing(setting),
    })
    trainer = Trainer(plan_run(config, get_registry()), Path(tempfile.mkdtemp(prefix="bench-mem-ours-")))
    trainer.policy.model.generation_config.min_new_tokens = args.tokens
    # A random-init model's answers mostly score the same, and then our trainer skips the update (no backward,
    # no optimizer step: trainer._nothing_to_learn). TRL always updates: measure a step that updates.
    trainer._nothing_to_learn = lambda *_: False  # type: ignore[method-assign]
    seconds, reset = [], reset_peak()
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        trainer.train_step(step)
        if step >= args.warmup:
            seconds.append(time.perf_counter() - start)
    trainable = sum(p.numel() for p in trainer.policy.model.parameters() if p.requires_grad)
    return {"step_seconds": seconds, "peak_rss_mb": peak_rss_mb(), "steps_peak_mb": steps_peak_mb(reset),
            "trainable": trainable}


def _lora_targets(policy: Any) -> list[str]:
    from perception_r1.model.lora import target_modules

    return target_modules(policy.model, policy.family.lora_targets, policy.family.vision_prefixes, vision=False)


def run_trl(args: argparse.Namespace, setting: str) -> dict[str, Any]:
    import datasets
    import torch
    import transformers
    from peft import LoraConfig
    from trl import GRPOTrainer

    from perception_r1.data.prepare import prepare_sample
    from perception_r1.data.synthetic import synthetic_samples
    from perception_r1.registry import get_registry

    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    task = get_registry().task("counting")
    loader = skeleton_policy(args.model)  # processor and module names; TRL loads the one copy of the weights
    total = args.warmup + args.steps
    samples = [prepare_sample(s, loader, task) for s in synthetic_samples(task, "train", total * args.prompts, seed=0)]
    dataset = datasets.Dataset.from_dict({
        "prompt": [[{"role": "user", "content": task.prompt(s)}] for s in samples],
        "image": [s["image"] for s in samples], "idx": list(range(len(samples)))})

    def reward(completions: list[Any], idx: list[int], **_: Any) -> list[float]:
        return [task.reward(c[0]["content"], samples[i]).total for c, i in zip(completions, idx, strict=True)]

    peft_config = None
    if lora(setting):
        peft_config = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.0,
                                 target_modules=_lora_targets(loader))
    config = trl_grpo_config(args, total, checkpointing(setting), "bench-mem-trl-")
    trainer = GRPOTrainer(model=args.model, reward_funcs=reward, args=config, train_dataset=dataset,
                          processing_class=loader.processor, peft_config=peft_config)
    marks: list[float] = []

    class Clock(transformers.TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            marks.append(time.perf_counter())

        def on_step_end(self, *_: Any, **__: Any) -> None:
            marks.append(time.perf_counter())

    trainer.add_callback(Clock())
    reset = reset_peak()
    trainer.train()
    seconds = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)][args.warmup:]
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {"step_seconds": seconds, "peak_rss_mb": peak_rss_mb(), "steps_peak_mb": steps_peak_mb(reset),
            "trainable": trainable}


def child(side: str, setting: str, args: argparse.Namespace) -> dict[str, Any]:
    return run_child(__file__, f"{side} {setting}", [
        "--child", f"{side}:{setting}", "--model", args.model, "--prompts", str(args.prompts), "--group",
        str(args.group), "--tokens", str(args.tokens), "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--threads", str(args.threads), *(["--shape", args.shape] if args.shape else [])])


def build(args: argparse.Namespace) -> str:
    """The model both sides load: in shape mode built in a child process, so the builder's copy of a
    real-size model is gone before the measured processes start."""
    out = Path(tempfile.mkdtemp(prefix="bench-mem-")) / "model"
    if not args.shape:
        return str((smoke_model if args.smoke else build_model)(out))
    flags = [*(["--layers", str(args.layers)] if args.layers else []), *(["--smoke"] if args.smoke else [])]
    return run_child(__file__, "build", ["--build", str(out), "--shape", args.shape, *flags])["model"]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--settings", default="full,lora,checkpointing", help=f"of {', '.join(SETTINGS)}")
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--model", help="model directory (default: a ~100M random-init Qwen2-VL built to a temp dir)")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="a random-init real-size model of this shape "
                        "(default run: LoRA + gradient checkpointing, 2 x 2 of 8 tokens, 1 step)")
    parser.add_argument("--layers", type=int, help="with --shape: the decoder's depth (every width kept)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--build", help=argparse.SUPPRESS)
    if parser.parse_known_args()[0].shape:
        parser.set_defaults(**SHAPE_RUN)
    return parse_args(parser, SMOKE)


def main() -> None:
    args = arguments()
    if args.build:
        print(json.dumps({"model": str(build_shape(Path(args.build), args.shape, args.layers, args.smoke))}))
        return
    if args.child:
        side, setting = args.child.split(":")
        print(json.dumps((run_ours if side == "ours" else run_trl)(args, setting)))
        return

    print(f"machine: {machine()}")
    if args.model is None:
        args.model = build(args)
    sides, settings = args.sides.split(","), args.settings.split(",")
    if "trl" in sides and not installed("trl", "the TRL side"):
        sides.remove("trl")
    for setting in [s for s in settings if lora(s)]:
        if not installed("peft", "the LoRA setting"):
            settings.remove(setting)

    size = count_parameters(args.model) or 0
    estimates, note = estimators(args, size)  # before the sides run: an estimate, not a fit
    print(f"model {args.model} ({size / 1e6:.1f}M parameters); counting; {args.prompts} prompts x G={args.group} "
          f"completions of {args.tokens} tokens; TRL {version('trl') if 'trl' in sides else 'not run'}; "
          f"{args.warmup} warm-up + {args.steps} timed steps, each run its own process\n")
    results = {}
    for setting in settings:
        for side in sides:
            results[side, setting] = child(side, setting, args)
            print(f"  {SETTINGS[setting]}, {SIDES[side]}: done", file=sys.stderr)
    report(results, estimates, note)


def report(results: dict[tuple[str, str], dict[str, Any]], estimates: dict[str, Estimate], note: str) -> None:
    """The table, the measured peaks beside each estimate, and one comparison line per setting."""
    rows = []
    for (side, setting), r in results.items():
        steps = r.get("steps_peak_mb")
        measured = steps or r["peak_rss_mb"]
        rows.append([SETTINGS[setting], SIDES[side], f"{r['trainable'] / 1e6:.2f}M",
                     f"{statistics.median(r['step_seconds']):.2f}", f"{r['peak_rss_mb']:.0f}",
                     "-" if steps is None else f"{steps:.0f}",
                     *(f"{e(setting):.0f} ({e(setting) / measured:.2f}x)" for e in estimates.values())])
    print(table(["setting", "side", "trainable", "s/step (median)", "peak RSS MB", "steps' peak MB",
                 *(f"{label} MB (/ steps' peak)" for label in estimates)], rows))
    print("peak RSS: the whole process (ru_maxrss), loading included; steps' peak: VmHWM reset once the trainer "
          f"is built, the training steps alone\n{note}")
    for setting in dict.fromkeys(s for _, s in results):
        if ("ours", setting) in results and ("trl", setting) in results:
            ours, theirs = results["ours", setting], results["trl", setting]
            t_ours, t_trl = statistics.median(ours["step_seconds"]), statistics.median(theirs["step_seconds"])
            rss = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
            print(f"{SETTINGS[setting]}: ours {t_trl / t_ours:.2f}x TRL's throughput at {rss:.2f}x its peak RSS "
                  f"(ours/TRL: s/step {t_ours / t_trl:.2f}, peak RSS {rss:.2f})")


if __name__ == "__main__":
    main()
